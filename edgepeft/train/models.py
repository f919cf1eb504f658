"""Model specs and technique application shared by the teacher and student phases of a run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from edgepeft.api.model import ModelEdit, ModelSpec
from edgepeft.api.technique import count_parameters

if TYPE_CHECKING:
    import torch

    from edgepeft.api.dataset import TaskData
    from edgepeft.api.technique import Compressed, Technique
    from edgepeft.artifacts.recipe import ModelSection


def model_spec(
    section: ModelSection,
    options: Any,
    data: TaskData,
    model: torch.nn.Module,
    edits: Sequence[ModelEdit] = (),
) -> ModelSpec:
    """The spec that rebuilds ``model``: its family and options, the task's shape and the architecture edits."""
    return ModelSpec(
        family=section.model,
        options=options.model_dump(mode="json"),
        input_shape=list(data.input_shape),
        num_classes=data.num_classes,
        parameters=count_parameters(model),
        edits=list(edits),
        heads=[] if data.is_classifier else [h.to_dict() for h in data.heads],
        fields=[f.to_dict() for f in data.fields],
    )


def apply_techniques(
    model: torch.nn.Module,
    techniques: Sequence[Technique],
    step: Callable[[Technique, torch.nn.Module], Compressed | None],
    *,
    empty_reports: bool = False,
) -> tuple[torch.nn.Module, list[ModelEdit], list[dict[str, Any]], dict[str, bytes]]:
    """``model`` after ``step(technique, model)`` of each technique in recipe order (``None`` changes
    nothing): the architecture edits to replay, the reports (empty ones too with ``empty_reports``) and
    the files to save beside the model."""
    edits, reports, files = [], [], {}
    for technique in techniques:
        result = step(technique, model)
        if result is None:
            continue
        model = result.model
        if result.record is not None:
            edits.append(ModelEdit(technique=technique.name, record=result.record))
        if result.report or empty_reports:
            reports.append({"technique": technique.name, **result.report})
        files.update(result.files)
    return model, edits, reports, files

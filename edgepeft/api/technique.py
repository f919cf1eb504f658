"""Techniques: plugins that change the student's training loss, or compress the trained student."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from edgepeft.api.dataset import NoOptions
from edgepeft.host.requirements import NeedsPackages

if TYPE_CHECKING:
    import torch

    from edgepeft.api.context import Batch, TrainContext


def count_parameters(model: torch.nn.Module) -> int:
    """The model's parameters; one shared between modules counts once."""
    return sum(p.numel() for p in model.parameters())


@dataclass
class Compressed:
    """What :meth:`Technique.compress` returns.

    ``record`` (JSON-able) describes any change to the architecture, so that a saved student can be rebuilt
    before its weights load: it is saved in ``model.json`` and handed back to :meth:`Technique.rebuild`.
    ``None`` means the architecture is unchanged. ``report`` holds figures for ``metrics.json``
    (parameters and FLOPs before and after, notes for the user). ``files`` (relative name -> content) are
    saved beside a trained teacher, e.g. its adapters on their own (a student technique's are not saved).
    """

    model: torch.nn.Module
    record: dict[str, Any] | None = None
    report: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


class Technique(NeedsPackages):
    """Base class for technique plugins. Override what the technique needs; recipes compose them in order.

    0. :meth:`adapt` changes a model before it trains: the teacher for techniques listed under
       ``[[teacher.techniques]]`` (e.g. LoRA adapters, whose :meth:`compress` merges them after it trained),
       the student for the others (e.g. layers sharing their weights);
    1. :meth:`setup` runs once before the student's first step, the adapted student in ``ctx.model`` (a
       run resumed after a compression stage: the latest stage's student; a technique's own parameters
       start afresh) (e.g. cache teacher outputs);
    2. :meth:`augment` may alter or extend every training batch (e.g. perturbed copies of its texts), then
       :meth:`loss_terms` adjusts the named loss terms of the step (the total is their sum);
    3. :meth:`compress` runs after the student has trained, in recipe order (prune, factorize,
       quantization-aware fine-tuning); ``ctx.finetune`` trains the compressed model to recover, with
       every technique's loss terms;
    4. :meth:`rebuild` replays a recorded architecture change on a freshly built model.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions
    example_options: ClassVar[dict[str, Any]] = {}
    """Options for ``edgepeft plugins check`` when the defaults alone are not valid (e.g. a required goal)."""
    example_data: ClassVar[str | None] = None
    """The data set ``edgepeft plugins check`` exercises the technique on (with a model family made for it);
    ``None``: the default example task, chosen among the installed plugins."""
    for_teacher: ClassVar[bool] = False
    """Whether recipes may list it under ``[[teacher.techniques]]`` (it implements :meth:`adapt`)."""
    for_student: ClassVar[bool] = True
    """Whether recipes may list it under ``[[techniques]]`` (the student's)."""

    def __init__(self, options: BaseModel) -> None:
        self.options = options

    def adapt(self, model: torch.nn.Module, ctx: TrainContext) -> torch.nn.Module | Compressed:
        """The model to train in place of the freshly built ``model`` (e.g. wrapped with adapters, most weights
        frozen; layers sharing weights); the default trains ``model`` as it is. Return a :class:`Compressed`
        whose ``record`` lets :meth:`rebuild` replay an architecture change on a saved model, and whose
        ``report`` goes to ``metrics.json``; :meth:`compress` can undo the change after training (merge the
        adapters)."""
        return model

    def setup(self, ctx: TrainContext) -> None:
        """Prepare before the student's first step; the default does nothing."""

    def augment(self, batch: Batch, generator: torch.Generator) -> Batch:
        """The training batch the model sees this step in place of ``batch``, e.g. with altered copies of its
        examples appended, marked in ``augmented``; draw randomness from ``generator`` (seeded per step and
        process). The default returns ``batch``."""
        return batch

    def loss_terms(self, terms: dict[str, torch.Tensor], batch: Batch, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """The step's loss terms after this technique: ``terms["task"]`` is the task loss, or
        ``terms["task.<head>"]`` each head's for a multi-head task."""
        return terms

    def trainable(self) -> list[torch.nn.Parameter]:
        """Parameters of the technique itself (e.g. learned loss weights), trained with the model's and
        never exported; the default has none."""
        return []

    def compress(self, model: torch.nn.Module, ctx: TrainContext) -> Compressed | None:
        """The trained student after this technique's change; the default (``None``) changes nothing."""
        return None

    def adapted(self, model: torch.nn.Module, ctx: TrainContext) -> Compressed:
        """:meth:`adapt`'s result as a :class:`Compressed` (no record, no report when it returned a model)."""
        result = self.adapt(model, ctx)
        return result if isinstance(result, Compressed) else Compressed(model=result)

    @classmethod
    def rebuild(cls, model: torch.nn.Module, record: dict[str, Any]) -> torch.nn.Module:
        """``model`` (freshly built, weights not loaded) with the change ``record`` describes applied."""
        raise NotImplementedError(f"technique {cls.name!r} recorded an architecture change but cannot rebuild it")

"""The small real task a conformance check runs on, chosen among the installed plugins: a data set, a model
family made for it (its ``example_data``), and a backend to export with."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from edgepeft.api.backend import Backend
from edgepeft.api.context import TrainContext
from edgepeft.api.dataset import Dataset, Split, TaskData
from edgepeft.api.model import ModelFamily
from edgepeft.api.technique import Technique
from edgepeft.api.torch_program import TorchProgramBackend
from edgepeft.errors import PluginError
from edgepeft.train.loop import fit

if TYPE_CHECKING:
    import torch

    from edgepeft.host.manager import PluginManager

EXAMPLE_ROWS = 1024
"""Rows per split a check trains and exports with on a data set larger than ``SMALL_TASK_ROWS``."""
SMALL_TASK_ROWS = 2000
"""A data set with at most this many training rows is used whole and trained 4 epochs at batch 64 (a tiny
task learns in seconds); a larger one is cut to ``EXAMPLE_ROWS`` rows per split and trained one epoch at
batch 256: a check, not a benchmark, takes minutes at most even for a large model."""


@dataclass(frozen=True)
class ExampleTask:
    """What a check trains and exports: a data set's splits and a model family made for it."""

    data: TaskData
    family: type[ModelFamily]

    @property
    def name(self) -> str:
        return f"{self.data.name} with {self.family.name}"

    def build(self, trained: bool = True, seed: int = 0) -> torch.nn.Module:
        """A model of the family with its example options, trained briefly unless ``trained=False``."""
        import torch

        torch.manual_seed(seed)
        model = self.family().build_for(options_for(self.family), self.data.signature)
        if trained:
            small = len(self.data.train) <= SMALL_TASK_ROWS
            ctx = TrainContext(data=self.data, teacher=None, batch_size=64 if small else 256, seed=seed)
            fit(model, ctx, phase="student", epochs=4 if small else 1, lr=0.01 if small else 0.005)
        return model


def _usable(cls: Any) -> bool:
    """Whether a data set or model family can run here with its example options."""
    if getattr(cls, "unavailable_reason", lambda: None)():
        return False
    try:
        options_for(cls)
    except ValidationError:
        return False
    return True


def _family_for(manager: PluginManager, dataset: str) -> type[ModelFamily]:
    """The first usable model family made for ``dataset`` (its ``example_data``)."""
    families = [e.value for e in manager.models if e.value.example_data == dataset and _usable(e.value)]
    if not families:
        raise PluginError(f"no registered model family is made for data set {dataset!r} (example_data)")
    return families[0]


def example_task(manager: PluginManager, dataset: str | None = None, seed: int = 0) -> ExampleTask:
    """The task a check runs on: ``dataset`` (a technique's or family's ``example_data``) with the first
    model family made for it, or, without one, the first model family (by name) whose example data set is
    installed and loads with its example options, on that data set."""
    if dataset is None:
        usable = [e.value for e in manager.models if _usable(e.value)]
        found = next(
            (
                f.example_data
                for f in usable
                if f.example_data in manager.datasets and _usable(manager.datasets.get(f.example_data))
            ),
            None,
        )
        if found is None:
            raise PluginError(
                "no installed model family has its example data set (example_data) installed and usable here",
                fix="Install a data set plugin and a model family made for it",
            )
        dataset = found
    return ExampleTask(example_data(manager, dataset, seed), _family_for(manager, dataset))


def example_data(manager: PluginManager, dataset: str, seed: int = 0) -> TaskData:
    """``dataset`` loaded with its example options, cut to ``EXAMPLE_ROWS`` rows per split when it is large."""
    cls = manager.datasets.get(dataset)
    data = cls().load(options_for(cls), seed)
    if len(data.train) > SMALL_TASK_ROWS:
        small = {s: getattr(data, s) for s in ("train", "validation", "test")}
        small = {s: Split(split.x[:EXAMPLE_ROWS], split.y[:EXAMPLE_ROWS]) for s, split in small.items()}
        data = dataclasses.replace(data, **small)
    return data


def tiny_data(manager: PluginManager, seed: int = 0) -> TaskData:
    """The data of the default :func:`example_task`, split with ``seed``."""
    return example_task(manager, seed=seed).data


def tiny_model(manager: PluginManager, data: TaskData, *, trained: bool = True, seed: int = 0) -> torch.nn.Module:
    """A small model of the first family made for ``data``, trained briefly unless ``trained=False``."""
    return ExampleTask(data, _family_for(manager, data.name)).build(trained, seed)


def export_backend(manager: PluginManager) -> type[Backend]:
    """The backend technique and model checks export with: the first available one (by name) that converts
    the model for another runtime, else one that runs the ``torch.export`` program with PyTorch itself
    (a weaker check: PyTorch runs every operator)."""
    usable = [e.value for e in manager.backends if "fp32" in e.value.precisions and not e.value.unavailable_reason()]
    if not usable:
        raise PluginError(
            "no installed backend can export here", fix="Install a backend plugin (see `edgepeft plugins`)"
        )
    return min(usable, key=lambda cls: issubclass(cls, TorchProgramBackend))


def options_for(cls: type[Technique] | type[Dataset] | type[ModelFamily]) -> Any:
    """The options a check uses: the class's ``example_options`` when it sets them, else its defaults."""
    return cls.Options(**getattr(cls, "example_options", {}))

"""What a technique sees while it trains: the batch, the step's state for lifecycle hooks, and the
training context (data, teacher, device, the run's fine-tuner)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from edgepeft.api.dataset import TaskData


@dataclass
class Batch:
    """One training batch; ``index`` holds each example's position in the train split (for per-example
    caches), or, for a row a technique drew from the data set's unlabelled inputs, the train split's length
    plus its position there. ``augmented`` (when a technique's :meth:`~edgepeft.Technique.augment` made or
    altered rows) is True on those rows: they keep their source example's label and index, but not its
    inputs, so per-example caches do not apply to them."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    augmented: torch.Tensor | None = None


@dataclass
class StepState:
    """What lifecycle hooks see at each optimizer step, and at the end of each epoch (``epochs`` in the
    phase and ``val_score`` set, ``loss`` the epoch's mean). The score is the task's
    (:func:`edgepeft.api.tasks.score`): a classifier's accuracy."""

    phase: str
    epoch: int
    step: int
    model: torch.nn.Module
    loss: float | None = None
    loss_terms: dict[str, float] = field(default_factory=dict)
    epochs: int | None = None
    val_score: float | None = None


FineTuner = Callable[["torch.nn.Module", str, int, float], "FitResult"]


@dataclass
class TrainContext:
    """What techniques see: the data, the trained teacher (if any) and where training runs.

    ``model`` is the model being trained (set by :func:`fit`; the adapted student from before
    :meth:`Technique.setup` on). ``fine_tuner`` is set by the run: it trains with every technique's loss
    terms, checkpoints and progress.
    """

    data: TaskData
    teacher: torch.nn.Module | None
    batch_size: int
    seed: int
    device: str = "cpu"
    fine_tuner: FineTuner | None = None
    model: torch.nn.Module | None = None

    def finetune(self, model: torch.nn.Module, *, phase: str, epochs: int, lr: float) -> FitResult:
        """Train ``model`` for ``epochs`` (e.g. to recover after compression); it keeps the weights of its
        best validation epoch. Without a run's fine-tuner, this is a plain :func:`fit`; 0 epochs does nothing."""
        if epochs == 0:
            return FitResult(best_epoch=0, best_val_score=float("nan"), history=[])
        if self.fine_tuner is not None:
            return self.fine_tuner(model, phase, epochs, lr)
        from edgepeft.train.loop import fit

        return fit(model, self, phase=phase, epochs=epochs, lr=lr)


@dataclass
class FitResult:
    """Outcome of :func:`fit`: the best epoch by validation score and the per-epoch history."""

    best_epoch: int
    best_val_score: float
    history: list[dict[str, float]]


StepHook = Callable[[str, StepState], None]

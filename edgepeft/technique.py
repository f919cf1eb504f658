"""Techniques: plugins that change the student model or its training loss."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel

from edgepeft.data import NoOptions

if TYPE_CHECKING:
    import torch

    from edgepeft.train import Batch, TrainContext


class Technique:
    """Base class for technique plugins. Override any of the three steps; recipes compose them in order.

    1. :meth:`transform` rewrites the freshly built student (prune, factorize, share layers);
    2. :meth:`setup` runs once before training (e.g. cache teacher outputs);
    3. :meth:`loss_terms` adjusts the named loss terms of every training step (the total is their sum).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, options: BaseModel) -> None:
        self.options = options

    def transform(self, model: torch.nn.Module, ctx: TrainContext) -> torch.nn.Module:
        """The student after this technique's change; the default leaves it as it is."""
        return model

    def setup(self, ctx: TrainContext) -> None:
        """Prepare before the student's first step; the default does nothing."""

    def loss_terms(self, terms: dict[str, torch.Tensor], batch: Batch, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """The step's loss terms after this technique; ``terms["task"]`` is the task loss."""
        return terms

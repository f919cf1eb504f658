"""Model families: plugins that build a ``torch.nn.Module`` from options, and the spec that rebuilds it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from edgepeft.data import NoOptions

if TYPE_CHECKING:
    import torch


class ModelFamily(ABC):
    """Base class for model plugins: set ``name``, ``Options`` and implement :meth:`build`.

    A family that starts from pretrained weights names that option ``pretrained``: edgepeft sets it to
    false when it rebuilds a saved model, whose own weights are loaded next.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions
    example_options: ClassVar[dict[str, Any]] = {}
    """Options for ``edgepeft plugins check`` (which builds the family for 1x8x8 digits images)."""

    @abstractmethod
    def build(self, options: BaseModel, input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
        """A freshly initialised model taking ``(batch, *input_shape)`` and returning class logits."""


class ModelEdit(BaseModel):
    """An architecture change a technique made after the model was built (``Technique.rebuild`` replays it)."""

    model_config = ConfigDict(extra="forbid")

    technique: str
    record: dict[str, Any]


class ModelSpec(BaseModel):
    """Everything needed to rebuild a saved model before loading its weights (``model.json``)."""

    model_config = ConfigDict(extra="forbid")

    family: str
    options: dict[str, Any]
    input_shape: list[int]
    num_classes: int
    parameters: int
    edits: list[ModelEdit] = []

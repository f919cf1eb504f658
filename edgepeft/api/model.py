"""Model families: plugins that build a ``torch.nn.Module`` from options, and the spec that rebuilds it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from edgepeft.api.dataset import NoOptions
from edgepeft.api.tasks import Field, Head, Signature, classification

if TYPE_CHECKING:
    import torch

    from edgepeft.api.dataset import TaskData


class ModelFamily(ABC):
    """Base class for model plugins: set ``name``, ``Options`` and implement :meth:`build`.

    A family that starts from pretrained weights names that option ``pretrained``: edgepeft sets it to
    false when it rebuilds a saved model, whose own weights are loaded next.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions
    example_options: ClassVar[dict[str, Any]] = {}
    """Options for ``edgepeft plugins check`` (which builds the family for ``example_data``)."""
    example_data: ClassVar[str | None] = None
    """The data set ``edgepeft plugins check`` builds and trains the family on; ``None``: the data set of the
    default example task (the first installed model family's that names one)."""

    @abstractmethod
    def build(self, options: BaseModel, input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
        """A freshly initialised model taking ``(batch, *input_shape)`` and returning class logits."""

    def build_for(self, options: BaseModel, signature: Signature) -> torch.nn.Module:
        """A freshly initialised model for a task: ``(batch, *signature.input_shape)`` in, one column per
        class or head out. The default calls :meth:`build`; a family that needs the heads or the categorical
        fields (embedding tables) overrides this."""
        return self.build(options, signature.input_shape, signature.outputs)

    def check_data(self, options: BaseModel, data: TaskData) -> None:
        """Raise a ``ConfigError`` when ``data`` does not suit a model built with ``options`` (e.g. a text data
        set tokenized for another model); called before every build for a run. The default accepts any."""
        return None

    def describe(self, model: torch.nn.Module, data: TaskData) -> dict[str, Any]:
        """Figures about a trained ``model`` for the run's ``metrics.json`` (e.g. embedding tables and hash
        collisions on ``data``'s train split); its ``notes`` (lines of text) are also printed by
        ``edgepeft train``. The default describes nothing."""
        return {}


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
    heads: list[dict[str, Any]] = []
    """The task's heads (:class:`edgepeft.api.tasks.Head` as dicts); empty for a classifier."""
    fields: list[dict[str, Any]] = []
    """Categorical input fields (:class:`edgepeft.api.tasks.Field` as dicts)."""

    def signature(self) -> Signature:
        heads = tuple(Head.from_dict(h) for h in self.heads) or classification(
            [str(i) for i in range(self.num_classes)]
        )
        return Signature(tuple(self.input_shape), heads, tuple(Field.from_dict(f) for f in self.fields))

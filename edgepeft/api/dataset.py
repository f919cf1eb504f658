"""Data sets and tasks. Real data sets live in plugins; this module holds what they return."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from edgepeft.api.tasks import Field, Head, Signature, classification
from edgepeft.errors import ConfigError, DataError
from edgepeft.host.requirements import NeedsPackages
from edgepeft.util.validation import StrictModel

if TYPE_CHECKING:
    import numpy as np


class NoOptions(StrictModel):
    """Options model for a plugin that takes none."""


@dataclass(frozen=True)
class Split:
    """One split: preprocessed inputs ``x`` (float32, batch first) and labels ``y``: integer classes for a
    classifier, else float32 with one column per head (see :mod:`edgepeft.api.tasks`)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class TaskData:
    """A task: train / validation / held-out test splits and what a device app needs.

    A classifier gives ``labels`` (class names); other tasks give ``heads`` (e.g. a rating to regress and
    a like to classify) and, for categorical inputs, ``fields``. ``preprocessing`` describes how raw inputs
    become ``x`` (it travels into the deployed bundle); the test split is never used for training,
    calibration or tuning. ``unlabelled`` holds inputs of the task's domain without labels, preprocessed
    like ``x``, for techniques that learn a teacher's answers on them (e.g. ``augment-text``).
    """

    name: str
    train: Split
    validation: Split
    test: Split
    labels: list[str] = field(default_factory=list)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    heads: tuple[Head, ...] = ()
    fields: tuple[Field, ...] = ()
    unlabelled: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not self.heads:
            object.__setattr__(self, "heads", classification(self.labels))

    @property
    def num_classes(self) -> int:
        """The width of a model's output: the classes of a classifier, one column per head otherwise."""
        return self.signature.outputs

    @property
    def is_classifier(self) -> bool:
        return len(self.heads) == 1 and self.heads[0].kind == "classification"

    @property
    def signature(self) -> Signature:
        return Signature(self.input_shape, self.heads, self.fields)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def tokenizer_folder(self, technique: str) -> str:
        """The tokenizer folder a text data set names in ``preprocessing``; a ConfigError saying ``technique``
        needs one when the data set is not text."""
        folder = self.preprocessing.get("tokenizer_folder")
        if folder is None:
            raise ConfigError(
                f"{technique} needs a text data set that names its tokenizer, not {self.name!r}",
                where=f"[[techniques]] {technique}",
                fix="Use a text data set (rotten-tomatoes, text-csv), or remove the technique",
            )
        return str(folder)

    def fingerprint(self) -> str:
        """sha256 over every split's bytes: two runs on the same data and split agree."""
        import hashlib

        import numpy as np

        digest = hashlib.sha256()
        for split in (self.train, self.validation, self.test):
            digest.update(np.ascontiguousarray(split.x).tobytes())
            digest.update(np.ascontiguousarray(split.y).tobytes())
        return digest.hexdigest()

    def check(self) -> None:
        """Reject data a model cannot learn from, with a message saying what is wrong."""
        import numpy as np

        for split_name in ("train", "validation", "test"):
            split: Split = getattr(self, split_name)
            where = f"data set {self.name!r}, {split_name} split"
            if len(split) == 0:
                raise DataError(
                    "the split is empty", where=where, fix="Provide more examples or change the split sizes"
                )
            if len(split.x) != len(split.y):
                raise DataError(f"{len(split.x)} inputs but {len(split.y)} labels", where=where)
            if not self.is_classifier:
                self._check_heads(split, where)
                continue
            if split.y.min() < 0 or split.y.max() >= self.num_classes:
                raise DataError(
                    f"labels must lie in 0..{self.num_classes - 1}, found {int(split.y.min())}..{int(split.y.max())}",
                    where=where,
                    fix="Check the label column or the list of class names",
                )
        if self.unlabelled is not None and self.unlabelled.shape[1:] != self.input_shape:
            raise DataError(
                f"unlabelled inputs of shape {list(self.unlabelled.shape[1:])}, "
                f"the splits' of {list(self.input_shape)}",
                where=f"data set {self.name!r}, unlabelled inputs",
                fix="Preprocess them as the splits' inputs",
            )
        if self.is_classifier and len(np.unique(self.train.y)) < 2:
            raise DataError(
                "the train split holds a single class",
                where=f"data set {self.name!r}",
                fix="A classifier needs examples of at least two classes",
            )

    def _check_heads(self, split: Split, where: str) -> None:
        import numpy as np

        if split.y.ndim != 2 or split.y.shape[1] != len(self.heads):
            raise DataError(
                f"labels of shape {list(split.y.shape)}, expected one column per head ({len(self.heads)})",
                where=where,
            )
        if not np.isfinite(split.y).all():
            raise DataError("labels hold NaN or infinite values", where=where, fix="Drop or fill those rows")
        for index, head in enumerate(self.heads):
            column = split.y[:, index]
            if head.kind == "binary" and not np.isin(column, (0.0, 1.0)).all():
                raise DataError(f"head {head.name!r} is binary but its labels are not all 0 or 1", where=where)
            if head.kind == "classification" and not np.isin(column, np.arange(head.width)).all():
                raise DataError(
                    f"head {head.name!r} has {head.width} classes but labels outside 0..{head.width - 1}",
                    where=where,
                )


class Dataset(NeedsPackages, ABC):
    """Base class for data set plugins: set ``name``, ``Options`` and implement :meth:`load`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions
    example_options: ClassVar[dict[str, Any]] = {}
    """Options for ``edgepeft plugins check`` when the defaults alone are not valid (e.g. a required path)."""
    folder_option: ClassVar[str | None] = None
    """The option naming the folder the data is read from, which ``edgepeft train --data-dir`` sets."""

    @abstractmethod
    def load(self, options: BaseModel, seed: int) -> TaskData:
        """Read the data and split it with ``seed`` (the same seed gives the same split)."""


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of (train, validation, test), stratified by label, seeded; fractions are (validation, test)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_val = round(len(idx) * fractions[0])
        n_test = round(len(idx) * fractions[1])
        parts[2].append(idx[:n_test])
        parts[1].append(idx[n_test : n_test + n_val])
        parts[0].append(idx[n_test + n_val :])
    train, val, test = (np.sort(np.concatenate(p)) for p in parts)
    return train, val, test

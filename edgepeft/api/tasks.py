"""What a model predicts (its heads), what it reads (categorical input fields), and how its outputs are
scored and trained. numpy and torch are imported inside the functions.

A model's output is one float32 matrix: each head owns consecutive columns, in order (a classification
head one per class, a binary or regression head one). The labels ``y`` of a split are one integer per
example for a single classification head, else a float32 matrix with one column per head (the class
index, 0/1, or the value).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    import torch

HeadKind = Literal["classification", "binary", "regression"]

PRIMARY = {"classification": "accuracy", "binary": "auc", "regression": "rmse"}
"""Each kind's main metric: the one the parity gate and the device budget's retention look at."""

LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss"})


@dataclass(frozen=True)
class Head:
    """One prediction target: ``classification`` (``labels`` name the classes), ``binary`` (one logit) or
    ``regression`` (one value)."""

    name: str
    kind: HeadKind
    labels: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        return len(self.labels) if self.kind == "classification" else 1

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Head:
        return cls(name=data["name"], kind=data["kind"], labels=tuple(data.get("labels", ())))


@dataclass(frozen=True)
class Field:
    """A categorical input: one column holding an id in ``0..cardinality-1`` (stored as float32), or, when
    ``multi_hot``, ``cardinality`` columns of 0/1 (e.g. a movie's genres)."""

    name: str
    cardinality: int
    multi_hot: bool = False

    @property
    def width(self) -> int:
        return self.cardinality if self.multi_hot else 1

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "cardinality": self.cardinality, "multi_hot": self.multi_hot}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Field:
        return cls(name=data["name"], cardinality=int(data["cardinality"]), multi_hot=bool(data.get("multi_hot")))


@dataclass(frozen=True)
class Signature:
    """What a model family builds for: the input shape (without batch), the heads, the categorical fields."""

    input_shape: tuple[int, ...]
    heads: tuple[Head, ...]
    fields: tuple[Field, ...] = ()

    @property
    def outputs(self) -> int:
        return sum(head.width for head in self.heads)

    def columns(self) -> Iterator[tuple[Head, slice]]:
        """Each head with the output columns it owns."""
        start = 0
        for head in self.heads:
            yield head, slice(start, start + head.width)
            start += head.width


def classification(labels: Sequence[str]) -> tuple[Head, ...]:
    """The heads of a plain classifier: one classification head over ``labels``."""
    return (Head("class", "classification", tuple(labels)),)


def _targets(y: Any, index: int, heads: Sequence[Head]) -> Any:
    return y if len(heads) == 1 and y.ndim == 1 else y[:, index]


def metric_names(heads: Sequence[Head]) -> list[str]:
    """The keys :func:`evaluate` returns; a single head's are bare (``accuracy``), several are prefixed
    with the head's name (``rating.rmse``)."""
    per_kind = {
        "classification": ["accuracy"],
        "binary": ["auc", "log_loss", "accuracy"],
        "regression": ["rmse", "mae"],
    }
    return [_key(heads, head, m) for head in heads for m in per_kind[head.kind]]


def primary_metrics(heads: Sequence[Head]) -> list[str]:
    """Each head's main metric, as keys of :func:`evaluate`."""
    return [_key(heads, head, PRIMARY[head.kind]) for head in heads]


def _key(heads: Sequence[Head], head: Head, metric: str) -> str:
    return metric if len(heads) == 1 else f"{head.name}.{metric}"


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties share their average rank); NaN when one class is absent."""
    import numpy as np

    positive = labels > 0.5
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    _, inverse, counts = np.unique(scores[order], return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2
    ranks = np.empty(len(scores))
    ranks[order] = average_rank[inverse]
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate(heads: Sequence[Head], outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Every metric of every head (see :func:`metric_names`) for ``outputs`` against labels ``y``."""
    import numpy as np

    signature = Signature((), tuple(heads))
    result: dict[str, float] = {}
    for index, (head, columns) in enumerate(signature.columns()):
        out = outputs[:, columns].astype(np.float64)
        target = _targets(y, index, heads).astype(np.float64)
        if head.kind == "classification":
            result[_key(heads, head, "accuracy")] = float((out.argmax(axis=1) == target).mean())
        elif head.kind == "binary":
            logit = out[:, 0]
            result[_key(heads, head, "auc")] = auc(logit, target)
            result[_key(heads, head, "log_loss")] = float((np.logaddexp(0, logit) - target * logit).mean())
            result[_key(heads, head, "accuracy")] = float(((logit > 0) == (target > 0.5)).mean())
        else:
            error = out[:, 0] - target
            result[_key(heads, head, "rmse")] = float(np.sqrt((error**2).mean()))
            result[_key(heads, head, "mae")] = float(np.abs(error).mean())
    return result


def score(heads: Sequence[Head], metrics: dict[str, float]) -> float:
    """One number to select epochs and trials by (higher is better): the mean of the heads' main metrics,
    an error counting negatively. For a classifier it is its accuracy."""
    values = [-metrics[k] if k.rsplit(".", 1)[-1] in LOWER_IS_BETTER else metrics[k] for k in primary_metrics(heads)]
    return sum(values) / len(values)


def decision_agreement(heads: Sequence[Head], reference: np.ndarray, other: np.ndarray) -> float:
    """The share of examples where both outputs decide alike, for the head that agrees least: the same
    top class, or the same side of 0 for a binary logit; 1.0 when no head decides (regression only)."""
    signature = Signature((), tuple(heads))
    agreements = [1.0]
    for head, columns in signature.columns():
        if head.kind == "classification":
            same = reference[:, columns].argmax(axis=1) == other[:, columns].argmax(axis=1)
        elif head.kind == "binary":
            same = (reference[:, columns] > 0) == (other[:, columns] > 0)
        else:
            continue
        agreements.append(float(same.mean()))
    return min(agreements)


def head_losses(heads: Sequence[Head], outputs: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The training loss of each head (cross-entropy, binary cross-entropy on the logit, mean squared
    error), named ``task`` for a single head and ``task.<head>`` for several."""
    import torch.nn.functional as F

    signature = Signature((), tuple(heads))
    terms = {}
    for index, (head, columns) in enumerate(signature.columns()):
        out = outputs[:, columns].float()
        target = _targets(y, index, heads)
        if head.kind == "classification":
            loss = F.cross_entropy(out, target.long())
        elif head.kind == "binary":
            loss = F.binary_cross_entropy_with_logits(out[:, 0], target.float())
        else:
            loss = F.mse_loss(out[:, 0], target.float())
        terms["task" if len(heads) == 1 else f"task.{head.name}"] = loss
    return terms


def retention(primary: Sequence[str], metrics: dict[str, float], reference: dict[str, float]) -> float:
    """How much of ``reference``'s quality ``metrics`` keep, for the main metric that keeps least: the
    ratio of a higher-is-better metric (accuracy, AUC), the inverse ratio of an error (RMSE)."""
    kept = [
        reference[k] / metrics[k] if k.rsplit(".", 1)[-1] in LOWER_IS_BETTER else metrics[k] / reference[k]
        for k in primary
    ]
    return float("nan") if any(k != k for k in kept) else min(kept)


def format_metric(name: str, value: float) -> str:
    """An accuracy as a percentage, any other metric (AUC, RMSE, log loss) to four decimals."""
    return f"{value:.2%}" if name.rsplit(".", 1)[-1] == "accuracy" else f"{value:.4f}"

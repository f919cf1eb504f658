"""What every interactions data set builds: the task from raw interactions, split by time per user.

Both heads are predicted from categorical inputs: the rating (regression) and whether the user liked the item
(binary, rating >= ``like_threshold``). Each user's interactions are split by time, so the test split holds
every user's latest ones. Within each id field, index 0 stands for a value not seen in the train split and
known values get 1..n, most frequent in train first; the vocabularies travel in ``preprocessing``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field as Option
from pydantic import model_validator

from edgepeft import DataError, Field, Head, Split, StrictModel, TaskData

if TYPE_CHECKING:
    import numpy as np

UNKNOWN = "<unknown>"
HEADS = {"rating": Head("rating", "regression"), "like": Head("like", "binary")}
SPLIT_DESCRIPTION = (
    "per user, by time: the latest ceil(test_fraction * n) interactions (at least 1) are test, the "
    "ceil(validation_fraction * n) before them (at least 1) validation, the rest train; users with fewer "
    "than 3 interactions are all train"
)
MIN_SPLIT_USER = 3
"""A user needs this many interactions to give one to each split."""


class SplitOptions(StrictModel):
    validation_fraction: float = Option(0.1, gt=0, lt=0.5, description="Share of each user's interactions.")
    test_fraction: float = Option(0.1, gt=0, lt=0.5, description="Share of each user's latest interactions.")
    like_threshold: float = Option(4.0, description="A rating at or above it counts as a like.")
    heads: list[Literal["rating", "like"]] = Option(
        ["rating", "like"], min_length=1, description="The heads to predict; one alone makes a single-task model."
    )

    @model_validator(mode="after")
    def _distinct_heads(self) -> SplitOptions:
        if len(set(self.heads)) != len(self.heads):
            raise ValueError("heads repeats a head")
        return self


@dataclass(frozen=True)
class Interactions:
    """Raw interactions, one entry per row: each id field's values (``user`` and ``item`` first; None when
    missing), ratings, timestamps, and multi-hot fields as (names, 0/1 matrix of one column per name)."""

    ids: dict[str, list[str | None]]
    ratings: np.ndarray
    timestamps: np.ndarray
    multi_hot: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)


def time_split(
    users: Sequence[Any], items: Sequence[Any], timestamps: np.ndarray, validation_fraction: float, test_fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted row indices of (train, validation, test), split per user by time (see ``SPLIT_DESCRIPTION``);
    ties in time are broken by item, then by row. It takes no seed: the same rows always split alike."""
    import numpy as np

    _, user_codes = np.unique(np.asarray(users, dtype=str), return_inverse=True)
    _, item_codes = np.unique(np.asarray(items, dtype=str), return_inverse=True)
    order = np.lexsort((np.arange(len(users)), item_codes, timestamps, user_codes))
    counts = np.bincount(user_codes)
    n = counts[user_codes[order]]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    from_end = n - 1 - (np.arange(len(order)) - starts[user_codes[order]])
    eligible = n >= MIN_SPLIT_USER  # each split gets at least 1, train keeps at least 1
    n_test = np.where(eligible, np.clip(_ceil(test_fraction * n), 1, n - 2), 0)
    n_val = np.where(eligible, np.clip(_ceil(validation_fraction * n), 1, n - n_test - 1), 0)
    test = from_end < n_test
    val = ~test & (from_end < n_test + n_val)
    return np.sort(order[~test & ~val]), np.sort(order[val]), np.sort(order[test])


def _ceil(values: np.ndarray) -> np.ndarray:
    """Ceiling that ignores float noise (0.1 * 30 is 3.0000000000000004, not above 3)."""
    import numpy as np

    return np.ceil(values - 1e-9).astype(np.int64)


def vocabulary(values: Sequence[str | None]) -> list[str]:
    """``<unknown>``, then the distinct values (None skipped) by descending count, ties by string order."""
    counts = Counter(v for v in values if v is not None)
    return [UNKNOWN, *sorted(counts, key=lambda v: (-counts[v], v))]


def task_data(name: str, data: Interactions, options: SplitOptions, preprocessing: dict[str, Any]) -> TaskData:
    """Split ``data`` by time, index its id fields by train vocabularies, and build the two heads' labels."""
    import numpy as np

    train, val, test = time_split(
        data.ids["user"], data.ids["item"], data.timestamps, options.validation_fraction, options.test_fraction
    )
    if len(val) == 0:
        raise DataError(
            f"no user has {MIN_SPLIT_USER} or more interactions, so the validation and test splits are empty",
            where=f"data set {name!r}",
            fix="Add more interactions per user",
        )
    columns, fields, vocabularies = [], [], {}
    for field_name, values in data.ids.items():
        vocab = vocabulary([values[i] for i in train])
        index = {value: i for i, value in enumerate(vocab) if i}
        columns.append(np.array([index.get(v, 0) for v in values], dtype=np.float32)[:, None])
        fields.append(Field(field_name, len(vocab)))
        vocabularies[field_name] = vocab
    for field_name, (names, matrix) in data.multi_hot.items():
        columns.append(matrix.astype(np.float32))
        fields.append(Field(field_name, len(names), multi_hot=True))
    x = np.concatenate(columns, axis=1)
    ratings = data.ratings.astype(np.float32)
    targets = {"rating": ratings, "like": (data.ratings >= options.like_threshold).astype(np.float32)}
    y = np.stack([targets[head] for head in options.heads], axis=1)
    starts = np.cumsum([0] + [f.width for f in fields])
    return TaskData(
        name=name,
        train=Split(x[train], y[train]),
        validation=Split(x[val], y[val]),
        test=Split(x[test], y[test]),
        heads=tuple(HEADS[head] for head in options.heads),
        fields=tuple(fields),
        preprocessing={
            **preprocessing,
            "fields": [{**f.to_dict(), "column": int(start)} for f, start in zip(fields, starts, strict=False)],
            "vocabularies": vocabularies,
            "multi_hot": {k: list(names) for k, (names, _) in data.multi_hot.items()},
            "like_threshold": options.like_threshold,
            "rating_range": [float(data.ratings[train].min()), float(data.ratings[train].max())],
            "split": SPLIT_DESCRIPTION,
        },
    )

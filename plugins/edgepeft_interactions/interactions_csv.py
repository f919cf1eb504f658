"""Data set ``interactions-csv``: a user's own interaction log as CSV (user, item, rating, timestamp, extra
categorical columns)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from pydantic import Field as Option
from pydantic import model_validator

from edgepeft import DataError, Dataset, TaskData

from .interaction_task import Interactions, SplitOptions, task_data


class InteractionsCSVOptions(SplitOptions):
    path: str = Option(description="CSV file with one interaction per row and a header row.")
    user_column: str = Option("user_id", description="Column holding the user id.")
    item_column: str = Option("item_id", description="Column holding the item id.")
    rating_column: str = Option("rating", description="Column holding the numeric rating.")
    timestamp_column: str = Option("timestamp", description="Column holding a numeric time (e.g. Unix seconds).")
    features: list[str] = Option([], description="Extra categorical columns, each an id field of its own.")
    delimiter: str = Option(",", min_length=1, max_length=1, description="The CSV field separator.")

    @model_validator(mode="after")
    def _distinct_fields(self) -> InteractionsCSVOptions:
        taken = {"user", "item", self.user_column, self.item_column, self.rating_column, self.timestamp_column}
        clashes = sorted({f for f in self.features if f in taken or self.features.count(f) > 1})
        if clashes:
            raise ValueError(f"features repeat or reuse a column or field name: {', '.join(clashes)}")
        return self


def read_interactions_csv(options: InteractionsCSVOptions) -> Interactions:
    """The interactions in the CSV file at ``options.path``; an empty feature value is None (unknown)."""
    import numpy as np

    path = Path(options.path).expanduser()
    wanted = {
        "user_column": options.user_column,
        "item_column": options.item_column,
        "rating_column": options.rating_column,
        "timestamp_column": options.timestamp_column,
        **{f"features[{i}]": f for i, f in enumerate(options.features)},
    }
    rows: list[list[str]] = []
    numbers: list[tuple[float, float]] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            reader = csv.reader(stream, delimiter=options.delimiter)
            header = next(reader, None)
            if header is None:
                raise DataError("the file is empty", where=str(path), fix="Write a header row, then one row per rating")
            for option, column in wanted.items():
                if column not in header:
                    raise DataError(
                        f"no column {column!r}; the header has {', '.join(map(repr, header))}",
                        where=str(path),
                        fix=f"Set `{option}` under [data.options] to the column that holds it",
                    )
            picks = [header.index(c) for c in wanted.values()]
            for row in reader:
                if not row:
                    continue
                where = f"{path}, line {reader.line_num}"
                if len(row) != len(header):
                    raise DataError(f"{len(row)} fields, the header has {len(header)}", where=where)
                values = [row[i] for i in picks]
                for value, column in zip(values[:2], (options.user_column, options.item_column), strict=True):
                    if not value:
                        raise DataError(f"the {column!r} value is empty", where=where)
                numbers.append((_number(values[2], "rating", where), _number(values[3], "timestamp", where)))
                rows.append(values)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        what = "no such file" if isinstance(exc, FileNotFoundError) else f"cannot read the file: {exc}"
        raise DataError(what, where=str(path), fix="Set `path` under [data.options] to your CSV file") from None
    if not rows:
        raise DataError("the file holds a header but no interactions", where=str(path))
    ratings, timestamps = np.array(numbers, dtype=np.float64).T
    features = {f: [r[4 + k] or None for r in rows] for k, f in enumerate(options.features)}
    return Interactions(
        ids={"user": [r[0] for r in rows], "item": [r[1] for r in rows], **features},
        ratings=ratings,
        timestamps=timestamps,
    )


def _number(value: str, kind: str, where: str) -> float:
    """``value`` as a finite float, else a DataError saying where."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise DataError(f"the {kind} {value!r} is not a number", where=where)
    return number


class InteractionsCSV(Dataset):
    name = "interactions-csv"
    description = (
        "your own interaction log as CSV (user, item, rating, timestamp, extra categorical columns): "
        "rating and like heads; split by time per user"
    )
    Options = InteractionsCSVOptions

    def load(self, options: InteractionsCSVOptions, seed: int) -> TaskData:
        """Read the file and split by time; ``seed`` is unused (the split does not depend on it)."""
        names = ", ".join(["user", "item", *options.features])
        return task_data(self.name, read_interactions_csv(options), options, {"input": f"categorical ids: {names}"})

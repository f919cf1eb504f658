"""Data set plugins ``movielens-100k`` and ``interactions-csv``: user-item interactions with ratings.

Both predict two heads from categorical inputs: the rating (regression) and whether the user liked the item
(binary, rating >= ``like_threshold``). Each user's interactions are split by time, so the test split holds
every user's latest ones. Within each id field, index 0 stands for a value not seen in the train split and
known values get 1..n, most frequent in train first; the vocabularies travel in ``preprocessing``.
"""

from __future__ import annotations

import csv
import importlib.util
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field as Option
from pydantic import model_validator

import edgepeft
from edgepeft import DataError, Dataset, Field, Head, Split, StrictModel, TaskData

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

AGE_BUCKETS = (("<18", 0), ("18-24", 18), ("25-34", 25), ("35-44", 35), ("45-49", 45), ("50-55", 50), ("56+", 56))
"""MovieLens-1M's age groups: (name, lowest age)."""
RECBOLE_HINT = "pip install --no-deps -r requirements-data.txt"
MOVIELENS_FIX = f"Reinstall recbole, whose files hold MovieLens-100K: `{RECBOLE_HINT}`"


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


# -- movielens-100k ------------------------------------------------------------------------------------


def movielens_folder() -> Path:
    """recbole's copy of MovieLens-100K, found without importing recbole."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("recbole is not installed", where="data set 'movielens-100k'", fix=MOVIELENS_FIX)
    return Path(spec.submodule_search_locations[0]) / "dataset_example" / "ml-100k"


def read_atomic(path: Path, columns: Sequence[str]) -> list[list[str]]:
    """The rows of a recbole atomic file (tab-separated, ``name:type`` headers), cut to ``columns``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the file: {exc}", where=str(path), fix=MOVIELENS_FIX) from None
    header = [h.split(":")[0] for h in lines[0].split("\t")] if lines else []
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(
            f"the header lacks {', '.join(missing)} (it has {', '.join(header) or 'nothing'})",
            where=str(path),
            fix=MOVIELENS_FIX,
        )
    picks = [header.index(c) for c in columns]
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        if len(parts) != len(header):
            raise DataError(
                f"{len(parts)} fields, the header has {len(header)}", where=f"{path}, line {number}", fix=MOVIELENS_FIX
            )
        rows.append([parts[i] for i in picks])
    return rows


def age_bucket(age: str) -> str | None:
    """The MovieLens-1M age group of ``age``; None when it is not a number."""
    if not age.isdigit():
        return None
    return next(name for name, lowest in reversed(AGE_BUCKETS) if int(age) >= lowest)


def read_movielens(folder: Path) -> Interactions:
    """MovieLens-100K's interactions joined with its user and item tables."""
    import numpy as np

    inter = read_atomic(folder / "ml-100k.inter", ("user_id", "item_id", "rating", "timestamp"))
    users = {
        u: (age_bucket(age), gender, occupation, (zip_code[:1] if zip_code[:1].isdigit() else "other"))
        for u, age, gender, occupation, zip_code in read_atomic(
            folder / "ml-100k.user", ("user_id", "age", "gender", "occupation", "zip_code")
        )
    }
    items = read_atomic(folder / "ml-100k.item", ("item_id", "release_year", "class"))
    decades = {i: f"{int(year) // 10 * 10}s" if year.isdigit() else "unknown" for i, year, _ in items}
    genre_names = sorted({g for *_, genres in items for g in genres.split()})
    genre_columns = {g: c for c, g in enumerate(genre_names)}
    item_genres = np.zeros((len(items), len(genre_names)), dtype=np.float32)
    item_row = {}
    for row, (item, _, genres) in enumerate(items):
        item_row[item] = row
        item_genres[row, [genre_columns[g] for g in genres.split()]] = 1.0
    user_ids = [r[0] for r in inter]
    item_ids = [r[1] for r in inter]
    try:
        ratings, timestamps = (np.array([r[k] for r in inter], dtype=np.float64) for k in (2, 3))
    except ValueError as exc:
        raise DataError(f"a rating or timestamp is not a number: {exc}", where=str(folder / "ml-100k.inter")) from None
    profile = [users.get(u, (None,) * 4) for u in user_ids]
    genre_rows = np.array([item_row.get(i, -1) for i in item_ids])
    genres = np.where((genre_rows >= 0)[:, None], item_genres[genre_rows], 0.0)
    return Interactions(
        ids={
            "user": user_ids,
            "item": item_ids,
            "age": [p[0] for p in profile],
            "gender": [p[1] for p in profile],
            "occupation": [p[2] for p in profile],
            "zip": [p[3] for p in profile],
            "decade": [decades.get(i) for i in item_ids],
        },
        ratings=ratings,
        timestamps=timestamps,
        multi_hot={"genre": (genre_names, genres)},
    )


class MovieLens100K(Dataset):
    name = "movielens-100k"
    description = (
        "MovieLens-100K (943 users, 1,682 movies, 100,000 ratings) from recbole's files: rating and like "
        "heads from user, movie and genre ids; split by time per user"
    )
    Options = SplitOptions
    requires = ("recbole",)
    install_hint = RECBOLE_HINT

    def load(self, options: SplitOptions, seed: int) -> TaskData:
        """Read the files and split by time; ``seed`` is unused (the split does not depend on it)."""
        data = read_movielens(movielens_folder())
        return task_data(
            self.name,
            data,
            options,
            {
                "input": "user id, movie id, the user's age group, gender, occupation, zip code's first "
                "character, the movie's release decade, and its genres",
                "age_buckets": [{"name": name, "min_age": lowest} for name, lowest in AGE_BUCKETS],
            },
        )


# -- interactions-csv ----------------------------------------------------------------------------------


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


@edgepeft.hookimpl
def edgepeft_register_datasets(register: edgepeft.Registrar) -> None:
    register(MovieLens100K)
    register(InteractionsCSV)

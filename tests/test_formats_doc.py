"""docs/formats.md is what scripts/gen_formats.py makes of the file models in edgepeft/artifacts/."""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_formats_doc_matches_the_models():
    spec = importlib.util.spec_from_file_location("gen_formats", ROOT / "scripts" / "gen_formats.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    written, expected = (ROOT / "docs" / "formats.md").read_text(encoding="utf-8"), generator.render()
    if written != expected:
        diff = difflib.unified_diff(written.splitlines(), expected.splitlines(), "docs/formats.md", "the models", n=0)
        pytest.fail(
            "docs/formats.md differs from the models in edgepeft/artifacts/: run python scripts/gen_formats.py\n"
            + "\n".join(list(diff)[:20]),
            pytrace=False,
        )

"""The out-of-tree example plugin (examples/edgepeft-clustering), installed as its own distribution, is
discovered through its entry point, and EDGEPEFT_DISABLE_PLUGINS removes it."""

from __future__ import annotations

import os
import subprocess
import sys


def _plugins(**env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "edgepeft", "plugins"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **env},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_example_plugin_is_listed_with_its_own_distribution():
    rows = [line.split("│") for line in _plugins().splitlines() if "cluster" in line]
    cells = [[c.strip() for c in row if c.strip()] for row in rows]
    assert ["cluster", "technique", "clustering", "edgepeft-clustering", "0.1.0", "available"] in cells


def test_blocking_the_example_plugin_removes_it():
    assert "edgepeft-clustering" not in _plugins(EDGEPEFT_DISABLE_PLUGINS="clustering")

"""`edgepeft plugin new`: each kind's package installs, is discovered, conforms and passes its own tests;
bad input is one line with exit code 2 and writes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgepeft.authoring.scaffold import create_plugin, render
from edgepeft.authoring.templates import KINDS
from edgepeft.cli import app
from edgepeft.errors import EdgepeftError
from edgepeft.host.manager import default_manager

RUFF_RULES = "E,F,W,I,B,UP,SIM,RUF"  # the repo's [tool.ruff.lint] select
PIP_INSTALL_INTO = ("-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target")
"""A regular install into a folder: its dist-info carries the entry point, and the venv is left untouched."""


def _new(*args: str):
    return CliRunner().invoke(app, ["plugin", "new", *args], obj=default_manager(), env={"COLUMNS": "200"})


def _pythons(*commands: tuple[str, ...], site: Path) -> list[str]:
    """Run this interpreter once per command, side by side, with the package installed in ``site`` importable;
    check each succeeds and return their outputs."""
    # One torch thread: on a busy shared CPU, torch's default thread pool makes tiny trainings ~10x slower.
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "250", "OMP_NUM_THREADS": "1"}
    pipe = subprocess.PIPE
    procs = [
        subprocess.Popen([sys.executable, *args], env=env, cwd=site.parent, stdout=pipe, stderr=pipe, text=True)
        for args in commands
    ]
    outputs = []
    for args, proc in zip(commands, procs, strict=True):
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{' '.join(args)}:\n{stdout}\n{stderr}"
        outputs.append(stdout)
    return outputs


@pytest.mark.parametrize("kind", KINDS)
def test_generated_package_installs_is_discovered_conforms_and_passes_its_tests(kind, tmp_path):
    name = f"scaffolded-{kind}"
    result = _new(name, "--kind", kind, "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    package = tmp_path / f"edgepeft-{name}"
    assert f"{package}/" in result.output and "pip install -e '.[test]'" in result.output
    site = tmp_path / "site"
    _pythons((*PIP_INSTALL_INTO, str(site), str(package)), site=site)
    _, listing, checked = _pythons(  # the installed package's own tests, the listing and the check
        ("-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests")),
        ("-m", "edgepeft", "plugins"),
        ("-m", "edgepeft", "plugins", "check", name),
        site=site,
    )
    row = next(line for line in listing.splitlines() if f"│ {name} " in line)
    cells = [cell.strip() for cell in row.split("│") if cell.strip()]
    assert cells[1:] == [kind, name, f"edgepeft-{name}", "0.1.0", "available"], cells
    assert f"│ {name} " in checked and "│ pass " in checked and "none failed" in checked


@pytest.mark.parametrize("kind", KINDS)
def test_generated_code_is_lint_clean_and_formatted(kind, tmp_path):
    ruff = shutil.which("ruff", path=Path(sys.executable).parent)
    if ruff is None:
        pytest.skip("ruff is not installed beside this interpreter")
    package = create_plugin(f"lint-{kind}", kind, tmp_path, default_manager()).folder
    for command in (["check", "--select", RUFF_RULES], ["format", "--check"]):
        result = subprocess.run([ruff, *command, "."], cwd=package, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Demo", "--kind", "technique"], "invalid plugin name 'Demo'"),
        (["2-demo", "--kind", "technique"], "invalid plugin name '2-demo'"),
        (["demo-", "--kind", "technique"], "invalid plugin name 'demo-'"),
        (["my_demo", "--kind", "technique"], "invalid plugin name 'my_demo'"),
        (["cnn", "--kind", "technique"], "a plugin named 'cnn' is already installed"),
        (["onnx", "--kind", "backend"], "a plugin named 'onnx' is already installed"),
        (["android", "--kind", "device"], "a device named 'android' is already registered, by plugin 'devices'"),
        (["demo", "--kind", "techniqe"], "unknown plugin kind 'techniqe'. Did you mean 'technique'?"),
        (["demo", "--kind", "model"], "unknown plugin kind 'model'"),
    ],
)
def test_bad_input_is_one_line_with_exit_2_and_writes_nothing(args, message, tmp_path):
    result = _new(*args, "--dir", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_is_refused_and_left_alone(tmp_path):
    notes = tmp_path / "edgepeft-demo" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("keep me")
    result = _new("demo", "--kind", "technique", "--dir", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert "edgepeft-demo already exists and is not an empty folder" in result.output
    assert "Traceback" not in result.output
    assert [p.name for p in notes.parent.iterdir()] == ["notes.txt"] and notes.read_text() == "keep me"


def test_an_empty_folder_is_filled(tmp_path):
    (tmp_path / "edgepeft-demo").mkdir()
    assert _new("demo", "--kind", "device", "--dir", str(tmp_path)).exit_code == 0
    assert (tmp_path / "edgepeft-demo" / "src" / "edgepeft_demo" / "profiles" / "demo.toml").is_file()


def test_a_failed_write_leaves_no_package_behind(tmp_path, monkeypatch):
    def render_unwritable(name: str, kind: str) -> dict[str, str]:
        return {**render(name, kind), "README.md/cannot-be-a-folder": ""}  # README.md is written as a file first

    monkeypatch.setattr("edgepeft.authoring.scaffold.render", render_unwritable)
    with pytest.raises(EdgepeftError, match="could not write"):
        create_plugin("demo", "technique", tmp_path, default_manager())
    assert list(tmp_path.iterdir()) == []

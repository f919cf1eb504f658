"""Atomic writes: a failure leaves the previous file or folder exactly as it was."""

from __future__ import annotations

import os

import pytest

from edgepeft.errors import EdgepeftError
from edgepeft.util import atomic


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "metrics.json"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError), atomic.atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_failed_directory_keeps_the_previous_bundle(tmp_path):
    target = tmp_path / "bundle"
    with atomic.atomic_directory(target) as tmp:
        (tmp / "model.onnx").write_text("v1")
    with pytest.raises(RuntimeError), atomic.atomic_directory(target) as tmp:
        (tmp / "model.onnx").write_text("v2-partial")
        raise RuntimeError("parity failed")
    assert (target / "model.onnx").read_text() == "v1"
    assert os.listdir(tmp_path) == ["bundle"]
    with atomic.atomic_directory(target) as tmp:
        (tmp / "model.onnx").write_text("v3")
    assert (target / "model.onnx").read_text() == "v3" and os.listdir(tmp_path) == ["bundle"]


def test_write_error_is_a_clear_error_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    atomic.write_text(target, "old")

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(EdgepeftError, match=r"could not write .*No space left on device"):
        atomic.write_text(target, "new")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["a.json"]


def test_leftovers_of_a_killed_process_are_cleared_on_the_next_write(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "bundle"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".bundle.{dead.stdout.strip()}.abc123.tmp"
    stale.mkdir()
    (stale / "model.onnx").write_text("half")
    mine = tmp_path / f".bundle.{os.getpid()}.live.tmp"  # a live process's work is left alone
    mine.mkdir()
    with atomic.atomic_directory(target) as tmp:
        (tmp / "model.onnx").write_text("whole")
    assert not stale.exists() and mine.exists()
    assert (target / "model.onnx").read_text() == "whole"


def test_a_swallowed_interrupt_still_stops_publication(tmp_path, monkeypatch):
    from edgepeft.util import interrupts

    target = tmp_path / "bundle"
    monkeypatch.setattr(interrupts, "_requested", True)  # as after a KeyboardInterrupt a library swallowed
    with pytest.raises(KeyboardInterrupt), atomic.atomic_directory(target) as tmp:
        (tmp / "model.onnx").write_text("whole")
    with pytest.raises(KeyboardInterrupt):
        atomic.write_text(tmp_path / "x.json", "{}")
    assert os.listdir(tmp_path) == []

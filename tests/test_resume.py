"""Determinism, and runs killed mid-epoch (SIGKILL) or interrupted (SIGINT) that resume to the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from edgepeft.testing import tiny_recipe, write_recipe
from edgepeft.util.atomic import sha256_file


def _recipe(tmp_path: Path) -> Path:
    recipe = tiny_recipe(name="long")
    recipe["data"]["batch_size"] = 16  # 74 steps an epoch: room to stop mid-epoch
    recipe["student"]["epochs"] = 4
    return write_recipe(tmp_path / "long.toml", recipe)


def _train(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "edgepeft", "train", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finished(runs: Path) -> tuple[str, dict]:
    metrics = json.loads((runs / "long" / "metrics.json").read_text())
    return sha256_file(runs / "long" / "student" / "model.safetensors"), metrics


def _stop_mid_student(proc: subprocess.Popen, checkpoint: Path, sig: int) -> dict:
    """Send ``sig`` once the run has checkpointed in the middle of a student epoch."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if checkpoint.is_file():
            try:
                state = torch.load(checkpoint, weights_only=True)
            except Exception:  # caught between writes of a new checkpoint: look again
                state = {}
            if state.get("phase") == "student" and state.get("step_in_epoch", 0) > 0 and state["epoch"] >= 2:
                proc.send_signal(sig)
                proc.wait(timeout=60)
                return state
        assert proc.poll() is None, f"the run ended before it could be stopped:\n{proc.stdout.read()}"
        time.sleep(0.01)
    raise AssertionError("no mid-epoch student checkpoint appeared")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, and a second one from scratch with the same seed, trained side by side."""
    root = tmp_path_factory.mktemp("reference")
    recipe = _recipe(root)
    folders = (root / "a", root / "b")
    procs = [_train(str(recipe), "--runs-dir", str(runs), "--checkpoint-every", "5") for runs in folders]
    for proc in procs:
        output = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, output
    return recipe, [_finished(runs) for runs in folders]


def test_same_seed_same_weights(reference):
    _, ((sha_a, metrics_a), (sha_b, metrics_b)) = reference
    assert sha_a == sha_b
    assert metrics_a["student"] == metrics_b["student"] and metrics_a["student_history"] == metrics_b["student_history"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_stopped_mid_epoch_and_resumed_ends_bit_identical(reference, tmp_path, sig):
    recipe, ((sha, metrics), _) = reference
    runs = tmp_path / "runs"
    proc = _train(str(recipe), "--runs-dir", str(runs), "--checkpoint-every", "5")
    state = _stop_mid_student(proc, runs / ".long.partial" / "checkpoint.pt", sig)
    assert not (runs / "long").exists()  # nothing published yet
    if sig == signal.SIGINT:
        output = proc.stdout.read()
        assert proc.returncode == 130, output
        assert "interrupted at step" in output and f"edgepeft train --resume {runs / 'long'}" in output
    resumed = _train("--resume", str(runs / "long"), "--checkpoint-every", "5")
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    assert "reusing the cached teacher" in (runs / "long" / "train.log").read_text()
    assert state["step"] > 0
    resumed_sha, resumed_metrics = _finished(runs)
    assert resumed_sha == sha
    assert resumed_metrics["student"] == metrics["student"]
    assert resumed_metrics["student_history"] == metrics["student_history"]
    assert sorted(p.name for p in runs.iterdir()) == [".teachers", "long"]  # partial folder and checkpoint gone


def test_resume_without_an_interrupted_run_is_a_clear_error(tmp_path):
    proc = _train("--resume", str(tmp_path / "runs" / "nothing"))
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 2 and "there is no interrupted run of 'nothing' to resume" in output
    assert os.listdir(tmp_path) == []

"""`edgepeft train` under torchrun: two CPU processes (gloo, DistributedDataParallel) train one run that
rank 0 alone writes, about as good as the same recipe trained in one process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import torch.distributed as dist

from edgepeft.api.dataset import Split
from edgepeft.testing import tiny_recipe, write_recipe
from edgepeft.train.loop import batches

needs_gloo = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="this torch build has no torch.distributed with the gloo backend",
)

# Loaded by every torchrun worker (through PYTHONPATH): counts the files each rank creates, changes or removes
# under $WATCH (opens for writing, renames, removals, new folders, copies) and reports them on exit.
WATCHER = """\
import atexit, os, sys

if "RANK" in os.environ and "WATCH" in os.environ:
    root, writes = os.environ["WATCH"], []
    flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    events = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "shutil.copytree", "shutil.rmtree"}

    def audit(event, args):
        if event == "open" and args[2] & flags:
            paths = args[:1]
        elif event in events:
            paths = args[:2] if event in ("os.rename", "shutil.copytree") else args[:1]
        else:
            return
        for path in paths:
            path = os.fspath(path) if isinstance(path, os.PathLike) else path
            if isinstance(path, str) and os.path.abspath(path).startswith(root):
                writes.append(path)

    sys.addaudithook(audit)
    atexit.register(lambda: print(f"WRITES rank={os.environ['RANK']} count={len(writes)}", file=sys.stderr))
"""


def _train(
    *args: str, processes: int = 1, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, float]:
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"] if processes > 1 else []
    command = [sys.executable, *launcher, "-m", "edgepeft", "train", *args, "--accelerator", "cpu"]
    start = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})
    return proc, time.monotonic() - start


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The same recipe trained in one process and in two (each with its own teacher)."""
    root = tmp_path_factory.mktemp("ddp")
    recipe = tiny_recipe(name="ddp")
    recipe["teacher"]["epochs"], recipe["student"]["epochs"] = 4, 8
    path = write_recipe(root / "ddp.toml", recipe)
    (root / "watch").mkdir()
    (root / "watch" / "sitecustomize.py").write_text(WATCHER)
    # one thread, as torchrun gives each of its processes: a second one only contends for a busy machine's cores
    single, single_s = _train(str(path), "--runs-dir", str(root / "one"), env={"OMP_NUM_THREADS": "1"})
    assert single.returncode == 0, single.stderr
    env = {
        "PYTHONPATH": os.pathsep.join([str(root / "watch"), os.environ.get("PYTHONPATH", "")]),
        "WATCH": str(root / "two"),
    }
    double, double_s = _train(str(path), "--runs-dir", str(root / "two"), processes=2, env=env)
    print(f"\none process: {single_s:.1f} s, two processes: {double_s:.1f} s")
    return {"root": root, "single": single, "double": double}


@needs_gloo
def test_two_processes_write_one_run_from_rank_0(runs):
    proc, two = runs["double"], runs["root"] / "two"
    assert proc.returncode == 0, proc.stdout + proc.stderr
    writes = dict(re.findall(r"WRITES rank=(\d) count=(\d+)", proc.stderr))
    assert writes.keys() == {"0", "1"} and int(writes["0"]) > 0 and writes["1"] == "0", proc.stderr
    assert proc.stdout.count("run ddp") == 1  # one summary table, from rank 0
    assert sorted(p.name for p in two.iterdir()) == [".teachers", "ddp"]  # no partial or temporary folders
    assert len(list((two / ".teachers").iterdir())) == 1
    for name in ("metrics.json", "train.log", "student/model.safetensors", "teacher/model.safetensors"):
        assert (two / "ddp" / name).is_file()
    assert not list(two.rglob("*.tmp")) and not (two / "ddp" / "checkpoint.pt").exists()
    log = (two / "ddp" / "train.log").read_text()
    assert "training on cpu in 2 processes" in log
    for epoch in range(1, 9):
        assert log.count(f"student epoch {epoch}/8:") == 1


@needs_gloo
def test_two_processes_score_like_one(runs):
    scores = {}
    for name in ("one", "two"):
        metrics = json.loads((runs["root"] / name / "ddp" / "metrics.json").read_text())
        scores[name] = metrics["student"]["test_score"]
        assert len(metrics["student_history"]) == 8
    print(f"\nstudent test accuracy: one process {scores['one']:.4f}, two processes {scores['two']:.4f}")
    assert scores["two"] > 0.8 and abs(scores["two"] - scores["one"]) < 0.04, scores


@needs_gloo
def test_more_processes_than_examples_in_a_batch_is_a_config_error(tmp_path):
    recipe = tiny_recipe(name="small")
    recipe["data"]["batch_size"] = 1
    proc, _ = _train(str(write_recipe(tmp_path / "small.toml", recipe)), "--runs-dir", str(tmp_path), processes=2)
    assert proc.returncode != 0
    assert "error: [data] batch_size: 2 processes cannot share batches of 1 examples" in proc.stderr
    assert re.search(r"exitcode\s*: 2 ", proc.stderr), proc.stderr  # torchrun stops the other process then


def test_each_process_gets_its_share_of_every_batch():
    split = Split(x=np.zeros((10, 1), np.float32), y=np.arange(10))
    whole = [b.index.tolist() for b in batches(split, 4, seed=3)]
    shares = [[b.index.tolist() for b in batches(split, 4, seed=3, rank=r, world=3)] for r in range(3)]
    assert all(len(s) == len(whole) for s in shares)  # the same steps in every process
    for step, indices in enumerate(whole):
        borrowed = whole[0][: max(0, 3 - len(indices))]  # a batch too short to share borrows the epoch's first
        assert sorted(i for s in shares for i in s[step]) == sorted(indices + borrowed)
        assert all(s[step] for s in shares)

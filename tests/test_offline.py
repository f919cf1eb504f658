"""edgepeft never reaches for the network: the main commands run with every socket refused."""

from __future__ import annotations

import os
import subprocess
import sys

from edgepeft.testing import tiny_recipe, write_recipe

BLOCK_NETWORK = """
import socket

def _refuse(*args, **kwargs):
    raise OSError("network access attempted while the network is unavailable")

socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
"""


def test_train_deploy_verify_without_network(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BLOCK_NETWORK)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "HF_HUB_OFFLINE": "0"}
    recipe = write_recipe(tmp_path / "r.toml", tiny_recipe(name="offline"))

    def edgepeft(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "edgepeft", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
        assert done.returncode in (0, 10), done.stdout + done.stderr
        assert "network access attempted" not in done.stdout + done.stderr
        return done.stdout

    check = subprocess.run(
        [sys.executable, "-c", "import socket; socket.create_connection(('localhost', 1))"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert "network access attempted" in check.stderr  # the block is in force in these subprocesses
    edgepeft("train", str(recipe), "--runs-dir", "runs")
    for device in ("android", "x86-server"):
        edgepeft(
            "deploy",
            "runs/offline",
            "--device",
            device,
            "--precision",
            "fp32",
            "--out",
            "dist",
            "--timing-seconds",
            "0.1",
        )
    assert "sample inputs give the recorded outputs" in " ".join(edgepeft("verify", "dist/offline-android.zip").split())

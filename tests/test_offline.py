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

    def start(*args: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "edgepeft", *args]
        pipe = subprocess.PIPE
        return subprocess.Popen(command, env=env, stdout=pipe, stderr=pipe, text=True, cwd=tmp_path)

    def finish(proc: subprocess.Popen) -> str:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode in (0, 10), stdout + stderr
        assert "network access attempted" not in stdout + stderr
        return stdout

    def edgepeft(*args: str) -> str:
        return finish(start(*args))

    check = subprocess.run(
        [sys.executable, "-c", "import socket; socket.create_connection(('localhost', 1))"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert "network access attempted" in check.stderr  # the block is in force in these subprocesses
    edgepeft("train", str(recipe), "--runs-dir", "runs")
    deploy = ("deploy", "runs/offline", "--precision", "fp32", "--out", "dist", "--timing-seconds", "0.1")
    deploys = [start(*deploy, "--device", device) for device in ("android", "x86-server")]  # side by side
    for proc in deploys:
        finish(proc)
    assert "sample inputs give the recorded outputs" in " ".join(edgepeft("verify", "dist/offline-android.zip").split())

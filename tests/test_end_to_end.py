"""A tiny train + deploy through the CLI in a temporary folder, and what the bundle must hold."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from typer.testing import CliRunner

import edgepeft
from edgepeft.cli import app
from edgepeft.host.manager import default_manager
from edgepeft.testing import tiny_recipe, write_recipe

LOOSE_BOX = """\
description = "test box with budgets any tiny model meets"

[hardware]
platform = "linux"
arch = "x86_64"
cores = 2
memory_mb = 4096
relative_speed = 1.0

[runtime]
backends = ["onnx", "cpu"]
precisions = ["fp32"]
threads = 1

[budgets]
batch_size = 8
max_size_mb = 10
p95_latency_ms = 1000
peak_memory_mb = 4000
min_accuracy_retention = 0.3
"""


@pytest.fixture(scope="module")
def workspace(digits_run, tmp_path_factory) -> dict[str, Path]:
    """The session's tiny digits run (``edgepeft train`` of ``tiny_recipe()``), and a folder with test devices."""
    root = tmp_path_factory.mktemp("e2e")
    devices = root / "devices"
    devices.mkdir()
    (devices / "loose-box.toml").write_text(LOOSE_BOX)
    (devices / "strict-box.toml").write_text(
        'description = "impossible"\nextends = "loose-box"\n[budgets]\nmax_size_mb = 0.001\n'
    )
    return {"root": root, "devices": devices, "run": digits_run}


@pytest.fixture
def cli(workspace, monkeypatch):
    monkeypatch.setenv("EDGEPEFT_DEVICES_PATH", str(workspace["devices"]))

    def invoke(*args: str):
        if args[0] in ("deploy", "profile"):
            args = (*args, "--timing-seconds", "0.2")  # short timings: the figures are not what these tests check
        return CliRunner().invoke(app, list(args), obj=default_manager())

    return invoke


def test_train_writes_the_run_folder(workspace):
    run = workspace["run"]
    for name in (
        "student/model.safetensors",
        "student/model.json",
        "teacher/model.safetensors",
        "metrics.json",
        "recipe.toml",
        "train.log",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["teacher"]["parameters"] > metrics["student"]["parameters"] > 0
    assert 0.1 < metrics["student"]["test_score"] <= 1
    assert metrics["dataset"]["sizes"] == {"train": 1169, "validation": 269, "test": 359}
    spec = json.loads((run / "student/model.json").read_text())
    weights = load_file(str(run / "student/model.safetensors"))
    assert sum(v.size for v in weights.values() if v.dtype == np.float32) >= spec["parameters"]
    assert "student: best epoch" in (run / "train.log").read_text()


def test_train_prints_teacher_vs_student(workspace, cli, tmp_path):
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(workspace["run"].parent, runs)  # training the same recipe again replaces the run
    result = cli("train", str(write_recipe(tmp_path / "tiny.toml", tiny_recipe())), "--runs-dir", str(runs))
    assert result.exit_code == 0, result.output
    assert "teacher" in result.output and "student" in result.output and "fewer parameters" in result.output
    assert "reusing the cached teacher" in (runs / "tiny" / "train.log").read_text()


def test_deploy_onnx_bundle_with_manifest_and_parity(workspace, cli):
    dist = workspace["root"] / "dist"
    result = cli("deploy", str(workspace["run"]), "--device", "loose-box", "--out", str(dist))
    assert result.exit_code == 0, result.output
    bundle = dist / "tiny-loose-box"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["schema_version"] == 1
    assert manifest["model"]["backend"] == "onnx" and (bundle / "model.onnx").is_file()
    assert {f["path"] for f in manifest["files"]} == {
        "model.onnx",
        "labels.txt",
        "samples.json",
        "README.md",
        "report.html",
    }
    assert manifest["inputs"] == [
        {"name": "input", "shape": ["batch", 1, 8, 8], "dtype": "float32", "quantization": None}
    ]
    assert manifest["outputs"][0]["shape"] == ["batch", 10]
    parity = manifest["metrics"]["parity"]
    assert parity["examples"] == 359 and parity["top1_agreement"] >= 0.995 and parity["max_abs_diff"] < 1e-4
    assert manifest["labels"] == [str(d) for d in range(10)]
    memory = manifest["metrics"]["peak_memory_mb"]
    assert memory["process_peak_mb"] > memory["before_load_mb"] > 20 and memory["where"] == "host"
    latency = manifest["metrics"]["latency_host_ms"]
    assert set(latency) == {"1", "8"} and latency["8"]["iterations"] >= 50
    assert 0 < latency["8"]["p50_ms"] <= latency["8"]["p95_ms"] <= latency["8"]["p99_ms"]
    assert manifest["preprocessing"]["scale"] == pytest.approx(1 / 16)
    assert manifest["versions"]["onnxruntime"] and manifest["versions"]["torch"]
    assert manifest["provenance"]["seed"] == 0 and len(manifest["provenance"]["dataset_fingerprint"]) == 64
    assert manifest["device"]["name"] == "loose-box" and len(manifest["device"]["sha256"]) == 64
    assert {b["budget"]: b["status"] for b in manifest["budgets"]} == {
        "max_size_mb": "pass",
        "p95_latency_ms": "pass",
        "peak_memory_mb": "pass",
        "min_accuracy_retention": "pass",
    }
    with zipfile.ZipFile(dist / "tiny-loose-box.zip") as archive:
        assert sorted(archive.namelist()) == sorted(
            f"tiny-loose-box/{p}"
            for p in ("model.onnx", "labels.txt", "manifest.json", "samples.json", "README.md", "report.html")
        )
    assert not [p for p in dist.iterdir() if p.name.startswith(".")], "temporary files left behind"

    verified = cli("verify", str(bundle))
    assert verified.exit_code == 0, verified.output
    (bundle / "labels.txt").write_text("tampered\n")
    tampered = cli("verify", str(bundle))
    assert tampered.exit_code == edgepeft.ArtifactError.exit_code
    assert "labels.txt: sha256 differs" in tampered.output


def test_deploy_exported_model_runs_in_plain_onnxruntime(workspace, cli):
    import onnxruntime as ort

    from edgepeft.artifacts.run_folder import open_run

    dist = workspace["root"] / "dist-ort"
    assert (
        cli(
            "deploy", "tiny", "--runs-dir", str(workspace["run"].parent), "--device", "loose-box", "--out", str(dist)
        ).exit_code
        == 0
    )
    manager = default_manager()
    data = open_run(workspace["run"], manager).data(manager)
    session = ort.InferenceSession(str(dist / "tiny-loose-box" / "model.onnx"))
    logits = session.run(None, {"input": data.test.x})[0]
    manifest = json.loads((dist / "tiny-loose-box" / "manifest.json").read_text())
    assert (logits.argmax(1) == data.test.y).mean() == pytest.approx(manifest["metrics"]["test_score"]["value"])


def test_deploy_cpu_backend(workspace, cli):
    dist = workspace["root"] / "dist-cpu"
    result = cli("deploy", str(workspace["run"]), "-d", "loose-box", "--backend", "cpu", "--out", str(dist))
    assert result.exit_code == 0, result.output
    manifest = json.loads((dist / "tiny-loose-box" / "manifest.json").read_text())
    assert manifest["model"]["file"] == "model.pt2" and manifest["metrics"]["parity"]["max_abs_diff"] < 1e-5


def test_budget_failure_exits_non_zero_and_says_which(workspace, cli):
    result = cli("deploy", str(workspace["run"]), "--device", "strict-box", "--out", str(workspace["root"] / "d2"))
    assert result.exit_code == 10
    assert "does not meet the strict-box budget (max_size_mb)" in result.output


def test_deploy_unknown_device_suggests(workspace, cli):
    result = cli("deploy", str(workspace["run"]), "--device", "androd")
    assert result.exit_code == 2
    assert "unknown device 'androd'" in result.output and "Did you mean 'android'" in result.output


def test_deploy_missing_run_is_one_clear_line(workspace, cli, tmp_path):
    result = cli("deploy", str(tmp_path / "nothing"), "--device", "loose-box")
    assert result.exit_code == edgepeft.ArtifactError.exit_code
    assert "not a finished run folder" in result.output and "Traceback" not in result.output


def test_verify_refuses_incomplete_or_malformed_bundles(workspace, cli, tmp_path):
    import shutil

    dist = workspace["root"] / "dist-verify"
    assert cli("deploy", str(workspace["run"]), "-d", "loose-box", "--out", str(dist)).exit_code == 0
    bundle = dist / "tiny-loose-box"

    def tampered(edit):
        copy = tmp_path / f"b{len(list(tmp_path.iterdir()))}"
        shutil.copytree(bundle, copy)
        edit(copy)
        return cli("verify", str(copy))

    def rewrite(folder, change):
        manifest = json.loads((folder / "manifest.json").read_text())
        change(manifest)
        (folder / "manifest.json").write_text(json.dumps(manifest))

    missing = tampered(lambda f: (f / "model.onnx").unlink())
    assert missing.exit_code == 8 and "model.onnx: missing" in missing.output
    extra = tampered(lambda f: (f / "extra.bin").write_bytes(b"x"))
    assert extra.exit_code == 8 and "extra.bin: not listed" in extra.output
    empty = tampered(lambda f: rewrite(f, lambda m: m.update(files=[])))
    assert empty.exit_code == 8 and "manifest lists no files" in empty.output
    escape = tampered(lambda f: rewrite(f, lambda m: m["files"].append({"path": "../x", "sha256": "0"})))
    assert escape.exit_code == 8 and "points outside the bundle" in escape.output
    garbage = tampered(lambda f: (f / "manifest.json").write_bytes(b"\xff\xfe[1]"))
    assert garbage.exit_code == 8 and "manifest is not valid JSON" in garbage.output

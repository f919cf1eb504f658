"""`edgepeft profile`, android bundles that `edgepeft verify` re-runs, pushing over adb, and interrupted deploys."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgepeft.artifacts.recipe import resolve
from edgepeft.cli import app
from edgepeft.host.manager import default_manager
from edgepeft.testing import tiny_recipe
from edgepeft.train.trainer import Trainer
from edgepeft.util.atomic import sha256_file

PHONE = (
    'description = "android phone with budgets a tiny test model meets"\nextends = "android"\n'
    "[budgets]\nmin_accuracy_retention = 0.3\n"
)
NHWC_BOX = (
    'description = "box whose only runtime is ONNX, asking for NHWC"\nextends = "x86-server"\n'
    '[runtime]\nbackends = ["onnx"]\ninput_layout = "NHWC"\n'
)
TIGHT = 'description = "android phone no model fits"\nextends = "android"\n[budgets]\nmax_size_mb = 0.001\n'

FAKE_ADB = """#!/usr/bin/env bash
echo "$*" >> "$ADB_LOG"
case "$*" in
  devices) printf 'List of devices attached\\n'
           [ -n "${ADB_DEVICE:-}" ] && printf '%s\\tdevice\\n' "$ADB_DEVICE"; exit 0 ;;
  *"shell ls /data/local/tmp/benchmark_model") exit 0 ;;
  *"shell /data/local/tmp/benchmark_model"*)
    echo "INFO: Inference timings in us: Init: 3044, First inference: 900, Warmup (avg): 520, Inference (avg): 520.5"
    echo "Timings (microseconds): count=100 first=900 curr=500 min=450 max=700 avg=520.5 std=20" \\
         "p5=460 median=510 p95=640"
    exit 0 ;;
  *) exit 0 ;;
esac
"""


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    (root / "devices").mkdir()
    (root / "devices" / "phone.toml").write_text(PHONE)
    (root / "devices" / "tight.toml").write_text(TIGHT)
    (root / "devices" / "nhwc-box.toml").write_text(NHWC_BOX)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEPEFT_DEVICES_PATH", str(root / "devices"))
        manager = default_manager()
        recipe = tiny_recipe(name="t")
        recipe["student"].update(epochs=8, options={"channels": [8, 16], "hidden": 32})
        Trainer(resolve(recipe, None, "t", manager), manager, root / "runs").run()
    return root


@pytest.fixture
def cli(space, monkeypatch):
    monkeypatch.setenv("EDGEPEFT_DEVICES_PATH", str(space / "devices"))

    def invoke(*args: str):
        if args[0] in ("deploy", "profile"):
            args = (*args, "--timing-seconds", "0.2")  # short timings: the figures are not what these tests check
        return CliRunner().invoke(app, list(args), obj=default_manager(), env={"COLUMNS": "200"})

    return invoke


def test_profile_prints_budgets_and_exits_non_zero_when_one_fails(space, cli):
    run = str(space / "runs" / "t")
    ok = cli("profile", run, "--device", "phone")
    assert ok.exit_code == 0, ok.output
    for text in (
        "parity (int8) on 359 held-out examples",
        "phone: estimated",
        "measured on this host",
        "p95_latency_ms",
        "peak_memory_mb",
        "min_accuracy_retention",
    ):
        assert text in ok.output
    report = json.loads(cli("profile", run, "--device", "phone", "--json").output)
    assert report["backend"] == "tflite" and report["precision"] == "int8" and report["within_budget"]
    assert report["latency_device_ms"]["source"] == "estimated"
    assert report["latency_host_ms"]["1"]["iterations"] >= 50
    assert report["peak_memory_mb"]["process_peak_mb"] > 0
    assert report["latency_host_ms"]["1"]["iterations"] < 20_000  # --timing-seconds 0.2 (the fixture) is honoured
    rec = json.loads(cli("profile", run, "--device", "android-recommendation", "--json").output)
    assert list(rec["latency_host_ms"]) == ["100"]  # a fixed-batch model is only timed at its batch
    nhwc = cli("profile", run, "--device", "nhwc-box")
    assert nhwc.exit_code == 5 and "onnx: builds NCHW inputs, the profile asks for NHWC" in nhwc.output
    tight = cli("profile", run, "--device", "tight")
    assert tight.exit_code == 10 and "does not meet the tight budget (max_size_mb)" in tight.output
    assert not any(p.name.startswith("t-") for p in space.iterdir())


def test_android_bundle_holds_what_an_app_needs_and_verifies(space, cli):
    out = space / "dist-android"
    result = cli("deploy", str(space / "runs" / "t"), "--device", "android", "--out", str(out))
    assert result.exit_code in (0, 10), result.output  # a tiny test model may miss the real android budget
    bundle = out / "t-android"
    names = {p.name for p in bundle.iterdir()}
    assert names == {"model.tflite", "labels.txt", "samples.json", "README.md", "report.html", "manifest.json"}
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["inputs"][0]["dtype"] == "int8" and manifest["inputs"][0]["quantization"]["scale"] > 0
    assert manifest["metrics"]["latency_device_ms"]["source"] == "estimated"
    readme = (bundle / "README.md").read_text()
    quant = manifest["inputs"][0]["quantization"]
    assert (
        "Interpreter(" in readme and "Array(1) { ByteArray(10) }" in readme and "import java.nio.ByteBuffer" in readme
    )
    assert f"round(x / {quant['scale']:.8g})" in readme and "+ -" not in readme and "- -" not in readme
    assert "setNumThreads(4)" in readme and manifest["model"]["threads"] == 4  # the device's, not this host's
    assert "<svg" in (bundle / "report.html").read_text()
    assert cli("verify", str(bundle)).exit_code == 0

    model = bundle / "model.tflite"
    original = model.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0xFF
    model.write_bytes(bytes(flipped))
    broken = cli("verify", str(bundle))
    assert broken.exit_code == 8 and "model.tflite: sha256 differs" in broken.output
    model.write_bytes(original)

    samples = json.loads((bundle / "samples.json").read_text())
    samples["samples"][0]["expected_output"] = [v + 1.0 for v in samples["samples"][0]["expected_output"]]
    (bundle / "samples.json").write_text(json.dumps(samples))
    entries = manifest["files"]
    for entry in entries:
        if entry["path"] == "samples.json":
            entry["sha256"] = sha256_file(bundle / "samples.json")
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    changed = cli("verify", str(bundle))
    assert changed.exit_code == 8 and "model.tflite: sample 0 gives a different output now" in changed.output

    del manifest["samples"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    unsampled = cli("verify", str(bundle))
    assert unsampled.exit_code == 8 and "names no sample file" in unsampled.output


def _fake_adb(tmp_path: Path, monkeypatch, device: str | None) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(FAKE_ADB)
    adb.chmod(0o755)
    log = tmp_path / "adb.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("ADB_LOG", str(log))
    if device:
        monkeypatch.setenv("ADB_DEVICE", device)
    return log


def test_push_sends_the_bundle_and_records_the_device_timing(space, cli, tmp_path, monkeypatch):
    log = _fake_adb(tmp_path, monkeypatch, "emulator-5554")
    out = tmp_path / "dist"
    result = cli("deploy", str(space / "runs" / "t"), "--device", "phone", "--out", str(out), "--push")
    assert result.exit_code == 0, result.output
    calls = log.read_text().splitlines()
    staging, final = "/data/local/tmp/edgepeft/.t-phone.staging", "/data/local/tmp/edgepeft/t-phone"
    assert calls[0] == "devices"
    assert any(c.startswith("-s emulator-5554 push") and c.endswith(f"{staging}/model.tflite") for c in calls)
    assert any(c.endswith(f"{staging}/manifest.json") for c in calls)
    bench = next(c for c in calls if "benchmark_model --graph" in c)
    assert f"--graph={staging}/model.tflite" in bench and "--num_threads=4" in bench
    assert calls[-1] == f"-s emulator-5554 shell rm -rf {final} && mv {staging} {final}"  # swapped in last
    manifest = json.loads((out / "t-phone" / "manifest.json").read_text())
    device = manifest["metrics"]["latency_device_ms"]
    assert device["source"] == "measured on the device" and device["p95_ms"] == pytest.approx(0.64)
    assert device["p50_ms"] == pytest.approx(0.51) and device["iterations"] == 100
    p95 = next(b for b in manifest["budgets"] if b["budget"] == "p95_latency_ms")
    assert p95["source"] == "measured on the device" and p95["value"] == pytest.approx(0.64)


def test_push_without_adb_or_without_a_device_does_nothing(space, cli, tmp_path, monkeypatch):
    out = tmp_path / "dist"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    no_adb = cli("deploy", str(space / "runs" / "t"), "--device", "phone", "--out", str(out), "--push")
    assert no_adb.exit_code == 11 and "adb is not installed" in no_adb.output
    monkeypatch.undo()
    monkeypatch.setenv("EDGEPEFT_DEVICES_PATH", str(space / "devices"))
    _fake_adb(tmp_path, monkeypatch, None)
    no_device = cli("deploy", str(space / "runs" / "t"), "--device", "phone", "--out", str(out), "--push")
    assert no_device.exit_code == 11 and "no Android device is attached" in no_device.output
    assert not out.exists()


def test_an_interrupted_deploy_leaves_the_previous_bundle_or_none(space, cli, tmp_path):
    out = tmp_path / "dist"
    command = [
        sys.executable,
        "-m",
        "edgepeft",
        "deploy",
        str(space / "runs" / "t"),
        "--device",
        "phone",
        "--out",
        str(out),
    ]
    env = {**os.environ, "EDGEPEFT_DEVICES_PATH": str(space / "devices")}
    bundle = out / "t-phone"

    def interrupted(after: float, sig: int) -> int:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(after)
        proc.send_signal(sig)
        return proc.wait(timeout=120)

    def intact_or_absent() -> None:
        visible = sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) if out.exists() else []
        assert visible in ([], ["t-phone", "t-phone.zip"]), visible
        if visible:
            assert cli("verify", str(bundle)).exit_code == 0

    # An interrupt can land before, during or after any stage; what must never be seen is a partial bundle.
    # (A SIGINT that arrives while jax/LiteRT import may be swallowed by their handlers: the run then simply
    # finishes, which is also a whole bundle.)
    codes = [interrupted(1.5, signal.SIGINT)]
    intact_or_absent()
    assert cli("deploy", str(space / "runs" / "t"), "--device", "phone", "--out", str(out)).exit_code == 0
    for after, sig in ((2.0, signal.SIGINT), (4.0, signal.SIGINT), (3.0, signal.SIGKILL), (5.0, signal.SIGKILL)):
        codes.append(interrupted(after, sig))
        intact_or_absent()
        assert bundle.exists()  # the previous bundle (or a newer whole one) stays
        if sig == signal.SIGINT:  # a clean interrupt removes its temporary files as well
            assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert sum(code != 0 for code in codes) >= 3, codes  # the signals did interrupt runs


def test_bench_command_measures_teacher_baseline_and_student_and_writes_its_files(space, cli, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEPEFT_DISABLE_PLUGINS", "tflite")  # ONNX and PyTorch rows only: the command, quickly
    result = cli("bench", str(space / "runs" / "t"), "--device", "phone", "--quick", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "ratios" in result.output and "tflite" not in result.output  # a disabled backend declares no rows
    bench = json.loads((tmp_path / "bench.json").read_text())
    labels = [r["label"] for r in bench["rows"]]
    assert labels == [
        "teacher cpu fp32",
        "teacher onnx fp32",
        "teacher onnx int8-dynamic",
        "student cpu fp32",
        "student onnx fp32",
        "student onnx int8",
        "student onnx int8-dynamic",
    ]
    assert bench["profile_batch"] == 1 and bench["references"]["baseline"] == "teacher onnx int8-dynamic"
    measured = {r["label"] for r in bench["rows"] if not r["refused"]}
    assert {r["label"] for r in bench["ratios"]} == measured and "teacher cpu fp32" in measured
    teacher = next(r["teacher"] for r in bench["ratios"] if r["label"] == "teacher cpu fp32")
    assert teacher["smaller"] == teacher["faster"] == teacher["throughput"] == 1.0
    baseline = next(r["baseline"] for r in bench["ratios"] if r["label"] == "teacher onnx int8-dynamic")
    assert baseline["smaller"] == baseline["faster"] == 1.0 and baseline["score_points"] == 0.0
    assert (tmp_path / "pareto.png").is_file() and "| student onnx int8 |" in (tmp_path / "bench.md").read_text()

"""The built-in default, as `make demo` runs it: the figures edgepeft promises for digits."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from edgepeft.cli import app


def test_default_train_and_deploy_meet_the_promised_floors(manager, tmp_path):
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "--runs-dir", str(tmp_path / "runs")], obj=manager)
    assert trained.exit_code == 0, trained.output
    metrics = json.loads((tmp_path / "runs" / "digits-distill" / "metrics.json").read_text())
    teacher, student = metrics["teacher"], metrics["student"]
    assert teacher["parameters"] / student["parameters"] >= 5
    assert student["test_score"] >= 0.95
    assert teacher["test_score"] - student["test_score"] <= 0.015

    deployed = runner.invoke(
        app,
        [
            "deploy",
            str(tmp_path / "runs" / "digits-distill"),
            "--device",
            "x86-server",
            "--out",
            str(tmp_path / "d"),
            "--timing-seconds",
            "0.2",
        ],
        obj=manager,
    )
    assert deployed.exit_code == 0, deployed.output
    manifest = json.loads((tmp_path / "d" / "digits-distill-x86-server" / "manifest.json").read_text())
    assert manifest["model"]["backend"] == "onnx"
    assert manifest["metrics"]["parity"]["top1_agreement"] >= 0.995
    assert all(b["status"] == "pass" for b in manifest["budgets"])

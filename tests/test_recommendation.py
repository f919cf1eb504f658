"""Multi-task recommendation end to end on MovieLens-100K: train (distill per head, learned head weights,
compressed embeddings), then export the student for the android-recommendation profile through the
parity gate on the held-out later interactions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgepeft.api.context import TrainContext
from edgepeft.artifacts.run_folder import load_task_data
from edgepeft.cli import app
from edgepeft.errors import ConfigError
from edgepeft.host.manager import default_manager
from edgepeft.testing import write_recipe

RECIPE = {
    "name": "tiny-recsys",
    "seed": 0,
    "data": {"dataset": "movielens-100k", "batch_size": 512},
    "teacher": {"model": "recsys", "epochs": 2, "lr": 0.005, "options": {"dim": 16, "hidden": [32]}},
    "student": {
        "model": "recsys",
        "epochs": 2,
        "lr": 0.01,
        "options": {
            "dim": 8,
            "hidden": [16],
            "ranks": {"user": 4},
            "keep_ids": {"item": 600},
            "hash_buckets": {"item": 100},
            "share": [["age", "occupation"]],
        },
    },
    "techniques": [{"name": "distill", "alpha": 0.5, "temperature": 2.0}, {"name": "multitask", "uncertainty": True}],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("recsys")
    recipe = write_recipe(root / "tiny-recsys.toml", RECIPE)
    result = CliRunner().invoke(app, ["train", str(recipe), "--runs-dir", str(root / "runs")], obj=default_manager())
    assert result.exit_code == 0, result.output
    return root / "runs" / "tiny-recsys", result.output


def test_the_run_reports_every_heads_metrics_and_the_hash_collisions(trained) -> None:
    run, output = trained
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "multi-head" and metrics["metrics"] == ["rating.rmse", "like.auc"]
    for role in ("teacher", "student"):
        test = metrics[role]["test_metrics"]
        assert 0.85 < test["rating.rmse"] < 1.3 and 0.6 < test["like.auc"] < 0.9, test
        assert set(test) == {"rating.rmse", "rating.mae", "like.auc", "like.log_loss", "like.accuracy"}
    assert metrics["student"]["parameters"] * 4 < metrics["teacher"]["parameters"]
    # learned uncertainty weights moved away from 1 and are reported
    weights = metrics["stages"][-1]["head_weights"]
    assert set(weights) == {"rating", "like"} and all(w != 1.0 for w in weights.values())
    # the stated collision rate: printed, and in metrics.json with the training-weighted share
    item = next(e for e in metrics["student"]["model"]["embeddings"] if e["field"] == "item")
    assert item["rows"] == 700 and item["hashed_ids"] > 800 and 0 < item["weighted_share"] < item["collision_share"]
    assert "item: ids from 600 on" in output and "of training interactions" in output
    age = next(e for e in metrics["student"]["model"]["embeddings"] if e["field"] == "age")
    assert age["shared_with"] == ["occupation"]


@pytest.mark.parametrize("backend", ["tflite", "onnx"])
def test_the_student_exports_int8_at_batch_100_through_the_parity_gate(trained, tmp_path, backend) -> None:
    run, _ = trained
    args = ["export", str(run), "--backend", backend, "--precision", "int8", "--batch-size", "100"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)], obj=default_manager())
    assert result.exit_code == 0, result.output
    assert "rating.rmse" in result.output and "like.auc" in result.output
    (folder,) = tmp_path.iterdir()
    described = json.loads((folder / "export.json").read_text())
    parity = described["parity"]
    assert parity["passed"] and parity["examples"] > 10_000  # the held-out later interactions
    assert parity["metrics"]["like.auc"] >= parity["reference_metrics"]["like.auc"] - 0.01
    assert parity["metrics"]["rating.rmse"] <= parity["reference_metrics"]["rating.rmse"] + 0.02
    if backend == "tflite":
        assert described["artifact"]["inputs"][0]["shape"][0] == 100  # built for 100 candidates


def test_the_profile_measures_latency_for_100_candidates(trained) -> None:
    run, _ = trained
    args = ["profile", str(run), "--device", "android-recommendation", "--timing-seconds", "0.2"]
    result = CliRunner().invoke(app, args, obj=default_manager())
    assert result.exit_code in (0, 10), result.output  # 10: a budget missed, still measured
    assert "android-recommendation budgets" in result.output
    assert any(line.strip("│ ").startswith("100 ") for line in result.output.splitlines()), result.output


def test_multitask_and_distill_name_what_is_wrong() -> None:
    manager = default_manager()
    single = manager.datasets.get("movielens-100k")
    data = single().load(single.Options(heads=["like"]), 0)
    multitask = manager.techniques.get("multitask")
    with pytest.raises(ConfigError, match="needs a task with several heads"):
        multitask(multitask.Options()).setup(TrainContext(data=data, teacher=None, batch_size=8, seed=0))
    both = load_task_data(manager, _resolved(manager), 0)
    with pytest.raises(ConfigError, match="weights name heads the data set lacks: click"):
        multitask(multitask.Options(weights={"click": 2.0})).setup(
            TrainContext(data=both, teacher=None, batch_size=8, seed=0)
        )


def _resolved(manager):
    from edgepeft.artifacts.recipe import resolve

    return resolve(RECIPE, None, "tiny-recsys", manager)


def test_deploy_bundles_the_student_for_the_phone_and_verifies(trained, tmp_path) -> None:
    run, _ = trained
    args = ["deploy", str(run), "--device", "android-recommendation", "--out", str(tmp_path), "--timing-seconds", "0.2"]
    result = CliRunner().invoke(app, args, obj=default_manager())
    assert result.exit_code in (0, 10), result.output
    bundle = tmp_path / "tiny-recsys-android-recommendation"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert [h["name"] for h in manifest["heads"]] == ["rating", "like"] and not (bundle / "labels.txt").exists()
    assert manifest["model"]["backend"] == "tflite" and manifest["model"]["batch_size"] == 100
    readme = (bundle / "README.md").read_text()
    assert "column 1: `like` (binary)" in readme and "vocabularies.item" in readme
    assert "val row = raw.map" in readme and "val like = 1f" in readme
    samples = json.loads((bundle / "samples.json").read_text())["samples"]
    assert set(samples[0]["label"]) == {"rating", "like"} and "expected_top1" not in samples[0]
    verified = CliRunner().invoke(app, ["verify", str(bundle)], obj=default_manager())
    assert verified.exit_code == 0, verified.output

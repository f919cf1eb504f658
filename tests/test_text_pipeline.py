"""Text classification end to end on real review snippets: a MiniLM teacher fine-tuned through LoRA adapters
(merged before saving), a student cut from its layers distilled from it with its vocabulary pruned to the
train split's tokens, and the student's export through the parity gate."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from edgepeft.cli import app
from edgepeft.plugins import default_manager
from edgepeft.testing import write_recipe

pytest.importorskip("peft")

SNIPPETS = 600


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from edgepeft_text import read_rotten_tomatoes, rotten_tomatoes_file

    root = tmp_path_factory.mktemp("text")
    texts, labels = read_rotten_tomatoes(rotten_tomatoes_file())
    with (root / "reviews.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts[:SNIPPETS], labels[:SNIPPETS], strict=True))
    recipe = {
        "name": "tiny-text",
        "seed": 0,
        "data": {
            "dataset": "text-csv",
            "batch_size": 32,
            "options": {"path": str(root / "reviews.csv"), "max_length": 32},
        },
        "teacher": {
            "model": "hf-classifier",
            "epochs": 1,
            "lr": 0.002,
            "options": {"layers": [0, 1]},
            "techniques": [{"name": "lora", "r": 4, "targets": ["query", "value"]}],
        },
        "student": {"model": "hf-classifier", "epochs": 1, "lr": 0.0005, "options": {"layers": [0]}},
        "techniques": [{"name": "distill", "alpha": 0.5, "temperature": 2.0}, {"name": "prune-vocab"}],
    }
    path = write_recipe(root / "tiny-text.toml", recipe)
    result = CliRunner().invoke(app, ["train", str(path), "--runs-dir", str(root / "runs")], obj=default_manager())
    assert result.exit_code == 0, result.output
    return root / "runs" / "tiny-text"


def test_the_teacher_trains_through_merged_adapters(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    (lora,) = metrics["teacher"]["techniques"]
    assert lora["technique"] == "lora" and lora["trainable_share"] < 0.05
    assert lora["trainable_parameters"] < 0.05 * lora["total_parameters"]
    spec = json.loads((trained / "teacher" / "model.json").read_text())
    assert spec["edits"] == []  # merged: the saved teacher is the plain model
    assert metrics["student"]["parameters"] < metrics["teacher"]["parameters"] / 3
    (vocabulary,) = metrics["stages"]
    assert vocabulary["stage"] == "02-prune-vocab" and vocabulary["vocabulary_after"] < 5_000
    recipe = (trained / "recipe.toml").read_text()
    assert "[[teacher.techniques]]" in recipe and 'name = "lora"' in recipe


def test_the_student_exports_through_the_parity_gate(trained, tmp_path):
    args = ["export", str(trained), "--backend", "onnx", "--precision", "fp32", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args, obj=default_manager())
    assert result.exit_code == 0, result.output
    (folder,) = tmp_path.iterdir()
    parity = json.loads((folder / "export.json").read_text())["parity"]
    assert parity["passed"] and parity["top1_agreement"] == 1.0

"""Text classification end to end on real review snippets: a MiniLM teacher fine-tuned through LoRA adapters
(merged before saving), a student cut from its layers distilled from it with its vocabulary pruned to the
train split's tokens, and the student's export through the parity gate."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgepeft.api.technique import count_parameters
from edgepeft.artifacts.run_folder import load_model
from edgepeft.cli import app
from edgepeft.host.manager import default_manager

pytest.importorskip("peft")


def test_the_teacher_trains_through_merged_adapters(text_run):
    metrics = json.loads((text_run / "metrics.json").read_text())
    (lora,) = metrics["teacher"]["techniques"]
    assert lora["technique"] == "lora" and lora["trainable_share"] < 0.05
    assert lora["trainable_parameters"] < 0.05 * lora["total_parameters"]
    spec = json.loads((text_run / "teacher" / "model.json").read_text())
    assert spec["edits"] == []  # merged: the saved teacher is the plain model
    assert sorted(p.name for p in (text_run / "teacher" / "adapter").iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert metrics["student"]["parameters"] < metrics["teacher"]["parameters"] / 10


def test_the_student_is_adapted_before_it_trains_and_reloads(text_run):
    metrics = json.loads((text_run / "metrics.json").read_text())
    vocabulary, factorized, shared = metrics["student"]["techniques"]
    assert vocabulary["technique"] == "prune-vocab" and vocabulary["vocabulary_after"] < 5_000
    assert vocabulary["positions_after"] == 32
    assert factorized["rank"] == 16 and 0 < factorized["svd_energy_kept"] < 1
    assert shared["blocks_sharing"] == 2 and shared["parameters_removed"] > 300_000
    assert metrics["stages"] == []  # every change happened before training
    spec = json.loads((text_run / "student" / "model.json").read_text())
    assert [e["technique"] for e in spec["edits"]] == ["prune-vocab", "factorize-embeddings", "share"]
    student, _ = load_model(text_run / "student", default_manager())
    assert count_parameters(student) == metrics["student"]["parameters"]
    recipe = (text_run / "recipe.toml").read_text()
    assert "[[teacher.techniques]]" in recipe and 'name = "lora"' in recipe


@pytest.mark.parametrize(("backend", "precision"), [("onnx", "fp32"), ("tflite", "int8"), ("tflite", "int8-dynamic")])
def test_the_student_exports_through_the_parity_gate(text_run, tmp_path, backend, precision):
    args = ["export", str(text_run), "--backend", backend, "--precision", precision, "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args, obj=default_manager())
    assert result.exit_code == 0, result.output
    (folder,) = tmp_path.iterdir()
    parity = json.loads((folder / "export.json").read_text())["parity"]
    assert parity["passed"] and parity["top1_agreement"] >= (1.0 if precision == "fp32" else 0.99)
    if backend == "tflite":  # int8 exports store the token table int8, which LiteRT's lookup reads
        from ai_edge_litert.interpreter import Interpreter

        metrics = json.loads((text_run / "metrics.json").read_text())
        reports = {t["technique"]: t for t in metrics["student"]["techniques"]}
        vocabulary, rank = reports["prune-vocab"]["vocabulary_after"], reports["factorize-embeddings"]["rank"]
        tables = [
            d["dtype"].__name__
            for d in Interpreter(model_path=str(folder / "model.tflite")).get_tensor_details()
            if list(d["shape"]) == [vocabulary, rank]
        ]
        assert tables == ["int8"]

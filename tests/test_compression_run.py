"""A recipe with compression stages: the run keeps each stage, rebuilds the final student from its recorded
edits, exports it through the parity gate, and a run interrupted in a later stage resumes after the last one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import edgepeft
from edgepeft.artifacts.recipe import load_recipe
from edgepeft.artifacts.run_folder import load_model
from edgepeft.cli import app
from edgepeft.host.manager import default_manager
from edgepeft.testing import tiny_recipe, write_recipe
from edgepeft.train.trainer import Trainer, count_parameters
from edgepeft.util.atomic import sha256_file

STAGED = [
    {"name": "distill", "temperature": 4.0, "alpha": 0.7},
    {"name": "prune", "ratio": 0.5, "epochs": 1},
    {"name": "lowrank", "energy": 0.9, "epochs": 1},
    {"name": "quantize", "epochs": 1},
]


def _staged_recipe(tmp_path: Path, name: str = "staged") -> Path:
    recipe = tiny_recipe(name=name, techniques=STAGED)
    recipe["student"]["options"] = {"channels": [16, 32], "hidden": 64}
    return write_recipe(tmp_path / f"{name}.toml", recipe)


@pytest.fixture(scope="module")
def staged_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("staged")
    manager = default_manager()
    metrics = Trainer(load_recipe(_staged_recipe(root), manager), manager, root / "runs").run()
    return manager, root / "runs" / "staged", metrics


def test_each_stage_is_kept_and_reported(staged_run):
    _, run, metrics = staged_run
    assert [s.stage for s in metrics.stages] == ["02-prune", "03-lowrank", "04-quantize"]
    assert sorted(p.name for p in (run / "stages").iterdir()) == ["00-student", "02-prune", "03-lowrank", "04-quantize"]
    prune, lowrank, quantize = metrics.stages
    assert prune.parameters_after < 0.35 * prune.parameters_before
    assert lowrank.parameters_after < lowrank.parameters_before
    assert quantize.parameters_after == lowrank.parameters_after
    assert metrics.student.parameters == quantize.parameters_after
    assert not (run / "stages" / "progress.json").exists()


def test_the_final_student_rebuilds_from_its_recorded_edits(staged_run):
    manager, run, metrics = staged_run
    model, spec = load_model(run / "student", manager)
    assert [e.technique for e in spec.edits] == ["prune", "lowrank"]
    assert count_parameters(model) == metrics.student.parameters
    earlier, _ = load_model(run / "stages" / "02-prune", manager)
    assert [e.technique for e in load_model(run / "stages" / "02-prune", manager)[1].edits] == ["prune"]
    assert count_parameters(earlier) == metrics.stages[0].parameters_after


@pytest.mark.parametrize(("backend", "precision"), [("onnx", "fp32"), ("tflite", "fp32")])
def test_the_compressed_student_exports_and_passes_the_parity_gate(staged_run, backend, precision, tmp_path):
    manager, run, _ = staged_run
    args = ["export", str(run), "--backend", backend, "--precision", precision, "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args, obj=manager, env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "exported:" in result.output and "agreement" in result.output.lower()


def test_a_run_stopped_in_a_late_stage_resumes_after_the_last_finished_one(staged_run, tmp_path):
    recipe = _staged_recipe(tmp_path, "resumable")
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "edgepeft", "train", str(recipe), "--runs-dir", str(runs)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    progress = runs / ".resumable.partial" / "stages" / "progress.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if progress.is_file() and json.loads(progress.read_text())["done"] >= 3:
            proc.send_signal(signal.SIGINT)  # during the quantize stage
            break
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, output
    finished_before = {p.name: p.stat().st_mtime_ns for p in progress.parent.iterdir() if p.is_dir()}
    assert set(finished_before) == {"00-student", "02-prune", "03-lowrank"}

    resumed = subprocess.run(
        [sys.executable, "-m", "edgepeft", "train", "--resume", str(runs / "resumable")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    log = (runs / "resumable" / "train.log").read_text()
    assert "resuming after stage 03-lowrank" in log
    for name, mtime in finished_before.items():  # earlier stages were not redone
        assert (runs / "resumable" / "stages" / name).stat().st_mtime_ns == mtime
    metrics = json.loads((runs / "resumable" / "metrics.json").read_text())
    assert [s["stage"] for s in metrics["stages"]] == ["02-prune", "03-lowrank", "04-quantize"]
    # ... and it ends with exactly the weights of the uninterrupted run of the same recipe.
    _, uninterrupted, _ = staged_run
    for part in ("student", "stages/03-lowrank", "stages/04-quantize"):
        resumed_weights = sha256_file(runs / "resumable" / part / "model.safetensors")
        assert resumed_weights == sha256_file(uninterrupted / part / "model.safetensors"), part


class _Unfaithful(edgepeft.Technique):
    """Appends a layer but records nothing to rebuild it from."""

    name = "unfaithful"

    def compress(self, model, ctx):
        model.append(torch.nn.Linear(10, 10))
        return edgepeft.Compressed(model)


def test_a_technique_whose_change_does_not_rebuild_fails_during_training(manager, register_plugin, tmp_path):
    class Plugin:
        @edgepeft.hookimpl
        def edgepeft_register_techniques(self, register):
            register(_Unfaithful)

    register_plugin(Plugin())
    recipe = tiny_recipe(name="unfaithful", techniques=[{"name": "unfaithful"}])
    recipe["teacher"]["epochs"] = recipe["student"]["epochs"] = 1
    with pytest.raises(edgepeft.TrainingError, match="does not load back to the same model"):
        Trainer(load_recipe(write_recipe(tmp_path / "u.toml", recipe), manager), manager, tmp_path / "runs").run()


def test_a_damaged_edit_record_is_an_artifact_error(staged_run, tmp_path):
    import shutil

    manager, run, _ = staged_run
    copy = tmp_path / "student"
    shutil.copytree(run / "student", copy)
    spec = json.loads((copy / "model.json").read_text())
    spec["edits"][0]["record"] = {"tensors": {}}
    (copy / "model.json").write_text(json.dumps(spec))
    with pytest.raises(edgepeft.ArtifactError, match="'prune' cannot rebuild the architecture it recorded"):
        load_model(copy, manager)
    spec["edits"][1]["record"] = {"layers": {"no.such.layer": {"rank": 2}}}
    spec["edits"][0]["record"] = json.loads((run / "student" / "model.json").read_text())["edits"][0]["record"]
    (copy / "model.json").write_text(json.dumps(spec))
    with pytest.raises(edgepeft.ArtifactError, match=r"'lowrank' cannot rebuild .* no attribute") as caught:
        load_model(copy, manager)
    assert "model family or plugin changed since training" in caught.value.fix


def test_techniques_with_the_removed_transform_step_are_refused_at_registration(manager, register_plugin):
    class Old(edgepeft.Technique):
        name = "old-style"

        def transform(self, model, ctx):
            return model

    class Plugin:
        @edgepeft.hookimpl
        def edgepeft_register_techniques(self, register):
            register(Old)

    register_plugin(Plugin(), "old-plugin")
    with pytest.raises(edgepeft.PluginError, match="defines transform"):
        manager.techniques.get("old-style")

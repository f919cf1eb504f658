"""Files written by an earlier edgepeft still open, deploy and verify, and every file model reads them back
unchanged. tests/fixtures/legacy/ holds a tiny digits run (`run/`), its x86-server bundle (`bundle/`) and an
export record (`export.json`), all written before the files recorded ``schema_version``."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import edgepeft
from edgepeft.artifacts.export_record import ExportRecord
from edgepeft.artifacts.manifest import Manifest
from edgepeft.artifacts.metrics import RunMetrics
from edgepeft.artifacts.run_folder import open_run
from edgepeft.artifacts.trials import Trials
from edgepeft.cli import app
from edgepeft.host.manager import default_manager

LEGACY = Path(__file__).parent / "fixtures" / "legacy"


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture
def legacy(tmp_path) -> Path:
    """A copy of the legacy fixtures, so no command can change the committed files."""
    return Path(shutil.copytree(LEGACY, tmp_path / "legacy"))


def test_a_legacy_run_deploys_and_both_bundles_verify(legacy, tmp_path):
    runner, manager = CliRunner(), default_manager()
    out = tmp_path / "dist"
    args = ["deploy", str(legacy / "run"), "-d", "x86-server", "--precision", "fp32", "--out", str(out)]
    deployed = runner.invoke(app, [*args, "--timing-seconds", "0.2"], obj=manager)
    assert deployed.exit_code == 0, deployed.output
    bundle = out / "legacy-x86-server"
    manifest = Manifest.read(bundle / "manifest.json")
    assert manifest.schema_version == Manifest.SCHEMA_VERSION
    assert manifest.provenance.dataset_fingerprint == _json(legacy / "run" / "metrics.json")["dataset"]["fingerprint"]
    for folder in (legacy / "bundle", bundle):
        verified = runner.invoke(app, ["verify", str(folder)], obj=manager)
        assert verified.exit_code == 0, verified.output
        assert "every file matches its manifest sha256, and 8 sample inputs give the recorded outputs" in " ".join(
            verified.output.split()
        )


@pytest.mark.parametrize(
    ("model", "path"),
    [(RunMetrics, "run/metrics.json"), (Manifest, "bundle/manifest.json"), (ExportRecord, "export.json")],
)
def test_every_legacy_file_reads_back_with_the_same_content(model, path):
    written = _json(LEGACY / path)
    again = json.loads(model.read(LEGACY / path).to_json())
    assert again.pop("schema_version") == 1
    written.pop("schema_version", None)
    assert again == written


def _before_multi_head(metrics: dict) -> dict:
    """``metrics`` as edgepeft wrote a classifier's run before tasks had several heads."""
    for role in ("teacher", "student"):
        report = metrics[role]
        report["test_accuracy"], report["val_accuracy"] = report.pop("test_score"), report.pop("val_score")
        for key in ("test_metrics", "val_metrics", "model", "techniques"):
            del report[key]
    metrics["accuracy_retention"] = metrics.pop("score_retention")
    del metrics["metrics"], metrics["heads"]
    return metrics


def test_a_run_from_before_multi_head_tasks_opens(legacy):
    (legacy / "run" / "metrics.json").write_text(json.dumps(_before_multi_head(_json(legacy / "run" / "metrics.json"))))
    run = open_run(legacy / "run", default_manager())
    teacher = _json(LEGACY / "run" / "metrics.json")["teacher"]
    assert run.metrics.teacher.test_metrics == {"accuracy": teacher["test_score"]}
    assert run.metrics.metrics == ["accuracy"] and run.metrics.score_retention > 0.98


def test_a_bundle_from_before_multi_head_tasks_verifies(legacy):
    manifest = _json(legacy / "bundle" / "manifest.json")
    measured = manifest["metrics"]
    test = measured.pop("test_score")
    measured["test_accuracy"] = {k: v for k, v in test.items() if k != "metrics"}
    measured["teacher_test_accuracy"] = {**measured.pop("teacher_test_metrics"), "value": 0.9}
    measured["accuracy_retention"] = measured.pop("score_retention")
    parity = measured["parity"]
    parity["accuracy"], parity["reference_accuracy"] = parity.pop("score"), parity.pop("reference_score")
    for key in ("metrics", "reference_metrics", "primary"):
        del parity[key]
    del manifest["heads"]
    (legacy / "bundle" / "manifest.json").write_text(json.dumps(manifest))
    upgraded = Manifest.read(legacy / "bundle" / "manifest.json")
    assert upgraded.metrics.test_score.metrics == {"accuracy": test["value"]}
    assert upgraded.metrics.teacher_test_metrics.value == {"accuracy": 0.9}
    assert upgraded.metrics.parity.primary == ["accuracy"]
    verified = CliRunner().invoke(app, ["verify", str(legacy / "bundle")], obj=default_manager())
    assert verified.exit_code == 0, verified.output


def test_non_finite_numbers_are_written_as_valid_json_and_read_back(tmp_path):
    metrics = RunMetrics.read(LEGACY / "run" / "metrics.json")
    metrics.score_retention = float("nan")
    metrics.student.val_metrics = {"accuracy": float("inf")}
    metrics.write(tmp_path / "metrics.json")
    strict = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=pytest.fail)
    assert strict["score_retention"] == "NaN" and strict["student"]["val_metrics"] == {"accuracy": "Infinity"}
    again = RunMetrics.read(tmp_path / "metrics.json")
    assert math.isnan(again.score_retention) and again.student.val_metrics["accuracy"] == math.inf
    bare = json.dumps({**_json(LEGACY / "run" / "metrics.json"), "score_retention": float("nan")})
    (tmp_path / "metrics.json").write_text(bare)  # a bare NaN, as edgepeft wrote it before
    assert math.isnan(RunMetrics.read(tmp_path / "metrics.json").score_retention)


@pytest.mark.parametrize("model", [RunMetrics, Manifest, ExportRecord, Trials])
def test_a_file_from_a_newer_edgepeft_is_refused_with_what_to_do(model, tmp_path):
    path = tmp_path / model.FILE
    path.write_text(json.dumps({"schema_version": model.SCHEMA_VERSION + 1}))
    with pytest.raises(edgepeft.ArtifactError, match=rf"unsupported {model.FILE} schema_version .* upgrade edgepeft"):
        model.read(path)


def test_a_manifest_without_schema_version_is_refused(tmp_path):
    manifest = _json(LEGACY / "bundle" / "manifest.json")
    del manifest["schema_version"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(edgepeft.ArtifactError, match=r"unsupported manifest\.json schema_version None") as caught:
        Manifest.read(tmp_path / "manifest.json")
    assert "deploy the bundle again" in str(caught.value.fix)


def test_an_integer_zero_point_stays_an_integer_in_the_files():
    from edgepeft.artifacts.measurements import TensorRecord

    quantization = {"scale": 0.5, "zero_point": -128}
    tensor = TensorRecord(name="input", shape=["batch", 4], dtype="int8", quantization=quantization)
    written = json.loads(tensor.model_dump_json())["quantization"]
    assert written == quantization and isinstance(written["zero_point"], int)

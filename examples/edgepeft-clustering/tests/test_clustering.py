"""The ``cluster`` technique on a small trained digits CNN: shared weights, unchanged architecture, a far
better gzip ratio, accuracy kept, deterministic; the clustered student exports through the parity gate, the
example recipe trains through the command line, and the plugin passes edgepeft's conformance checks."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import edgepeft
from edgepeft import count_parameters
from edgepeft.api.context import TrainContext
from edgepeft.api.device import parity_thresholds
from edgepeft.artifacts.run_folder import load_model
from edgepeft.cli import app
from edgepeft.host.manager import default_manager
from edgepeft.ship.export import export_checked
from edgepeft.testing import check_plugin
from edgepeft.train.loop import fit, score

RECIPE = Path(__file__).parents[1] / "recipes" / "digits-clustered.toml"
CLUSTERED, SKIPPED = ["0.4", "1"], ["0.0", "3"]  # 4,608 and 8,192 weights; 144 and 640 (under min_weights)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models train faster on one thread, and the tests then hold up on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup():
    manager = default_manager()
    data_cls, cnn = manager.datasets.get("digits"), manager.models.get("cnn")
    data = data_cls().load(data_cls.Options(), 0)
    torch.manual_seed(0)
    trained = cnn().build(cnn.Options(channels=[16, 32], hidden=64), data.input_shape, 10)
    ctx = TrainContext(data=data, teacher=None, batch_size=64, seed=0)
    fit(trained, ctx, phase="student", epochs=6, lr=0.01)
    return manager, data, ctx, trained


@pytest.fixture(scope="module")
def clustered(setup):
    """The trained CNN after ``cluster`` with its default options (16 clusters, 2 epochs)."""
    manager, _, ctx, trained = setup
    return _cluster(manager, ctx, trained)


def _cluster(manager, ctx, model, **options) -> edgepeft.Compressed | None:
    cls = manager.techniques.get("cluster")
    return cls(cls.Options(**options)).compress(copy.deepcopy(model), ctx)


def _distinct(model: torch.nn.Module, name: str) -> int:
    return model.get_submodule(name).weight.unique().numel()


def _test_accuracy(model: torch.nn.Module, data: edgepeft.TaskData) -> float:
    return score(model, data, data.test)


def test_each_clustered_layer_has_at_most_16_values_and_the_architecture_is_unchanged(setup, clustered):
    _, _, _, trained = setup
    assert clustered.record is None
    assert clustered.report["layers_clustered"] == CLUSTERED
    assert all(_distinct(clustered.model, name) <= 16 for name in CLUSTERED)
    assert clustered.report["distinct_values_max"] <= 16
    assert count_parameters(clustered.model) == count_parameters(trained)
    assert clustered.model.state_dict().keys() == trained.state_dict().keys()
    assert all(type(p) is torch.nn.Parameter for p in clustered.model.parameters())  # no parametrization left


def test_layers_under_min_weights_are_skipped_and_listed(setup, clustered):
    manager, _, ctx, trained = setup
    assert clustered.report["layers_skipped"] == SKIPPED
    assert all(_distinct(clustered.model, name) > 16 for name in SKIPPED)
    only_linear = _cluster(manager, ctx, trained, layers=["1"], epochs=0)
    assert only_linear.report["layers_clustered"] == ["1"] and _distinct(only_linear.model, "0.4") > 16
    assert _cluster(manager, ctx, trained, min_weights=10_000, epochs=0) is None


def test_clustered_weights_compress_far_better_with_gzip(clustered):
    report = clustered.report
    assert report["gzip_ratio_before"] < 1.2  # trained float32 weights barely compress
    assert report["gzip_ratio_after"] > 4 * report["gzip_ratio_before"]
    weights = b"".join(
        clustered.model.get_submodule(n).weight.detach().numpy().astype("<f4").tobytes() for n in CLUSTERED
    )
    assert len(weights) == report["weight_bytes"]
    assert len(gzip.compress(weights, compresslevel=9, mtime=0)) == report["gzip_bytes_after"]


def test_fine_tuned_accuracy_stays_within_two_points(setup, clustered):
    _, data, _, trained = setup
    assert _test_accuracy(clustered.model, data) >= _test_accuracy(trained, data) - 0.02


@pytest.mark.parametrize("init", ["kmeans++", "linear"])
def test_same_seed_same_clusters(setup, init):
    manager, _, ctx, trained = setup
    first, second = (_cluster(manager, ctx, trained, init=init, seed=7, clusters=8, epochs=1) for _ in range(2))
    assert all(_distinct(first.model, name) <= 8 for name in CLUSTERED)
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key


def test_clustered_student_exports_to_onnx_same_size_but_zips_smaller(setup, clustered, tmp_path):
    manager, data, _, trained = setup
    options = edgepeft.ExportOptions(precision="fp32", threads=1, input_layout="NCHW", batch_size=16)
    files = {}
    for label, model in (("dense", trained), ("clustered", clustered.model)):
        (tmp_path / label).mkdir()
        export = export_checked(
            model,
            manager.backends.get("onnx")(),
            options,
            (data.test.x, data.test.y),
            parity_thresholds({}, "fp32"),
            tmp_path / label,
        )
        assert export.parity.top1_agreement == 1.0
        files[label] = b"".join(path.read_bytes() for path in export.artifact.files)
    assert len(files["clustered"]) == pytest.approx(len(files["dense"]), rel=0.01)  # the raw file keeps its size
    zipped = {label: len(gzip.compress(raw, compresslevel=9, mtime=0)) for label, raw in files.items()}
    assert zipped["clustered"] < 0.5 * zipped["dense"]


def test_the_example_recipe_trains_with_a_cluster_stage(tmp_path):
    manager = default_manager()
    result = CliRunner().invoke(app, ["train", str(RECIPE), "--runs-dir", str(tmp_path)], obj=manager)
    assert result.exit_code == 0, result.output
    run = tmp_path / "digits-clustered"
    metrics = json.loads((run / "metrics.json").read_text())
    (stage,) = metrics["stages"]
    assert stage["stage"] == "02-cluster" and stage["distinct_values_max"] <= 16
    assert stage["gzip_ratio_after"] > 4 * stage["gzip_ratio_before"]
    student, spec = load_model(run / "student", manager)
    assert spec.edits == [] and all(_distinct(student, name) <= 16 for name in stage["layers_clustered"])
    assert metrics["student"]["test_score"] > 0.9


def test_the_plugin_passes_the_conformance_checks(manager, tmp_path):
    """What `edgepeft plugins check clustering` runs: compress a tiny student, export it, pass the parity gate."""
    (result,) = check_plugin("clustering", manager, tmp_path)
    assert (result.kind, result.name, result.status) == ("technique", "cluster", "pass"), result.detail


def test_the_plugin_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("EDGEPEFT_DISABLE_PLUGINS", "clustering")
    assert "cluster" not in default_manager().techniques
    monkeypatch.delenv("EDGEPEFT_DISABLE_PLUGINS")
    assert "cluster" in default_manager().techniques

"""The cuda backend and GPU training. On machines without an NVIDIA GPU only the first two tests run;
scripts/check_cuda.sh runs the rest on a GPU machine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import edgepeft
from edgepeft.api.device import parity_thresholds
from edgepeft.cli import app
from edgepeft.ship.export import export_checked

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch here")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_without_a_gpu_the_backend_says_why_and_training_refuses_cuda(manager, tmp_path):
    reason = manager.backends.get("cuda").unavailable_reason()
    assert reason is not None and ("CPU-only build" in reason or "no NVIDIA GPU driver" in reason)
    result = CliRunner().invoke(app, ["train", "--accelerator", "cuda", "--runs-dir", str(tmp_path)], obj=manager)
    assert result.exit_code == 2 and "--accelerator cuda: no CUDA GPU is visible to torch" in result.output
    assert not any(tmp_path.iterdir())


def test_unknown_accelerator_is_refused(manager, tmp_path):
    result = CliRunner().invoke(app, ["train", "--accelerator", "tpu", "--runs-dir", str(tmp_path)], obj=manager)
    assert result.exit_code == 2 and "unknown accelerator 'tpu'" in result.output


@pytest.mark.cuda
@needs_gpu
def test_training_on_the_gpu_with_mixed_precision(manager, tmp_path):
    import json

    from edgepeft.testing import tiny_recipe, write_recipe

    recipe = write_recipe(tmp_path / "r.toml", tiny_recipe(name="gpu"))
    result = CliRunner().invoke(
        app, ["train", str(recipe), "--accelerator", "cuda", "--runs-dir", str(tmp_path / "runs")], obj=manager
    )
    assert result.exit_code == 0, result.output
    assert "training on cuda" in (tmp_path / "runs" / "gpu" / "train.log").read_text()
    assert json.loads((tmp_path / "runs" / "gpu" / "metrics.json").read_text())["student"]["test_score"] > 0.5


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_backend_round_trip_passes_parity(manager, tmp_path, precision):
    from edgepeft.api.context import TrainContext
    from edgepeft.train.loop import fit

    data_cls, cnn = manager.datasets.get("digits"), manager.models.get("cnn")
    data = data_cls().load(data_cls.Options(), 0)
    model = cnn().build(cnn.Options(channels=[8, 16], hidden=32), data.input_shape, 10)
    fit(
        model, TrainContext(data=data, teacher=None, batch_size=64, seed=0, device="cuda"), phase="s", epochs=5, lr=0.01
    )
    options = edgepeft.ExportOptions(precision=precision, device="cuda")
    checked = export_checked(
        model,
        manager.backends.get("cuda")(),
        options,
        (data.test.x, data.test.y),
        parity_thresholds({}, precision),
        tmp_path,
    )
    assert checked.parity.passed and checked.outputs.dtype == np.float32

"""`edgepeft check` (operators a backend cannot convert, before exporting) and `edgepeft export`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import edgepeft
from edgepeft.artifacts.recipe import resolve
from edgepeft.cli import app
from edgepeft.host.manager import default_manager
from edgepeft.testing import tiny_recipe
from edgepeft.train.trainer import Trainer

MOBILE = """\
description = "phone whose runtimes are LiteRT and ONNX Runtime"
[hardware]
platform = "android"
arch = "arm64"
cores = 4
memory_mb = 4096
relative_speed = 0.5
[runtime]
backends = ["tflite", "onnx"]
precisions = ["fp32"]
"""


class BesselOptions(edgepeft.StrictModel):
    pass


class BesselNet(edgepeft.ModelFamily):
    """A model using an operator (Bessel J0) that neither LiteRT nor the ONNX exporter can convert."""

    name = "test-bessel"

    def build(self, options, input_shape, num_classes):
        import math

        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.flat = nn.Flatten()
                self.head = nn.Linear(math.prod(input_shape), num_classes)

            def forward(self, x):
                return self.head(torch.special.bessel_j0(self.flat(x)))

        return Net()


class BesselPlugin:
    @edgepeft.hookimpl
    def edgepeft_register_models(self, register):
        register(BesselNet)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A plain tiny run and one whose student uses the Bessel operator, trained once for this module."""
    root = tmp_path_factory.mktemp("check")
    (root / "devices").mkdir()
    (root / "devices" / "mobile.toml").write_text(MOBILE)
    manager = default_manager()
    manager.register(BesselPlugin(), "bessel")
    for name, student in (("plain", None), ("bessel", {"model": "test-bessel", "epochs": 1})):
        recipe = tiny_recipe(name=name)
        recipe["teacher"]["epochs"] = 1
        if student:
            recipe["student"] = student
        Trainer(resolve(recipe, None, name, manager), manager, root / "runs").run()
    return root


@pytest.fixture
def runs(trained, register_plugin, monkeypatch):
    register_plugin(BesselPlugin(), "bessel")
    monkeypatch.setenv("EDGEPEFT_DEVICES_PATH", str(trained / "devices"))
    return trained


def _cli(manager, *args):
    return CliRunner().invoke(app, list(args), obj=manager, env={"COLUMNS": "200"})


def test_check_lists_operators_and_what_each_backend_lacks(manager, runs):
    result = _cli(manager, "check", str(runs / "runs" / "bessel"), "--device", "mobile")
    assert result.exit_code == edgepeft.ExportError.exit_code, result.output
    row = next(line for line in result.output.splitlines() if "bessel_j0" in line)
    assert "no" in row and "flat" not in row
    assert "tflite: cannot convert aten.special_bessel_j0.default" in result.output
    assert "onnx: cannot convert prims.bessel_j0.default" in result.output
    assert "no backend of 'mobile' can convert every operator" in result.output


def test_check_passes_a_convertible_model(manager, runs):
    result = _cli(manager, "check", str(runs / "runs" / "plain"), "--device", "mobile")
    assert result.exit_code == 0, result.output
    assert "tflite: every operator converts" in result.output and "onnx: every operator converts" in result.output
    assert "aten.conv2d.default" in result.output


def test_export_writes_the_model_and_its_description(manager, runs):
    out = runs / "exports"
    result = _cli(
        manager,
        "export",
        str(runs / "runs" / "plain"),
        "--backend",
        "tflite",
        "--precision",
        "int8",
        "--batch-size",
        "4",
        "--layout",
        "NHWC",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    folder = out / "plain-tflite-int8-NHWC-b4"
    described = json.loads((folder / "export.json").read_text())
    assert (folder / described["artifact"]["path"]).is_file()
    assert described["artifact"]["inputs"][0]["shape"] == [4, 8, 8, 1]
    assert described["options"]["input_layout"] == "NHWC" and described["parity"]["passed"] is True
    assert described["parity"]["examples"] == 359
    assert "parity (int8) on 359 held-out examples" in result.output


def test_export_rejects_bad_options_before_any_work(manager, runs):
    result = _cli(manager, "export", str(runs / "runs" / "plain"), "--backend", "cpu", "--precision", "int8")
    assert result.exit_code == 2 and "backend 'cpu' does not export int8" in result.output
    result = _cli(manager, "export", str(runs / "runs" / "plain"), "--backend", "onnx", "--layout", "NWHC")
    assert result.exit_code == 2 and "unknown layout 'NWHC'" in result.output
    result = _cli(manager, "export", str(runs / "runs" / "plain"), "--backend", "onnx", "--layout", "NHWC")
    assert result.exit_code == 2 and "backend 'onnx' builds NCHW inputs, not NHWC" in result.output

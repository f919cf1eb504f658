"""`edgepeft plugins check`: built-ins conform; a plugin that breaks a rule is reported with what failed."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

import edgepeft
from edgepeft.cli import app
from edgepeft.conformance import check_plugin


def _check(manager, name):
    return CliRunner().invoke(app, ["plugins", "check", name], obj=manager, env={"COLUMNS": "200"})


def test_a_builtin_technique_passes_with_its_figures(manager):
    result = _check(manager, "lowrank")
    assert result.exit_code == 0, result.output
    assert "technique" in result.output and "pass" in result.output and "onnx fp32: agreement 100.00%" in result.output


def test_a_builtin_backend_passes_with_latency_figures(manager):
    (check,) = check_plugin("cpu", manager)
    assert check.status == "pass" and "p50" in check.detail and "p95" in check.detail


def test_device_and_dataset_plugins_validate_and_skip_what_needs_options(manager):
    devices = check_plugin("devices", manager)
    assert len(devices) >= 7 and all(r.status == "pass" for r in devices)
    images = {r.name: r for r in check_plugin("images", manager)}
    assert images["image-folder"].status == "skip" and "path" in images["image-folder"].detail


class _WrongRuntime(edgepeft.TorchProgramBackend):
    """Exports fine, but its runner answers with the wrong class for every input."""

    name = "wrong-runtime"

    def load(self, artifact, options):
        run = super().load(artifact, options)
        return lambda x: np.roll(run(x), 1, axis=1)


class _Unrebuildable(edgepeft.Technique):
    """Changes the architecture but cannot replay the change."""

    name = "unrebuildable"

    def compress(self, model, ctx):
        import torch

        model.append(torch.nn.Identity())
        return edgepeft.Compressed(model, record={"appended": 1})


class _Broken:
    @edgepeft.hookimpl
    def edgepeft_register_backends(self, register):
        register(_WrongRuntime)

    @edgepeft.hookimpl
    def edgepeft_register_techniques(self, register):
        register(_Unrebuildable)


def test_a_broken_plugin_is_reported_check_by_check_and_exits_3(manager, register_plugin):
    register_plugin(_Broken(), "broken")
    result = _check(manager, "broken")
    assert result.exit_code == 3, result.output
    output = " ".join(result.output.split())
    assert "failed 2 of 2 checks" in output
    assert "wrong-runtime" in output and "top-1 agreement" in output
    assert "unrebuildable" in output and "cannot rebuild" in output
    assert "Traceback" not in result.output


def test_an_unknown_plugin_names_the_installed_ones(manager):
    result = _check(manager, "nope")
    assert result.exit_code == 3 and "no installed plugin is named 'nope'" in result.output

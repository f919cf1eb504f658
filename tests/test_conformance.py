"""`edgepeft plugins check`: built-ins conform; a plugin that breaks a rule is reported with what failed."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from typer.testing import CliRunner

import edgepeft
from edgepeft.authoring.conformance import check_plugin
from edgepeft.cli import app


def _check(manager, name):
    return CliRunner().invoke(app, ["plugins", "check", name], obj=manager, env={"COLUMNS": "200"})


def test_a_builtin_technique_passes_with_its_figures(manager):
    result = _check(manager, "lowrank")
    assert result.exit_code == 0, result.output
    assert "technique" in result.output and "pass" in result.output and "onnx fp32: agreement 100.00%" in result.output


def test_a_builtin_backend_passes_with_latency_figures(manager):
    (check,) = check_plugin("cpu", manager)
    assert check.status == "pass" and "fp32: agreement 100.00%" in check.detail and "p50/p95" in check.detail


def test_multi_head_plugins_are_checked_on_the_data_they_are_made_for(manager):
    results = {r.name: r for name in ("multitask", "recsys", "interactions") for r in check_plugin(name, manager)}
    assert all(r.status == "pass" for n, r in results.items() if n != "interactions-csv"), results
    assert "rating.rmse" in results["multitask"].detail and "like.auc" in results["recsys"].detail
    assert "heads rating (regression), like (binary); 8 fields" in results["movielens-100k"].detail
    assert results["interactions-csv"].status == "skip"


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


class _NeedsMissing(edgepeft.Technique):
    name = "needs-missing"
    requires = ("no_such_package.sub",)
    install_hint = "pip install 'no-such[extra]'"


class _BadExample(edgepeft.Technique):
    name = "bad-example"
    example_options: ClassVar[dict[str, Any]] = {"temprature": 2.0}


class _Silent(edgepeft.Technique):
    """Changes the architecture and records nothing."""

    name = "silent"

    def compress(self, model, ctx):
        import torch

        model.append(torch.nn.Linear(10, 10))
        return edgepeft.Compressed(model)


def test_plugin_mistakes_are_failures_with_their_reasons_shown_verbatim(manager, register_plugin, tmp_path):
    profile = tmp_path / "typo-box.toml"
    profile.write_text('extends = "raspberry-pi-5"\n[runtime]\nbackends = ["onxx"]\n')

    class Plugin:
        @edgepeft.hookimpl
        def edgepeft_register_techniques(self, register):
            for cls in (_NeedsMissing, _BadExample, _Silent):
                register(cls)

        @edgepeft.hookimpl
        def edgepeft_register_devices(self, register):
            register(profile)

    register_plugin(Plugin(), "mistakes")
    result = _check(manager, "mistakes")
    assert result.exit_code == 3, result.output
    output = " ".join(result.output.split())
    assert "cannot run here: missing no_such_package.sub; pip install 'no-such[extra]'" in output  # brackets kept
    assert "example_options are not valid options: temprature" in output
    assert "silent' changed the architecture without a record that rebuilds it" in output
    assert "names backends no installed plugin registers: onxx" in output
    assert "failed 3 of 4 checks" in output and "Traceback" not in result.output  # the missing package: a skip


def test_a_technique_check_without_onnx_exports_with_another_backend_and_says_which(monkeypatch):
    from edgepeft.host.manager import default_manager

    monkeypatch.setenv("EDGEPEFT_DISABLE_PLUGINS", "onnx")
    manager = default_manager()
    assert "onnx" not in manager.backends
    result = _check(manager, "distill")
    assert result.exit_code == 0, result.output
    assert "on digits with cnn, exported with tflite" in result.output
    assert "tflite fp32: agreement" in result.output and "onnx" not in result.output

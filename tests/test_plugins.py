"""The plugin manager: entry-point discovery, blocking, hook validation and registries."""

from __future__ import annotations

import importlib.metadata
import sys
import tomllib
import types
from pathlib import Path

import pytest

import edgepeft
from edgepeft.errors import PluginError, UnknownNameError
from edgepeft.host.manager import ENTRY_POINT_GROUP, PluginManager, default_manager

ROOT = Path(__file__).resolve().parents[1]
BUILTINS = {"devices", "digits", "cnn", "distill", "cpu", "onnx"}


def test_builtins_are_discovered_through_entry_points_and_report_edgepeft(manager):
    assert set(manager.info) >= BUILTINS
    for name in BUILTINS:
        assert manager.info[name].distribution == "edgepeft"
        assert manager.info[name].version == edgepeft.__version__
    assert {"cpu", "onnx"} <= set(manager.backends.names())
    assert manager.techniques.entry("distill").plugin == "distill"
    assert "digits" in manager.datasets and "cnn" in manager.models


def test_every_plugin_package_is_an_entry_point_and_every_entry_point_exists():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = pyproject["project"]["entry-points"][ENTRY_POINT_GROUP]
    package_dirs = pyproject["tool"]["setuptools"]["package-dir"]
    on_disk = {p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").is_file()} | {"edgepeft_devices"}
    assert set(declared.values()) == on_disk
    for module in declared.values():
        assert (ROOT / package_dirs[module] / "__init__.py").is_file()
    installed = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert installed.items() >= declared.items()


def test_disable_plugins_blocks_by_name(monkeypatch):
    monkeypatch.setenv("EDGEPEFT_DISABLE_PLUGINS", "onnx, distill")
    manager = default_manager()
    assert "onnx" not in manager.info and "onnx" not in manager.backends
    assert "distill" not in manager.techniques
    assert "cpu" in manager.backends


def test_disabling_an_unknown_plugin_warns_with_a_suggestion(monkeypatch):
    monkeypatch.setenv("EDGEPEFT_DISABLE_PLUGINS", "onnxx")
    manager = default_manager()
    assert "onnx" in manager.info
    assert manager.warnings == [
        "EDGEPEFT_DISABLE_PLUGINS names 'onnxx', which is not an installed plugin; did you mean 'onnx'?"
    ]


def test_load_plugins_keeps_only_named_distributions(monkeypatch):
    monkeypatch.setenv("EDGEPEFT_LOAD_PLUGINS", "some-other-dist")
    assert default_manager().info == {}
    monkeypatch.setenv("EDGEPEFT_LOAD_PLUGINS", "edgepeft")
    assert set(default_manager().info) >= BUILTINS


def test_misspelt_hook_is_rejected_naming_the_plugin():
    plugin = types.SimpleNamespace()

    @edgepeft.hookimpl
    def edgepeft_register_technique(register):  # missing "s"
        return None

    plugin.edgepeft_register_technique = edgepeft_register_technique
    manager = PluginManager()
    with pytest.raises(PluginError, match=r"plugin 'typo' has an invalid hook implementation.*register_technique"):
        manager.register(plugin, "typo")
    assert "typo" not in manager.info


def test_hook_with_unknown_argument_is_rejected():
    plugin = types.SimpleNamespace()

    @edgepeft.hookimpl
    def edgepeft_register_backends(registry):
        return None

    plugin.edgepeft_register_backends = edgepeft_register_backends
    with pytest.raises(PluginError, match=r"'badargs'.*registry"):
        PluginManager().register(plugin, "badargs")


def test_duplicate_name_names_both_plugins(manager, register_plugin):
    class OtherDistill(edgepeft.Technique):
        name = "distill"

    class Plugin:
        @edgepeft.hookimpl
        def edgepeft_register_techniques(self, register):
            register(OtherDistill)

    register_plugin(Plugin(), "rival")
    with pytest.raises(
        PluginError, match=r"technique 'distill' is registered by both plugin '\w+' and plugin '\w+'"
    ) as e:
        _ = manager.techniques
    assert "rival" in str(e.value) and "'distill'" in str(e.value)


def test_registering_a_non_technique_is_an_error(manager, register_plugin):
    class Plugin:
        @edgepeft.hookimpl
        def edgepeft_register_techniques(self, register):
            register(object)

    register_plugin(Plugin(), "wrongtype")
    with pytest.raises(PluginError, match=r"plugin 'wrongtype' registered an invalid technique.*not a subclass"):
        _ = manager.techniques


def test_broken_plugin_import_names_it_and_how_to_disable(tmp_path, monkeypatch):
    pkg = tmp_path / "broken_plugin_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise ImportError('needs libfoo')\n")
    dist = tmp_path / "broken_plugin_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin-pkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[edgepeft]\nbroken = broken_plugin_pkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError) as e:
        default_manager()
    message = str(e.value)
    assert "plugin 'broken'" in message and "broken-plugin-pkg" in message and "needs libfoo" in message
    assert "EDGEPEFT_DISABLE_PLUGINS=broken" in message
    monkeypatch.setenv("EDGEPEFT_DISABLE_PLUGINS", "broken")
    assert "broken" not in default_manager().info
    sys.modules.pop("broken_plugin_pkg", None)


def test_exception_inside_a_hook_names_plugin_and_hook(manager, register_plugin):
    class Plugin:
        @edgepeft.hookimpl
        def edgepeft_register_datasets(self, register):
            raise RuntimeError("boom")

    register_plugin(Plugin(), "exploding")
    with pytest.raises(
        PluginError, match=r"plugin 'exploding' raised RuntimeError in hook edgepeft_register_datasets: boom"
    ):
        _ = manager.datasets


def test_unknown_name_suggests_the_nearest(manager):
    with pytest.raises(UnknownNameError, match=r"unknown technique 'distil'.*Did you mean 'distill'"):
        manager.techniques.get("distil")


def test_an_outside_model_family_trains_through_the_same_loop(manager, register_plugin, tmp_path):
    from pydantic import Field

    from edgepeft.artifacts.recipe import resolve
    from edgepeft.testing import tiny_recipe
    from edgepeft.train.trainer import Trainer

    class MLPOptions(edgepeft.StrictModel):
        hidden: int = Field(32, gt=0)

    class MLP(edgepeft.ModelFamily):
        name = "test-mlp"
        Options = MLPOptions

        def build(self, options, input_shape, num_classes):
            import math

            from torch import nn

            width = math.prod(input_shape)
            return nn.Sequential(
                nn.Flatten(), nn.Linear(width, options.hidden), nn.ReLU(), nn.Linear(options.hidden, num_classes)
            )

    class Plugin:
        @edgepeft.hookimpl
        def edgepeft_register_models(self, register):
            register(MLP)

    register_plugin(Plugin(), "mlp-plugin")
    recipe = tiny_recipe(name="mlp")
    recipe["student"] = {"model": "test-mlp", "epochs": 5, "lr": 0.01, "options": {"hidden": 24}}
    metrics = Trainer(resolve(recipe, None, "mlp", manager), manager, tmp_path).run()
    assert metrics.student.parameters == 64 * 24 + 24 + 24 * 10 + 10
    assert metrics.student.test_score > 0.7


def test_wrapper_hook_implementations_are_refused():
    class Wrapper:
        @edgepeft.hookimpl(wrapper=True)
        def edgepeft_after_step(self, state):
            return (yield)

    with pytest.raises(PluginError, match=r"'wrapping' .* declared as a wrapper"):
        PluginManager().register(Wrapper(), "wrapping")


def _fake_distribution(root, dist: str, entry: str, module: str) -> None:
    pkg = root / module
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    info = root / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[edgepeft]\n{entry} = {module}\n")


def test_two_distributions_with_the_same_plugin_name_are_an_error(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, "alpha-pkg", "samename", "alpha_mod")
    _fake_distribution(tmp_path, "beta-pkg", "samename", "beta_mod")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"two distributions install a plugin named 'samename': (alpha|beta)-pkg"):
        default_manager()


def test_load_plugins_with_an_unknown_distribution_warns(monkeypatch):
    monkeypatch.setenv("EDGEPEFT_LOAD_PLUGINS", "edgepef")
    manager = default_manager()
    assert manager.info == {}
    assert manager.warnings == [
        "EDGEPEFT_LOAD_PLUGINS names 'edgepef', which is not an installed distribution with edgepeft plugins; "
        "did you mean 'edgepeft'?"
    ]
    monkeypatch.setenv("EDGEPEFT_LOAD_PLUGINS", "EdgePEFT")  # names compare like pip compares them
    assert "onnx" in default_manager().info


def test_plugins_use_only_the_public_api():
    import ast

    for path in [*(ROOT / "plugins").rglob("*.py"), ROOT / "devices" / "__init__.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(("edgepeft.", "edgepeft_")):
                raise AssertionError(f"{path}: imports {node.module}; plugins use `edgepeft`'s public API only")
            if isinstance(node, ast.ImportFrom) and node.module == "edgepeft":
                private = [a.name for a in node.names if a.name not in edgepeft.__all__]
                assert not private, f"{path}: imports {private}, which are not in edgepeft.__all__"

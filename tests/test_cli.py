"""The command line: listing, errors as one line with an exit code, and the import-time rule."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

import edgepeft
from edgepeft.cli import app
from edgepeft.host.manager import default_manager


@pytest.fixture
def cli(manager):
    def invoke(*args: str, **env: str):
        return CliRunner().invoke(app, list(args), obj=manager, env={"COLUMNS": "160", **env})

    return invoke


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.output.strip() == f"edgepeft {edgepeft.__version__}"


def test_plugins_lists_kind_distribution_and_status(cli):
    result = CliRunner().invoke(app, ["plugins"], obj=default_manager(), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 5}
    for name, kind in {
        "onnx": "backend",
        "cpu": "backend",
        "distill": "technique",
        "digits": "dataset",
        "cnn": "model",
        "android": "device",
    }.items():
        assert kind in lines[name] and "edgepeft" in lines[name] and "available" in lines[name]


def test_plugins_reports_a_missing_runtime_with_its_install_hint(manager, register_plugin):
    class Missing(edgepeft.Backend):
        name = "vendor-npu"
        requires = ("vendor_npu_runtime_that_is_not_installed",)
        install_hint = "pip install vendor-npu-runtime"

        def export(self, model, example, directory, options): ...

        def load(self, artifact, options): ...

    class Plugin:
        @edgepeft.hookimpl
        def edgepeft_register_backends(self, register):
            register(Missing)

    register_plugin(Plugin(), "npu")
    result = CliRunner().invoke(app, ["plugins"], obj=manager, env={"COLUMNS": "250"})
    row = next(line for line in result.output.splitlines() if "vendor-npu" in line)
    assert "unavailable" in row
    assert (
        "unavailable vendor-npu: missing vendor_npu_runtime_that_is_not_installed; pip install vendor-npu-runtime"
        in (" ".join(result.output.split()))
    )


def test_devices_list_and_show(cli, manager):
    assert len(manager.devices) >= 7
    listing = cli("devices")
    assert listing.exit_code == 0
    for name in manager.devices.names():
        assert name in listing.output
    shown = cli("devices", "show", "android-recommendation")
    assert shown.exit_code == 0
    assert "extends android" in shown.output and "batch_size" in shown.output and "100" in shown.output


def test_unknown_device_is_one_line_with_suggestion_and_exit_code(cli):
    result = cli("devices", "show", "rasberry-pi-5")
    assert result.exit_code == 2
    assert (result.output.count("\n") == 1 and result.exception is None) or isinstance(result.exception, SystemExit)
    assert "unknown device 'rasberry-pi-5'" in result.output and "Did you mean 'raspberry-pi-5'" in result.output


def test_debug_env_shows_the_traceback(cli):
    result = cli("devices", "show", "nope", EDGEPEFT_DEBUG="1")
    assert isinstance(result.exception, edgepeft.UnknownNameError)


def test_bad_recipe_is_one_clear_line(cli, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('name = "r"\nseed = 0\nmistake = 1\n')
    result = cli("train", str(recipe))
    assert result.exit_code == 2
    assert f"{recipe}:3: mistake: unknown key" in result.output and "Traceback" not in result.output


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_importing_the_cli_and_help_do_not_import_torch_or_runtimes():
    code = (
        "import sys\n"
        "import edgepeft, edgepeft.cli\n"
        "from typer.testing import CliRunner\n"
        "from edgepeft.host.manager import default_manager\n"
        "m = default_manager(); _ = m.registries\n"
        "r = CliRunner().invoke(edgepeft.cli.app, ['--help'], obj=m)\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(edgepeft.cli.app, ['plugins'], obj=m)\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = sorted(k for k in sys.modules if k.split('.')[0] in "
        "{'torch', 'onnx', 'onnxruntime', 'onnxscript', 'ai_edge_litert', 'litert_torch', 'transformers', 'sklearn'})\n"
        "print(heavy)\n"
    )
    proc = _run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_main_loads_plugins_without_torch_and_runs_help():
    code = (
        "import sys\n"
        "from edgepeft.cli import main\n"
        "sys.argv = ['edgepeft', '--help']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
        "print('torch' in sys.modules, 'onnxruntime' in sys.modules, 'ai_edge_litert' in sys.modules)\n"
    )
    proc = _run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False False False"


def test_a_plugin_command_cannot_replace_a_builtin(manager, register_plugin):
    import typer

    from edgepeft.cli.root import check_command_names

    app = typer.Typer()

    @app.command("verify")
    def builtin() -> None: ...

    class Commands:
        @edgepeft.hookimpl
        def edgepeft_register_commands(self, app):
            @app.command("verify")
            def hijack() -> None: ...

    register_plugin(Commands(), "hijacker")
    manager.call("edgepeft_register_commands", app=app)
    with pytest.raises(edgepeft.PluginError, match=r"command 'verify' from .* clashes"):
        check_command_names(app)


def test_unknown_precision_and_unsupported_precision(cli):
    result = cli("deploy", "nowhere", "--device", "x86-server", "--precision", "int9")
    assert result.exit_code == 2 and "--precision: unknown precision 'int9'" in result.output
    result = cli("deploy", "nowhere", "--device", "x86-server", "--backend", "cpu", "--precision", "int8")
    assert result.exit_code == 2 and "backend 'cpu' does not export int8" in result.output


def test_console_script_runs():
    proc = subprocess.run([sys.executable, "-m", "edgepeft", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for command in ("train", "deploy", "devices", "plugins", "verify"):
        assert command in proc.stdout

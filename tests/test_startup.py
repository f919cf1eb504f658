"""Startup stays light: ``import edgepeft.cli`` and ``edgepeft --help`` (plugins loaded) import neither numpy
nor the runtimes, nor the edgepeft modules only commands need. A behavioural guard: it fails as soon as an
eager import of one of them creeps back into edgepeft, a built-in plugin or a module they import."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

LAZY_PACKAGES = (
    "numpy",
    "torch",
    "torchao",
    "torch_pruning",
    "onnx",
    "onnxruntime",
    "litert_torch",
    "ai_edge_litert",
    "safetensors",
    "sklearn",
    "scipy",
    "PIL",
)
LAZY_MODULES = (
    "edgepeft.train.loop",
    "edgepeft.api.context",
    "edgepeft.api.device",
    "edgepeft.ship.profile",
    "edgepeft.ship.parity",
    "edgepeft.ship.memory",
)

REPORT = (
    "import sys\n"
    f"lazy = sorted(m for m in sys.modules if m.split('.')[0] in {LAZY_PACKAGES!r} or m in {LAZY_MODULES!r})\n"
    "plugins = sorted(m for m in sys.modules if m.startswith('edgepeft_'))\n"
    "print('LOADED', lazy, 'PLUGINS', len(plugins))\n"
)


def _run(code: str) -> tuple[str, list[str], int]:
    env = {k: v for k, v in os.environ.items() if k not in ("EDGEPEFT_LOAD_PLUGINS", "EDGEPEFT_DISABLE_PLUGINS")}
    proc = subprocess.run([sys.executable, "-c", code + REPORT], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    output, _, report = proc.stdout.rpartition("LOADED ")
    lazy, plugins = report.split(" PLUGINS ")
    return output, ast.literal_eval(lazy), int(plugins)


def test_importing_the_cli_loads_no_heavy_module():
    _, lazy, _ = _run("import edgepeft, edgepeft.cli\n")
    assert lazy == []


def test_help_with_every_plugin_loaded_imports_no_heavy_module():
    code = (
        "import sys\n"
        "sys.argv = ['edgepeft', '--help']\n"
        "from edgepeft.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
    )
    output, lazy, plugins = _run(code)
    assert "Usage" in output and "plugins" in output
    assert plugins > 0, "no plugin was loaded, so the test checks nothing about them"
    assert lazy == []


def test_lazy_public_names_still_resolve():
    code = (
        "import edgepeft\n"
        "assert edgepeft.TrainContext.__module__ == 'edgepeft.api.context' and callable(edgepeft.predict)\n"
        "assert edgepeft.Batch.__module__ == edgepeft.StepState.__module__ == 'edgepeft.api.context'\n"
        "assert edgepeft.DeviceProfile.__module__ == 'edgepeft.api.device'\n"
        "from edgepeft import Runner, DeviceProfile, TrainContext\n"
        "assert Runner is edgepeft.api.backend.Runner\n"
        "assert {'Runner', 'DeviceProfile', 'predict'} <= set(dir(edgepeft))\n"
    )
    _, lazy, _ = _run(code)
    assert "edgepeft.api.context" in lazy and "edgepeft.api.device" in lazy

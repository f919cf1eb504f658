"""The house rules, read from the code itself: module size, no import circles, a core that names no built-in
plugin, and a package list that matches the folders."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "edgepeft"
MAX_LINES = 400

ALLOWED_CYCLE_EDGES = {
    ("edgepeft.api.context", "edgepeft.train.loop"): "TrainContext.finetune without a run's fine-tuner is a plain "
    "fit(); the import is deferred to the call, so the API's types load without the loop",
}
"""Import edges left out of the circle check, each with why it is sound."""

PLUGIN_NAME_EXCEPTIONS = {
    "cpu": "the torch device name (torch.device('cpu')), which the cpu backend shares",
    "cuda": "the torch device name (torch.device('cuda')), which the cuda backend shares",
    "devices": "`adb devices`, and the built-in profiles' distribution entry point name in `edgepeft devices`",
    "text": "the preprocessing kind of an input that is text, not the text plugin",
}
"""Exact string literals in the core equal to a built-in plugin's name that mean something else."""

BACKEND_NEUTRAL = {"edgepeft/testing.py": "tiny_recipe is documented as a digits/cnn/distill recipe for authors"}
"""Core modules allowed to name built-in plugins, and why."""


def core_modules() -> dict[str, Path]:
    modules = {}
    for path in CORE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """Every edgepeft module ``name`` imports anywhere: at the top, under TYPE_CHECKING, or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != name}


def test_no_module_is_over_400_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in [*CORE.rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them by what they hold): {long}"


def test_no_import_circle_inside_edgepeft():
    modules = core_modules()
    graph = {name: imported_modules(name, path, set(modules)) for name, path in modules.items()}
    for source, target in ALLOWED_CYCLE_EDGES:
        assert target in graph[source], f"{source} no longer imports {target}: drop the exception"
        graph[source].discard(target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                circle = [*stack[stack.index(target) :], target]
                raise AssertionError("import circle: " + " -> ".join(circle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def builtin_plugin_names() -> set[str]:
    """Every built-in plugin's entry point name and every name it registers."""
    from edgepeft.host.manager import default_manager

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    names = set(pyproject["project"]["entry-points"]["edgepeft"])
    manager = default_manager()
    for registry in (manager.techniques, manager.backends, manager.datasets, manager.models):
        names |= {entry.name for entry in registry if entry.plugin in names}
    return names


def string_literals(tree: ast.Module) -> list[ast.Constant]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_the_core_names_no_builtin_plugin():
    names = builtin_plugin_names()
    assert {"onnx", "tflite", "distill", "digits", "cnn"} <= names, "the built-in names were not found"
    offences = []
    for path in sorted(CORE.rglob("*.py")):
        where = str(path.relative_to(ROOT))
        if where in BACKEND_NEUTRAL:
            continue
        for node in string_literals(ast.parse(path.read_text())):
            if node.value in names and node.value not in PLUGIN_NAME_EXCEPTIONS:
                offences.append(f"{where}:{node.lineno}: {node.value!r}")
    assert not offences, "the core names built-in plugins (make it a capability the plugin declares):\n" + "\n".join(
        offences
    )


def test_every_core_package_is_installed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in CORE.rglob("__init__.py") if "__pycache__" not in p.parts
    }
    assert folders <= listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(folders - listed)}"


@pytest.mark.parametrize("command", ["train", "profile", "deploy", "export", "check", "bench", "search", "verify"])
def test_each_command_lives_in_its_command_group_module(command):
    from edgepeft.cli import app

    callbacks = {c.name or c.callback.__name__: c.callback for c in app.registered_commands}
    group = callbacks[command].__module__.removeprefix("edgepeft.cli.")
    assert group in {"train", "ship", "bench", "search"}, f"`edgepeft {command}` is defined in edgepeft.cli.{group}"

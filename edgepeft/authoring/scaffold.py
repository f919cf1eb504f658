"""``edgepeft plugin new``: generate an out-of-tree plugin package whose own tests pass as generated."""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from string import Template

from edgepeft.authoring.templates import KINDS
from edgepeft.authoring.templates.kind import KindTemplate
from edgepeft.authoring.templates.package import CONFTEST, PACKAGE_DATA, PYPROJECT, README
from edgepeft.errors import ConfigError, UnknownNameError
from edgepeft.host.manager import ENTRY_POINT_GROUP, PluginManager
from edgepeft.util.atomic import atomic_directory

NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
"""Lowercase letters, digits and single hyphens, starting with a letter: a valid entry-point, distribution
and (with ``_`` for ``-``) module name."""


@dataclass(frozen=True)
class NewPlugin:
    """A generated package: the plugin's name and kind, its folder, and its files (relative paths)."""

    name: str
    kind: str
    folder: Path
    files: list[str]

    @property
    def next_commands(self) -> list[str]:
        """What to run next, from the folder the package was generated in."""
        return [f"cd {self.folder}", "pip install -e '.[test]'", f"edgepeft plugins check {self.name}", "pytest"]


def create_plugin(name: str, kind: str, directory: Path, manager: PluginManager) -> NewPlugin:
    """Write the package ``directory/edgepeft-<name>/`` for a ``kind`` plugin: all of it, or nothing."""
    check_kind(kind)
    check_name(name, kind, manager)
    folder = Path(directory) / f"edgepeft-{name}"
    if folder.exists() and not (folder.is_dir() and not any(folder.iterdir())):
        raise ConfigError(
            f"{folder} already exists and is not an empty folder",
            fix="Choose another name or --dir, or move the folder away",
        )
    files = render(name, kind)
    with atomic_directory(folder) as staging:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return NewPlugin(name, kind, folder, sorted(files))


def check_kind(kind: str) -> None:
    """Refuse a kind the scaffold has no template for, suggesting the closest one."""
    if kind not in KINDS:
        raise UnknownNameError("plugin kind", kind, KINDS, where="--kind")


def check_name(name: str, kind: str, manager: PluginManager) -> None:
    """Refuse a malformed name, an installed plugin's name (even a disabled one), or a registered ``kind``'s."""
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"invalid plugin name {name!r}",
            fix="Use lowercase letters, digits and single hyphens, starting with a letter (e.g. my-npu)",
        )
    installed = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)} | set(manager.info)
    if name in installed:
        raise ConfigError(
            f"a plugin named {name!r} is already installed",
            fix="Choose another name; `edgepeft plugins` lists the installed plugins",
        )
    registry = manager.registries[kind]
    if name in registry:
        raise ConfigError(
            f"a {kind} named {name!r} is already registered, by plugin {registry.entry(name).plugin!r}",
            fix=f"Choose another name; `edgepeft plugins` lists the registered {kind}s",
        )


def render(name: str, kind: str) -> dict[str, str]:
    """The package's files for plugin ``name`` of ``kind``: text by path relative to the package folder."""
    template = KINDS[kind]
    module = name.replace("-", "_")
    base = "".join(part.capitalize() for part in name.removesuffix(f"-{kind}").split("-"))
    names = {
        "name": name,
        "module": module,
        "kind": kind,
        "class_name": base + kind.capitalize(),
        "options_name": base + "Options",
        "summary": template.summary,
        "test_requirement": template.test_requirement,
        "dependencies": template.dependencies,
        "usage": Template(template.usage).substitute(name=name),
        "package_data": _package_data(module, template),
    }
    package = f"src/edgepeft_{module}"
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"{package}/__init__.py": template.plugin,
        **{f"{package}/{path}": text for path, text in template.package_files.items()},
        "tests/conftest.py": CONFTEST,
        f"tests/test_{module}.py": template.tests,
    }
    return {Template(path).substitute(names): Template(text).substitute(names) for path, text in files.items()}


def _package_data(module: str, template: KindTemplate) -> str:
    """The pyproject.toml table that ships the kind's data files inside the package (empty if it has none)."""
    patterns = sorted({PurePosixPath(path).with_stem("*").as_posix() for path in template.package_files})
    if not patterns:
        return ""
    return Template(PACKAGE_DATA).substitute(module=module, patterns=", ".join(f'"{p}"' for p in patterns))

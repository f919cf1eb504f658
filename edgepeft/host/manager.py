"""The plugin manager: loads the ``edgepeft`` entry points, validates hooks and fills the registries."""

from __future__ import annotations

import difflib
import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from edgepeft.api.backend import Backend
from edgepeft.api.dataset import Dataset
from edgepeft.api.model import ModelFamily
from edgepeft.api.technique import Technique
from edgepeft.errors import ConfigError, EdgepeftError, PluginError
from edgepeft.host import hookspecs
from edgepeft.host.registry import Registry

ENTRY_POINT_GROUP = "edgepeft"
DISABLE_ENV = "EDGEPEFT_DISABLE_PLUGINS"
LOAD_ENV = "EDGEPEFT_LOAD_PLUGINS"
DEVICES_PATH_ENV = "EDGEPEFT_DEVICES_PATH"


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin: its registered name and the distribution that ships it."""

    name: str
    distribution: str
    version: str


def _env_list(name: str) -> set[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return {item.strip() for item in value.split(",") if item.strip()}


def _normalize(distribution: str) -> str:
    """Distribution names compare like pip compares them: case and ``-``/``_``/``.`` do not matter."""
    return distribution.lower().replace("_", "-").replace(".", "-")


def _subclass_check(base: type, *attrs: str):
    def check(value: object) -> str | None:
        if not (isinstance(value, type) and issubclass(value, base)):
            return f"{value!r} is not a subclass of edgepeft.{base.__name__}"
        missing = [a for a in attrs if not isinstance(getattr(value, a, None), str)]
        if missing:
            return f"{value.__name__} does not set {', '.join(missing)}"
        if base is Technique and hasattr(value, "transform"):
            return (
                f"{value.__name__} defines transform(), which edgepeft no longer calls: change the trained "
                "student in compress() and replay the change in rebuild() (see docs/hooks.md)"
            )
        return None

    return check


class DeviceRegistry(Registry[Path]):
    """Device profile files by name; registering a folder registers every ``*.toml`` in it."""

    def __init__(self) -> None:
        super().__init__("device", lambda p: p.stem, self._check_path)

    @staticmethod
    def _check_path(path: Path) -> str | None:
        return None if path.suffix == ".toml" and path.is_file() else f"{path} is not a .toml file"

    def add(self, value: Path, plugin: str) -> None:
        path = Path(value)
        if path.is_dir():
            for file in sorted(path.glob("*.toml")):
                super().add(file, plugin)
        else:
            super().add(path, plugin)


class _Distributions:
    """Name and version of each entry point's distribution, its metadata file parsed once (every
    ``Distribution.name`` or ``.version`` access parses it again, which slowed ``edgepeft --help``)."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[str, str]] = {}

    def of(self, ep: importlib.metadata.EntryPoint) -> tuple[str, str]:
        if ep.dist is None:
            return "(unknown)", "?"
        if id(ep.dist) not in self._seen:
            metadata = ep.dist.metadata
            self._seen[id(ep.dist)] = (metadata["Name"], metadata["Version"])
        return self._seen[id(ep.dist)]


class PluginManager:
    """Discovers plugins, checks their hooks against the specs, and exposes the typed registries.

    ``EDGEPEFT_DISABLE_PLUGINS=a,b`` blocks entry points by name; ``EDGEPEFT_LOAD_PLUGINS=dist1,dist2``
    loads only entry points from those distributions (empty: none).
    """

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager("edgepeft")
        self._pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self.warnings: list[str] = []

    # -- loading -----------------------------------------------------------------------------------

    def load_entry_points(self) -> None:
        """Import and register every plugin in the ``edgepeft`` entry-point group that is allowed."""
        blocked = _env_list(DISABLE_ENV) or set()
        only = _env_list(LOAD_ENV)
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        dists = _Distributions()
        self._check_unique(entry_points, dists)
        self._warn_unknown(DISABLE_ENV, blocked, {ep.name for ep in entry_points}, "plugin")
        if only is not None:
            only = {_normalize(d) for d in only}
            installed = {_normalize(dists.of(ep)[0]) for ep in entry_points if ep.dist}
            self._warn_unknown(LOAD_ENV, only, installed, "distribution with edgepeft plugins")
        for ep in entry_points:
            dist, version = dists.of(ep)
            if ep.name in blocked:
                self._pm.set_blocked(ep.name)
                continue
            if only is not None and _normalize(dist) not in only:
                continue
            if self._pm.has_plugin(ep.name) or self._pm.is_blocked(ep.name):
                continue
            try:
                module = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {ep.name!r} (distribution {dist}) failed to import: {type(exc).__name__}: {exc}",
                    fix=f"Reinstall or fix it, or disable it with {DISABLE_ENV}={ep.name}",
                ) from exc
            self.register(module, ep.name, distribution=dist, version=version)

    def _warn_unknown(self, variable: str, given: set[str], known: set[str], what: str) -> None:
        for name in sorted(given - known):
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self.warnings.append(f"{variable} names {name!r}, which is not an installed {what}{hint}")

    @staticmethod
    def _check_unique(entry_points: importlib.metadata.EntryPoints, dists: _Distributions) -> None:
        seen: dict[str, str] = {}
        for ep in entry_points:
            dist = dists.of(ep)[0]
            if ep.name in seen and seen[ep.name] != dist:
                raise PluginError(
                    f"two distributions install a plugin named {ep.name!r}: {seen[ep.name]} and {dist}",
                    fix="Uninstall one of them, or rename the entry point in one package's pyproject.toml",
                )
            seen[ep.name] = dist

    def register(
        self, plugin: ModuleType | object, name: str, *, distribution: str = "(local)", version: str = ""
    ) -> None:
        """Register one plugin object; hook implementations must match a spec exactly."""
        if self._pm.has_plugin(name):
            raise PluginError(f"a plugin named {name!r} is already registered", fix="Give the plugin another name")
        try:
            self._pm.register(plugin, name=name)
            self._pm.check_pending()
            self._reject_wrappers(name)
        except pluggy.PluginValidationError as exc:
            self._pm.unregister(name=name)
            detail = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            raise PluginError(
                f"plugin {name!r} has an invalid hook implementation: {detail}",
                fix=f"See docs/hooks.md for the hook names and arguments, or disable it with {DISABLE_ENV}={name}",
            ) from None
        self.info[name] = PluginInfo(name, distribution, version)
        self.__dict__.pop("registries", None)

    def _reject_wrappers(self, name: str) -> None:
        """edgepeft calls each implementation itself (to name the plugin in errors), so wrappers cannot work."""
        plugin = self._pm.get_plugin(name)
        for caller in self._pm.get_hookcallers(plugin) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and (impl.hookwrapper or impl.wrapper):
                    raise pluggy.PluginValidationError(
                        plugin, f"{caller.name} is declared as a wrapper; edgepeft hooks take plain implementations"
                    )

    def unregister(self, name: str) -> None:
        self._pm.unregister(name=name)
        self.info.pop(name, None)
        self.__dict__.pop("registries", None)

    def hooks_of(self, name: str) -> list[str]:
        plugin = self._pm.get_plugin(name)
        return sorted(c.name for c in self._pm.get_hookcallers(plugin) or [])

    # -- calling -----------------------------------------------------------------------------------

    def call(self, hook: str, **kwargs: Any) -> None:
        """Call ``hook`` on every plugin, in registration order; an exception names plugin and hook."""
        self._call_each(hook, lambda impl: {k: kwargs[k] for k in impl.argnames})

    def _fill(self, registry: Registry, hook: str) -> Registry:
        self._call_each(hook, lambda impl: {k: registry.registrar(impl.plugin_name) for k in impl.argnames})
        return registry

    def _call_each(self, hook: str, args_for: Callable[[pluggy.HookImpl], dict[str, Any]]) -> None:
        for impl in reversed(getattr(self._pm.hook, hook).get_hookimpls()):
            try:
                impl.function(**args_for(impl))
            except EdgepeftError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} raised {type(exc).__name__} in hook {hook}: {exc}",
                    fix=f"Fix the plugin, or disable it with {DISABLE_ENV}={impl.plugin_name}",
                ) from exc

    # -- registries --------------------------------------------------------------------------------

    @cached_property
    def registries(self) -> dict[str, Registry]:
        name_of = lambda cls: cls.name  # noqa: E731
        devices = self._fill(DeviceRegistry(), "edgepeft_register_devices")
        for folder in filter(None, os.environ.get(DEVICES_PATH_ENV, "").split(os.pathsep)):
            if not Path(folder).is_dir():
                raise ConfigError(
                    f"{DEVICES_PATH_ENV} names {folder!r}, which is not a folder",
                    fix="Set it to folders of device profile .toml files (separated by ':'), or unset it",
                )
            devices.add(Path(folder), f"{DEVICES_PATH_ENV}={folder}")
        return {
            "technique": self._fill(
                Registry("technique", name_of, _subclass_check(Technique, "name")), "edgepeft_register_techniques"
            ),
            "backend": self._fill(
                Registry("backend", name_of, _subclass_check(Backend, "name")), "edgepeft_register_backends"
            ),
            "dataset": self._fill(
                Registry("dataset", name_of, _subclass_check(Dataset, "name")), "edgepeft_register_datasets"
            ),
            "model": self._fill(
                Registry("model", name_of, _subclass_check(ModelFamily, "name")), "edgepeft_register_models"
            ),
            "device": devices,
        }

    @property
    def techniques(self) -> Registry[type[Technique]]:
        return self.registries["technique"]

    @property
    def backends(self) -> Registry[type[Backend]]:
        return self.registries["backend"]

    @property
    def datasets(self) -> Registry[type[Dataset]]:
        return self.registries["dataset"]

    @property
    def models(self) -> Registry[type[ModelFamily]]:
        return self.registries["model"]

    @property
    def devices(self) -> Registry[Path]:
        return self.registries["device"]


def default_manager() -> PluginManager:
    """A manager with every installed (and not disabled) plugin loaded."""
    manager = PluginManager()
    manager.load_entry_points()
    return manager

"""Typed registries that the ``edgepeft_register_*`` hooks fill."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from edgepeft.errors import PluginError, UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered item and the plugin that registered it."""

    name: str
    value: T
    plugin: str


class Registry(Generic[T]):
    """Name -> item for one kind (technique, backend, ...); a duplicate name names both plugins."""

    def __init__(self, kind: str, name_of: Callable[[T], str], check: Callable[[T], str | None] | None = None) -> None:
        self.kind = kind
        self._name_of = name_of
        self._check = check
        self._entries: dict[str, Entry[T]] = {}

    def add(self, value: T, plugin: str) -> None:
        problem = self._check(value) if self._check is not None else None
        if problem:
            raise PluginError(
                f"plugin {plugin!r} registered an invalid {self.kind}: {problem}",
                fix=f"Fix the plugin, or disable it with EDGEPEFT_DISABLE_PLUGINS={plugin}",
            )
        name = self._name_of(value)
        if name in self._entries:
            first = self._entries[name].plugin
            raise PluginError(
                f"{self.kind} {name!r} is registered by both plugin {first!r} and plugin {plugin!r}",
                fix=f"Rename one of them, or disable one with EDGEPEFT_DISABLE_PLUGINS={plugin}",
            )
        self._entries[name] = Entry(name, value, plugin)

    def registrar(self, plugin: str) -> Registrar:
        return Registrar(self, plugin)

    def entry(self, name: str, *, where: str | None = None) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries, where=where) from None

    def get(self, name: str, *, where: str | None = None) -> T:
        return self.entry(name, where=where).value

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)


class Registrar:
    """The ``register`` callable handed to one plugin's register hook."""

    def __init__(self, registry: Registry, plugin: str) -> None:
        self._registry = registry
        self.plugin = plugin

    def __call__(self, value: object) -> None:
        self._registry.add(value, self.plugin)

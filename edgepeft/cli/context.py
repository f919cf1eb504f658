"""The plugin manager a command runs with: loaded once per invocation, its load warnings on stderr."""

from __future__ import annotations

import typer
from rich.markup import escape

from edgepeft.cli.console import console
from edgepeft.host.manager import PluginManager, default_manager


def loaded_manager() -> PluginManager:
    """The default plugin manager, after printing the warnings its plugins raised while loading."""
    manager = default_manager()
    for warning in manager.warnings:
        console(stderr=True).print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    return manager


def plugin_manager(ctx: typer.Context) -> PluginManager:
    """The invocation's plugin manager (the root context's object), loaded on first use."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = loaded_manager()
    return root.obj

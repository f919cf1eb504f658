"""`edgepeft plugins` (list, `check`) and `edgepeft plugin new`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Column, Table

from edgepeft.cli.console import console
from edgepeft.cli.context import plugin_manager
from edgepeft.cli.errors import CommandGroup
from edgepeft.errors import PluginError

plugins_app = typer.Typer(
    cls=CommandGroup, help="List installed plugins, or check that one conforms.", invoke_without_command=True
)
plugin_app = typer.Typer(cls=CommandGroup, help="Start a new plugin package.", no_args_is_help=True)


@plugins_app.callback()
def plugins(ctx: typer.Context) -> None:
    """List installed plugins and what they register, with availability or how to install what is missing."""
    if ctx.invoked_subcommand is not None:
        return
    manager = plugin_manager(ctx)
    table = Table(Column("name", no_wrap=True), "kind", "plugin", "distribution", "version", "status")
    used, missing = set(), []
    for kind, registry in manager.registries.items():
        for entry in registry:
            info = manager.info.get(entry.plugin)
            reason = getattr(entry.value, "unavailable_reason", lambda: None)()
            if reason:
                missing.append(f"{entry.name}: {reason}")
            status = "[green]available[/]" if reason is None else "[yellow]unavailable[/]"
            table.add_row(
                escape(entry.name),
                kind,
                escape(entry.plugin),
                info.distribution if info else "-",
                info.version if info else "-",
                status,
            )
            used.add(entry.plugin)
    for name, info in manager.info.items():
        if name not in used:
            hooks = ", ".join(manager.hooks_of(name)) or "no hooks"
            table.add_row(escape(name), "hooks", escape(name), info.distribution, info.version, escape(hooks))
    console().print(table)
    for line in missing:
        console().print(f"[yellow]unavailable[/] {escape(line)}", soft_wrap=True)


@plugins_app.command("check")
def plugins_check(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Plugin name, as `edgepeft plugins` lists it.")],
) -> None:
    """Conformance: exercise everything the plugin registers on a tiny real task; exit 3 if a check fails."""
    from edgepeft.authoring.conformance import check_plugin

    manager = plugin_manager(ctx)
    with console(stderr=True).status(f"checking plugin {name} ..."):
        results = check_plugin(name, manager)
    colour = {"pass": "green", "fail": "red", "skip": "yellow"}
    table = Table(
        Column("kind", no_wrap=True), Column("name", no_wrap=True), "result", "detail", title=f"plugin {name}"
    )
    for r in results:
        table.add_row(r.kind, escape(r.name), f"[{colour[r.status]}]{r.status}[/]", escape(r.detail))
    console().print(table)
    failed = [r for r in results if r.failed]
    if failed:
        raise PluginError(
            f"plugin {name!r} failed {len(failed)} of {len(results)} checks: "
            + "; ".join(f"{r.kind} {r.name}: {r.detail}" for r in failed),
            fix="Fix what the table above reports; docs/plugin-tutorial.md shows a conforming plugin",
        )
    skipped = sum(r.status == "skip" for r in results)
    console().print(f"plugin {escape(name)}: {len(results) - skipped} checks passed, {skipped} skipped, none failed")


@plugin_app.command("new")
def plugin_new(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Plugin name: lowercase letters, digits and hyphens (e.g. my-npu).")],
    kind: Annotated[str, typer.Option(help="What the plugin registers: technique, backend, dataset or device.")],
    directory: Annotated[Path, typer.Option("--dir", help="Folder that receives edgepeft-NAME/.")] = Path("."),
) -> None:
    """Generate edgepeft-NAME/: a pip-installable plugin package of KIND whose tests pass as generated."""
    from edgepeft.authoring.scaffold import create_plugin

    plugin = create_plugin(name, kind, directory, plugin_manager(ctx))
    lines = [
        f"created the {plugin.kind} plugin {plugin.name} in {plugin.folder}/:",
        *(f"  {file}" for file in plugin.files),
        "next:",
        *(f"  {command}" for command in plugin.next_commands),
    ]
    console().print(escape("\n".join(lines)), soft_wrap=True)

"""The ``edgepeft`` command line: the typer app, its commands in order, and the console-script entry point.

Each command lives in the module of its group (``edgepeft.cli.train``, ``.ship``, ``.bench``, ``.search``,
``.devices``, ``.plugins``). Heavy libraries load inside commands, so ``--help`` stays fast."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

import edgepeft
from edgepeft.cli import bench, search, ship, train
from edgepeft.cli.console import console
from edgepeft.cli.context import loaded_manager
from edgepeft.cli.devices import devices_app
from edgepeft.cli.errors import CommandGroup, report
from edgepeft.cli.plugins import plugin_app, plugins_app
from edgepeft.errors import EdgepeftError, PluginError
from edgepeft.util import interrupts

app = typer.Typer(
    cls=CommandGroup,
    name="edgepeft",
    help="Train compact students from big models and ship them to phones, cameras and edge boxes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.command()(train.train)
app.command()(ship.profile)
app.command()(ship.deploy)
app.command("export")(ship.export_command)
app.command()(ship.check)
app.command()(bench.bench)
app.command()(search.search)
app.command()(ship.verify)
app.add_typer(devices_app, name="devices")
app.add_typer(plugins_app, name="plugins")
app.add_typer(plugin_app, name="plugin")


def _version(value: bool) -> None:
    if value:
        console().print(f"edgepeft {edgepeft.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """edgepeft: parameter-efficient training, compression and deployment for edge devices."""


def check_command_names(app: typer.Typer) -> None:
    """A plugin's command must not silently replace a built-in one (or another plugin's)."""
    seen: dict[str, str] = {}
    commands = [
        (c.name or c.callback.__name__.replace("_", "-"), c.callback.__module__) for c in app.registered_commands
    ]
    groups = [(g.name, g.typer_instance.__module__ if g.typer_instance else "?") for g in app.registered_groups]
    for name, module in commands + groups:
        if name in seen:
            raise PluginError(
                f"command {name!r} from {module} clashes with the command of that name from {seen[name]}",
                fix="Rename the plugin's command, or disable the plugin with EDGEPEFT_DISABLE_PLUGINS",
            )
        seen[name] = module


def main() -> None:
    """Console-script entry point: load plugins, let them add commands, run."""
    interrupts.install()
    try:
        manager = loaded_manager()
        manager.call("edgepeft_register_commands", app=app)
        check_command_names(app)
    except EdgepeftError as exc:
        sys.exit(report(exc))
    app(prog_name="edgepeft", obj=manager)

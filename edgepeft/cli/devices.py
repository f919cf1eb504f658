"""`edgepeft devices` (list) and `edgepeft devices show`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Column, Table

from edgepeft.cli.console import console
from edgepeft.cli.context import plugin_manager
from edgepeft.cli.errors import CommandGroup

devices_app = typer.Typer(cls=CommandGroup, help="List device profiles, or show one.", invoke_without_command=True)


@devices_app.callback()
def devices(ctx: typer.Context) -> None:
    """List every device profile (built-in, from plugins, and from EDGEPEFT_DEVICES_PATH)."""
    if ctx.invoked_subcommand is not None:
        return
    from edgepeft.api.device import load_profile

    manager = plugin_manager(ctx)
    table = Table(Column("name", no_wrap=True), "extends", "hardware", "backends", "batch", "p95 ms", "max MB")
    for entry in manager.devices:
        p = load_profile(entry.name, manager.devices)
        hw, b = p.hardware, p.budgets
        table.add_row(
            p.name,
            p.extends or "",
            f"{hw.platform}/{hw.arch}" + (f" +{hw.accelerator}" if hw.accelerator != "none" else ""),
            ", ".join(p.runtime.backends),
            str(b.batch_size),
            f"{b.p95_latency_ms:g}" if b.p95_latency_ms else "-",
            f"{b.max_size_mb:g}" if b.max_size_mb else "-",
        )
    console().print(table)


@devices_app.command("show")
def devices_show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Profile name.")]) -> None:
    """Show one device profile with everything it inherits resolved."""
    from edgepeft.api.device import ParityThresholds, load_profile, parity_thresholds

    profile = load_profile(name, plugin_manager(ctx).devices)
    console().print(f"[bold]{profile.name}[/] — {profile.description}")
    console().print(f"source: {profile.source}" + (f" (extends {profile.extends})" if profile.extends else ""))
    for section in ("hardware", "runtime", "budgets"):
        table = Table(title=section, show_header=False, title_justify="left")
        for key, value in getattr(profile, section).model_dump().items():
            table.add_row(key, ", ".join(value) if isinstance(value, list) else str(value))
        console().print(table)
    table = Table("precision", *ParityThresholds.model_fields, title="parity gate", title_justify="left")
    for precision in profile.runtime.precisions:
        thresholds = parity_thresholds(profile.parity, precision).model_dump()
        table.add_row(precision, *("-" if v is None else f"{v:g}" for v in thresholds.values()))
    console().print(table)

"""How a failing command ends: one line on stderr and the error's exit code."""

from __future__ import annotations

import os
from typing import Any

import click
import typer
from rich.markup import escape
from typer.core import TyperGroup

from edgepeft.cli.console import console
from edgepeft.errors import EdgepeftError

BUDGET_EXIT = 10
"""Exit code of `profile`, `deploy` and `search` when the model (or every trial) misses a device budget."""


def report(exc: EdgepeftError) -> int:
    """Print ``exc`` as one line on stderr and return its exit code; with EDGEPEFT_DEBUG=1, re-raise it."""
    if os.environ.get("EDGEPEFT_DEBUG", "") not in ("", "0"):
        raise exc
    console(stderr=True).print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
    return exc.exit_code


class CommandGroup(TyperGroup):
    """Maps an :class:`EdgepeftError` to one line on stderr and its exit code (traceback: EDGEPEFT_DEBUG=1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgepeftError as exc:
            raise typer.Exit(report(exc)) from None

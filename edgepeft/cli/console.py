"""Terminal output shared by the commands: a console sized for the terminal, and a progress display."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress


def console(stderr: bool = False) -> Console:
    """A console sized for the current terminal (or $COLUMNS), writing to stdout or stderr."""
    return Console(stderr=stderr, highlight=False)


def progress_bar() -> Progress:
    """A progress display on stderr: description, bar, done/total, elapsed time."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
    )

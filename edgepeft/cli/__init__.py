"""The command line: the typer app, its error mapping, and one module per command group."""

from edgepeft.cli.root import app, main

__all__ = ["app", "main"]

"""`edgepeft search`: train and measure the students a recipe's [search] space allows, and pick the best."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from edgepeft.cli.console import console, progress_bar
from edgepeft.cli.context import plugin_manager
from edgepeft.cli.errors import BUDGET_EXIT
from edgepeft.errors import ConfigError

if TYPE_CHECKING:
    from edgepeft.search.trial import TrialResult


def _trial_line(r: TrialResult) -> str:
    from edgepeft.search.trial import describe

    figures = (
        f"val {r.shown(r.val_score)}, {r.size_mb:.3f} MB, p95 {r.p95_ms:.3f} ms"
        + (f", broke {', '.join(r.broke)}" if r.broke else "")
        if r.state == "complete"
        else f"{r.state}: {r.note}"
    )
    return f"trial {r.number}: {escape(describe(r.settings))} -> {escape(figures)}"


def search(
    ctx: typer.Context,
    recipe: Annotated[Path, typer.Argument(help="Recipe TOML with a [search] table (or a built-in recipe's name).")],
    device: Annotated[
        str | None,
        typer.Option("--device", "-d", help="Device profile whose budgets constrain [default: the recipe's]."),
    ] = None,
    trials: Annotated[int | None, typer.Option(min=1, help="Finished trials wanted [default: the recipe's].")] = None,
    time_limit: Annotated[
        float | None, typer.Option(min=1, help="Stop starting trials after this many seconds.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue the interrupted search in --out.")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Search folder [default: runs/search-<name>].")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Trials run in parallel, one process (or Ray task) each.")] = 1,
    ray: Annotated[
        str | None, typer.Option(help="Run the workers as Ray tasks: a cluster address, or 'local' (the ray extra).")
    ] = None,
) -> None:
    """Train and measure the students the recipe's [search] space allows; print the accuracy/size/latency
    Pareto front and the best trial that meets every budget of the device (exit 10 when none does)."""
    from edgepeft.api.device import load_profile
    from edgepeft.artifacts.recipe import find_recipe
    from edgepeft.search.executors import run_search
    from edgepeft.search.report import plot
    from edgepeft.search.space import load_plan
    from edgepeft.search.trial import best, describe, pareto

    manager = plugin_manager(ctx)
    plan = load_plan(find_recipe(recipe), manager)
    name = device or plan.search.device
    if name is None:
        raise ConfigError(
            "no device to search for", where=str(recipe), fix='Pass --device, or set [search] device = "..."'
        )
    profile = load_profile(name, manager.devices)
    out = out_dir or Path("runs") / f"search-{plan.name}"
    terminal = console()

    with progress_bar() as progress:
        results = run_search(
            plan,
            profile,
            manager,
            out,
            trials=trials,
            time_limit=time_limit,
            resume=resume,
            workers=workers,
            ray_address=ray,
            on_trial=lambda r: terminal.print(_trial_line(r), soft_wrap=True),
            progress=progress,
        )
    if workers > 1 or ray is not None:  # the other workers' trials ended in other processes: list them all
        for r in results:
            terminal.print(_trial_line(r), soft_wrap=True)
    front, chosen = pareto(results), best(results)
    table = Table(
        "trial",
        "settings",
        "val score",
        "test score",
        "size MB",
        "p95 ms",
        "budgets",
        title=f"Pareto front on {profile.name}",
    )
    for r in front:
        table.add_row(
            str(r.number),
            escape(describe(r.settings)),
            r.shown(r.val_score),
            r.shown(r.test_score),
            f"{r.size_mb:.3f}",
            f"{r.p95_ms:.3f}",
            "[green]all met[/]" if not r.broke else f"[red]broke {', '.join(r.broke)}[/]",
        )
    terminal.print(table)
    import importlib.util

    title = f"search {plan.name} on {profile.name}: {len(results)} trials"
    if importlib.util.find_spec("matplotlib") is not None and plot(results, out / "pareto.png", title):
        terminal.print(f"plot: {out / 'pareto.png'}")
    terminal.print(f"every trial: {out / 'trials.json'}")
    if chosen is None:
        terminal.print(f"[bold red]no trial meets every {profile.name} budget[/]")
        raise typer.Exit(BUDGET_EXIT)
    terminal.print(
        f"best within budget: trial {chosen.number} (validation {chosen.metric} {chosen.shown(chosen.val_score)}, "
        f"test {chosen.shown(chosen.test_score)}, {chosen.size_mb:.3f} MB, p95 {chosen.p95_ms:.3f} ms)\n"
        f"deploy it: edgepeft deploy {chosen.run} --device {profile.name} --precision {chosen.precision}",
        soft_wrap=True,
    )

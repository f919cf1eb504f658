"""`edgepeft train`: train the teacher and the student of a recipe, then print how they compare."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from edgepeft.cli.console import console, progress_bar
from edgepeft.cli.context import plugin_manager
from edgepeft.errors import ConfigError


def train(
    ctx: typer.Context,
    recipe: Annotated[
        Path | None,
        typer.Argument(
            help="Recipe TOML, or a built-in recipe's name (digits-distill, realtime-vision, "
            "realtime-vision-mobilenet); without it digits-distill runs."
        ),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue the interrupted run RUN (runs/<name>) from its last checkpoint.")
    ] = None,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Steps between checkpoints.")] = 50,
    runs_dir: Annotated[Path, typer.Option(help="Folder that receives runs/<name>/.")] = Path("runs"),
    accelerator: Annotated[str, typer.Option(help="auto (a GPU when present), cpu or cuda.")] = "auto",
    data_dir: Annotated[
        Path | None, typer.Option(help="Read the data set from this folder (its data_dir option).")
    ] = None,
) -> None:
    """Train the teacher (or reuse it), then the student with the recipe's techniques.

    Under ``torchrun --nproc-per-node N`` the processes train together (DistributedDataParallel; the
    recipe's batch_size is the global batch) and rank 0 alone writes the run and reports it."""
    from edgepeft.artifacts.recipe import default_recipe_path, find_recipe, load_recipe, with_data_dir
    from edgepeft.artifacts.run_folder import resume_recipe
    from edgepeft.train import distributed
    from edgepeft.train.loop import resolve_accelerator
    from edgepeft.train.trainer import Trainer

    manager = plugin_manager(ctx)
    if resume is not None and data_dir is not None:
        raise ConfigError(
            "--data-dir cannot change an interrupted run's data", where="--resume", fix="Resume without --data-dir"
        )
    if resume is not None and recipe is not None:
        raise ConfigError("give a recipe or --resume, not both", fix="--resume reads the interrupted run's own recipe")
    if resume is not None:
        resolved, runs_dir = resume_recipe(resume, manager)
    else:
        resolved = load_recipe(find_recipe(recipe) if recipe else default_recipe_path(), manager)
    if data_dir is not None:
        resolved = with_data_dir(resolved, data_dir, manager)
    device = distributed.init(resolve_accelerator(accelerator))
    try:
        with progress_bar() if distributed.is_main() else contextlib.nullcontext() as progress:
            trainer = Trainer(
                resolved,
                manager,
                runs_dir,
                progress,
                device=device,
                checkpoint_every=checkpoint_every,
                resume=resume is not None,
            )
            metrics = trainer.run()
    finally:
        distributed.shutdown()
    if not distributed.is_main():
        return
    from edgepeft.api.tasks import format_metric

    shown, score = metrics.metrics, metrics.metric
    table = Table(
        "", *(f"test {m}" for m in shown), f"val {score}", "parameters", "size", title=f"run {resolved.recipe.name}"
    )
    for role, m in (("teacher", metrics.teacher), ("student", metrics.student)):
        table.add_row(
            role,
            *(format_metric(name, m.test_metrics[name]) for name in shown),
            format_metric(score, m.val_score),
            f"{m.parameters:,}",
            f"{m.size_bytes / 1024:.1f} KiB",
        )
    console().print(table)
    if metrics.stages:
        stages = Table("stage", "parameters", f"val {score}", title="student compression stages")
        for stage in metrics.stages:
            stages.add_row(
                stage.stage,
                f"{stage.parameters_before:,} -> {stage.parameters_after:,}",
                format_metric(score, stage.val_score),
            )
        console().print(stages)
        for stage in metrics.stages:
            if stage.note:
                console().print(f"[yellow]{stage.stage}: {stage.note}[/yellow]")
    for role, m in (("teacher", metrics.teacher), ("student", metrics.student)):
        for note in m.model.get("notes", []):
            console().print(f"{role}: {escape(note)}")
    console().print(
        f"student: {metrics.compression:.1f}x fewer parameters, keeps {metrics.score_retention:.1%} "
        f"of the teacher's {'accuracy' if score == 'accuracy' else ', '.join(shown)} -> {trainer.run_dir}"
    )

"""`edgepeft bench`: the teacher, the one-line int8 baselines and the student measured side by side."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from edgepeft.cli.console import console, progress_bar
from edgepeft.cli.context import plugin_manager
from edgepeft.cli.options import DeviceOption, RunArgument, RunsDirOption, TimingOption
from edgepeft.errors import ConfigError


def bench(
    ctx: typer.Context,
    run: RunArgument,
    device: DeviceOption,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Folder for bench.json, bench.md, pareto.png [default: RUN/bench].")
    ] = None,
    threads: Annotated[int, typer.Option(min=1, help="Threads for every runtime and for the matmul peak.")] = min(
        2, os.cpu_count() or 1
    ),
    quick: Annotated[bool, typer.Option(help="Time each batch for 0.2 s instead of TIMING_SECONDS.")] = False,
    timing_seconds: TimingOption = 2.0,
    only: Annotated[
        list[str] | None,
        typer.Option(help="Measure only these, e.g. --only 'teacher onnx fp32' --only 'student onnx int8'."),
    ] = None,
    runs_dir: RunsDirOption = Path("runs"),
) -> None:
    """Measure the teacher, the one-line int8 baselines (onnxruntime dynamic, TFLite post-training) and the
    student on every backend and precision side by side, with ratios, a Pareto plot and the FLOP floor."""
    from edgepeft.api.device import load_profile
    from edgepeft.artifacts.run_folder import open_run
    from edgepeft.benchmark.bench import bench_run, candidates
    from edgepeft.benchmark.report import below_parity, measured_table, ratio_table, write

    manager = plugin_manager(ctx)
    profile = load_profile(device, manager.devices)
    todo, skipped = candidates(manager)
    if only:
        labels = {c.label for c in todo}
        unknown = [label for label in only if label not in labels]
        if unknown:
            raise ConfigError(
                f"nothing to measure named {', '.join(map(repr, unknown))}",
                where="--only",
                fix=f"Use the labels of the models here: {', '.join(sorted(labels))}",
            )
        todo = [c for c in todo if c.label in only]
    opened = open_run(run, manager, runs_dir)
    with progress_bar() as progress:
        task = progress.add_task("benchmark", total=len(todo))
        result = bench_run(
            opened,
            profile,
            manager,
            todo,
            threads=threads,
            timing_seconds=0.2 if quick else timing_seconds,
            on_measured=lambda row: progress.update(task, advance=1, description=f"measured {row.candidate.label}"),
        )
    for title, (header, rows) in (("measured", measured_table(result)), ("ratios", ratio_table(result))):
        table = Table(*header, title=f"{opened.name} on {profile.name}: {title}")
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        console().print(table)
    notes = [f"not measured: {line}" for line in skipped]
    for note in [*below_parity(result), *notes]:
        console().print(f"[yellow]{escape(note)}[/]", soft_wrap=True)
    paths = write(result, out_dir or opened.path / "bench", notes)
    console().print("written: " + ", ".join(str(p) for p in paths.values()))

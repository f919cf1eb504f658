"""The ``edgepeft`` command line. Heavy libraries load inside commands, so ``--help`` stays fast."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from typer.core import TyperGroup

if TYPE_CHECKING:
    from edgepeft.ship.parity import ParityReport
    from edgepeft.ship.profile import ProfileReport

import edgepeft
from edgepeft.errors import (
    ArtifactError,
    BackendUnavailableError,
    ConfigError,
    EdgepeftError,
    ExportError,
    PluginError,
)
from edgepeft.host.manager import PluginManager, default_manager
from edgepeft.ship.android import REMOTE_ROOT
from edgepeft.util import interrupts


def _console(stderr: bool = False) -> Console:
    """A console sized for the current terminal (or $COLUMNS), writing to stdout or stderr."""
    return Console(stderr=stderr, highlight=False)


class _Group(TyperGroup):
    """Maps an :class:`EdgepeftError` to one line on stderr and its exit code (traceback: EDGEPEFT_DEBUG=1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgepeftError as exc:
            raise typer.Exit(_report(exc)) from None


def _report(exc: EdgepeftError) -> int:
    """Print ``exc`` as one line on stderr and return its exit code; with EDGEPEFT_DEBUG=1, re-raise it."""
    if os.environ.get("EDGEPEFT_DEBUG", "") not in ("", "0"):
        raise exc
    _console(stderr=True).print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
    return exc.exit_code


def _loaded_manager() -> PluginManager:
    manager = default_manager()
    for warning in manager.warnings:
        _console(stderr=True).print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    return manager


app = typer.Typer(
    cls=_Group,
    name="edgepeft",
    help="Train compact students from big models and ship them to phones, cameras and edge boxes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
devices_app = typer.Typer(cls=_Group, help="List device profiles, or show one.", invoke_without_command=True)
app.add_typer(devices_app, name="devices")
plugins_app = typer.Typer(
    cls=_Group, help="List installed plugins, or check that one conforms.", invoke_without_command=True
)
app.add_typer(plugins_app, name="plugins")
plugin_app = typer.Typer(cls=_Group, help="Start a new plugin package.", no_args_is_help=True)
app.add_typer(plugin_app, name="plugin")


RunArgument = Annotated[Path, typer.Argument(help="Run folder (runs/<name>) or run name.")]
RunsDirOption = Annotated[Path, typer.Option(help="Where run names are looked up.")]


def _manager(ctx: typer.Context) -> PluginManager:
    root = ctx.find_root()
    if root.obj is None:
        root.obj = _loaded_manager()
    return root.obj


def _version(value: bool) -> None:
    if value:
        _console().print(f"edgepeft {edgepeft.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """edgepeft: parameter-efficient training, compression and deployment for edge devices."""


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console(stderr=True),
    )


# -- plugins and devices -------------------------------------------------------------------------------


@plugins_app.callback()
def plugins(ctx: typer.Context) -> None:
    """List installed plugins and what they register, with availability or how to install what is missing."""
    if ctx.invoked_subcommand is not None:
        return
    manager = _manager(ctx)
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
    _console().print(table)
    for line in missing:
        _console().print(f"[yellow]unavailable[/] {escape(line)}", soft_wrap=True)


@plugins_app.command("check")
def plugins_check(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Plugin name, as `edgepeft plugins` lists it.")],
) -> None:
    """Conformance: exercise everything the plugin registers on a tiny real task; exit 3 if a check fails."""
    from edgepeft.authoring.conformance import check_plugin

    manager = _manager(ctx)
    with _console(stderr=True).status(f"checking plugin {name} ..."):
        results = check_plugin(name, manager)
    colour = {"pass": "green", "fail": "red", "skip": "yellow"}
    table = Table(
        Column("kind", no_wrap=True), Column("name", no_wrap=True), "result", "detail", title=f"plugin {name}"
    )
    for r in results:
        table.add_row(r.kind, escape(r.name), f"[{colour[r.status]}]{r.status}[/]", escape(r.detail))
    _console().print(table)
    failed = [r for r in results if r.failed]
    if failed:
        raise PluginError(
            f"plugin {name!r} failed {len(failed)} of {len(results)} checks: "
            + "; ".join(f"{r.kind} {r.name}: {r.detail}" for r in failed),
            fix="Fix what the table above reports; docs/plugin-tutorial.md shows a conforming plugin",
        )
    skipped = sum(r.status == "skip" for r in results)
    _console().print(f"plugin {escape(name)}: {len(results) - skipped} checks passed, {skipped} skipped, none failed")


@devices_app.callback()
def devices(ctx: typer.Context) -> None:
    """List every device profile (built-in, from plugins, and from EDGEPEFT_DEVICES_PATH)."""
    if ctx.invoked_subcommand is not None:
        return
    from edgepeft.api.device import load_profile

    manager = _manager(ctx)
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
    _console().print(table)


@devices_app.command("show")
def devices_show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Profile name.")]) -> None:
    """Show one device profile with everything it inherits resolved."""
    from edgepeft.api.device import ParityThresholds, load_profile, parity_thresholds

    profile = load_profile(name, _manager(ctx).devices)
    _console().print(f"[bold]{profile.name}[/] — {profile.description}")
    _console().print(f"source: {profile.source}" + (f" (extends {profile.extends})" if profile.extends else ""))
    for section in ("hardware", "runtime", "budgets"):
        table = Table(title=section, show_header=False, title_justify="left")
        for key, value in getattr(profile, section).model_dump().items():
            table.add_row(key, ", ".join(value) if isinstance(value, list) else str(value))
        _console().print(table)
    table = Table("precision", *ParityThresholds.model_fields, title="parity gate", title_justify="left")
    for precision in profile.runtime.precisions:
        thresholds = parity_thresholds(profile.parity, precision).model_dump()
        table.add_row(precision, *("-" if v is None else f"{v:g}" for v in thresholds.values()))
    _console().print(table)


# -- plugin authoring ----------------------------------------------------------------------------------


@plugin_app.command("new")
def plugin_new(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Plugin name: lowercase letters, digits and hyphens (e.g. my-npu).")],
    kind: Annotated[str, typer.Option(help="What the plugin registers: technique, backend, dataset or device.")],
    directory: Annotated[Path, typer.Option("--dir", help="Folder that receives edgepeft-NAME/.")] = Path("."),
) -> None:
    """Generate edgepeft-NAME/: a pip-installable plugin package of KIND whose tests pass as generated."""
    from edgepeft.authoring.scaffold import create_plugin

    plugin = create_plugin(name, kind, directory, _manager(ctx))
    lines = [
        f"created the {plugin.kind} plugin {plugin.name} in {plugin.folder}/:",
        *(f"  {file}" for file in plugin.files),
        "next:",
        *(f"  {command}" for command in plugin.next_commands),
    ]
    _console().print(escape("\n".join(lines)), soft_wrap=True)


# -- train, deploy, verify -----------------------------------------------------------------------------


@app.command()
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

    manager = _manager(ctx)
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
        with _progress() if distributed.is_main() else contextlib.nullcontext() as progress:
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

    shown, score = metrics["metrics"], metrics["metric"]
    table = Table(
        "", *(f"test {m}" for m in shown), f"val {score}", "parameters", "size", title=f"run {resolved.recipe.name}"
    )
    for role in ("teacher", "student"):
        m = metrics[role]
        table.add_row(
            role,
            *(format_metric(name, m["test_metrics"][name]) for name in shown),
            format_metric(score, m["val_score"]),
            f"{m['parameters']:,}",
            f"{m['size_bytes'] / 1024:.1f} KiB",
        )
    _console().print(table)
    if metrics["stages"]:
        stages = Table("stage", "parameters", f"val {score}", title="student compression stages")
        for stage in metrics["stages"]:
            stages.add_row(
                stage["stage"],
                f"{stage['parameters_before']:,} -> {stage['parameters_after']:,}",
                format_metric(score, stage["val_score"]),
            )
        _console().print(stages)
        for stage in metrics["stages"]:
            if stage.get("note"):
                _console().print(f"[yellow]{stage['stage']}: {stage['note']}[/yellow]")
    for role in ("teacher", "student"):
        for note in metrics[role]["model"].get("notes", []):
            _console().print(f"{role}: {escape(note)}")
    _console().print(
        f"student: {metrics['compression']:.1f}x fewer parameters, keeps {metrics['score_retention']:.1%} "
        f"of the teacher's {'accuracy' if score == 'accuracy' else ', '.join(shown)} -> {trainer.run_dir}"
    )


DeviceOption = Annotated[str, typer.Option("--device", "-d", help="Device profile name (see `edgepeft devices`).")]
BackendOption = Annotated[str | None, typer.Option(help="Override the profile's backend preference.")]
PrecisionOption = Annotated[str | None, typer.Option(help="Override the profile's precision preference.")]
TimingOption = Annotated[
    float, typer.Option(min=0.05, help="Seconds to time each batch size (after warm-up); longer is steadier.")
]


def _prepare(ctx: typer.Context, run: Path, device: str, backend: str | None, precision: str | None, runs_dir: Path):
    from edgepeft.api.device import load_profile
    from edgepeft.artifacts.run_folder import open_run
    from edgepeft.ship.deploy import prepare
    from edgepeft.ship.export import choose_backend

    manager = _manager(ctx)
    profile = load_profile(device, manager.devices)
    backend_cls, precision = choose_backend(profile, manager, backend, precision)  # checks the options first
    return prepare(open_run(run, manager, runs_dir), profile, manager, backend_cls, precision)


def _print_report(report: ProfileReport) -> None:
    _print_parity(report.parity)
    latency = Table("batch", "p50 ms", "p95 ms", "p99 ms", "mean ms", "timed calls", "where", title="latency")
    for batch, lat in report.host_latency.items():
        latency.add_row(
            str(batch),
            *(f"{v:.4g}" for v in (lat.p50_ms, lat.p95_ms, lat.p99_ms, lat.mean_ms)),
            str(lat.iterations),
            "measured on this host",
        )
    dev = report.device_latency.latency
    latency.add_row(
        str(dev.batch_size),
        *(f"{v:.4g}" for v in (dev.p50_ms, dev.p95_ms, dev.p99_ms, dev.mean_ms)),
        str(dev.iterations),
        f"{report.device}: {report.device_latency.label}",
    )
    _console().print(latency)
    table = Table("budget", "limit", "value", "unit", "source", "status", title=f"{report.device} budgets")
    for b in report.budgets:
        colour = "green" if b.passed else "red"
        table.add_row(b.budget, f"{b.limit:g}", f"{b.value:.4g}", b.unit, b.source, f"[{colour}]{b.status}[/]")
    _console().print(table)


def _budget_exit(report: ProfileReport) -> None:
    if not report.within_budget:
        failed = ", ".join(b.budget for b in report.budgets if not b.passed)
        _console(stderr=True).print(
            f"[bold red]error:[/] the model does not meet the {report.device} budget ({failed})"
        )
        raise typer.Exit(BUDGET_EXIT)


@app.command()
def profile(
    ctx: typer.Context,
    run: RunArgument,
    device: DeviceOption,
    backend: BackendOption = None,
    precision: PrecisionOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    timing_seconds: TimingOption = 2.0,
    runs_dir: RunsDirOption = Path("runs"),
) -> None:
    """Export as DEVICE asks, gate on parity, and measure size, latency, memory and accuracy against its
    budgets (exit 10 when one fails). Nothing is written."""
    from edgepeft.ship.deploy import profile_run

    prepared = _prepare(ctx, run, device, backend, precision, runs_dir)
    if as_json:
        report = profile_run(prepared, timing_seconds=timing_seconds)
        print(json.dumps(report.as_dict(), indent=2))
    else:
        with _progress() as progress:
            report = profile_run(prepared, timing_seconds=timing_seconds, progress=progress)
        _print_report(report)
    _budget_exit(report)


@app.command()
def deploy(
    ctx: typer.Context,
    run: RunArgument,
    device: DeviceOption,
    backend: BackendOption = None,
    precision: PrecisionOption = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder that receives the bundle.")] = Path("dist"),
    push: Annotated[
        bool, typer.Option(help="Push the bundle to the attached Android device (adb) and time it there.")
    ] = False,
    serial: Annotated[str | None, typer.Option(help="adb serial of the device to push to.")] = None,
    timing_seconds: TimingOption = 2.0,
    runs_dir: RunsDirOption = Path("runs"),
) -> None:
    """Export the run's student for DEVICE, check parity on held-out data, measure, and write a bundle."""
    from edgepeft.ship.android import AdbDevice
    from edgepeft.ship.deploy import deploy as deploy_run

    if serial is not None and not push:
        raise ConfigError("--serial names a device to push to, but --push is not given", where="--serial")
    prepared = _prepare(ctx, run, device, backend, precision, runs_dir)
    android = AdbDevice.connect(serial) if push else None  # before any work: no adb, no device -> nothing done
    with _progress() as progress:
        result = deploy_run(prepared, out_dir, push=android, timing_seconds=timing_seconds, progress=progress)
    _print_report(result.report)
    _console().print(f"bundle: {result.folder}  ({result.zip_path.name})")
    if android is not None:
        _console().print(f"pushed to {android.serial}:{REMOTE_ROOT}/{result.folder.name}")
    _budget_exit(result.report)


@app.command("export")
def export_command(
    ctx: typer.Context,
    run: RunArgument,
    backend: Annotated[str, typer.Option(help="Backend to export with (see `edgepeft plugins`).")],
    precision: Annotated[str, typer.Option(help="fp32, fp16, int8 (calibrated) or int8-dynamic.")] = "fp32",
    batch_size: Annotated[int, typer.Option(min=1, help="Batch a fixed-shape runtime is built for.")] = 1,
    layout: Annotated[str, typer.Option(help="Input layout: NCHW or NHWC.")] = "NCHW",
    threads: Annotated[int, typer.Option(min=1, help="Runtime threads for the parity run.")] = 1,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder that receives <run>-<backend>-<precision>/.")] = Path(
        "exports"
    ),
    runs_dir: RunsDirOption = Path("runs"),
) -> None:
    """Export the run's student with one backend and precision, through the parity gate."""
    from edgepeft.api.backend import ExportOptions
    from edgepeft.api.device import parity_thresholds
    from edgepeft.artifacts.run_folder import open_run
    from edgepeft.ship.export import export_run, usable_backend

    manager = _manager(ctx)
    if layout not in ("NCHW", "NHWC"):
        raise ConfigError(f"unknown layout {layout!r}", where="--layout", fix="Use NCHW or NHWC")
    backend_cls = usable_backend(manager, backend, precision, layout)
    opened = open_run(run, manager, runs_dir)
    options = ExportOptions(precision=precision, threads=threads, input_layout=layout, batch_size=batch_size)
    folder, checked = export_run(opened, manager, backend_cls, options, out_dir, parity_thresholds({}, precision))
    _print_parity(checked.parity)
    _console().print(f"exported: {folder / checked.artifact.path.name} ({checked.artifact.size_bytes:,} bytes)")


@app.command()
def check(
    ctx: typer.Context,
    run: RunArgument,
    device: Annotated[str, typer.Option("--device", "-d", help="Device profile whose backends to check.")],
    backend: Annotated[str | None, typer.Option(help="Check only this backend.")] = None,
    runs_dir: RunsDirOption = Path("runs"),
) -> None:
    """Before exporting: which of the student's operators the device's backends can convert and run."""
    from edgepeft.api.device import load_profile
    from edgepeft.artifacts.run_folder import load_model, open_run
    from edgepeft.ship.operators import check_operators

    manager = _manager(ctx)
    profile = load_profile(device, manager.devices)
    names = [backend] if backend else [b for b in profile.runtime.backends if b in manager.backends]
    classes = [manager.backends.get(name, where="--backend") for name in names]
    usable = [cls for cls in classes if cls.unavailable_reason() is None]
    for cls in classes:
        if cls not in usable:
            _console(stderr=True).print(f"[yellow]skipped {cls.name}:[/] {cls.unavailable_reason()}")
    if not usable:
        raise BackendUnavailableError(f"none of the backends {', '.join(names)} is installed here")
    model, spec = load_model(open_run(run, manager, runs_dir).path / "student", manager)
    report = check_operators(model, tuple(spec.input_shape), usable, profile.budgets.batch_size)
    table = Table("operator", "count", "used in", *(cls.name for cls in usable), title="operators of the student")
    for op, count in sorted(report.operators.items()):
        verdicts = []
        for cls in usable:
            missing = report.unsupported[cls.name]
            verdicts.append("?" if missing is None else ("[red]no[/]" if op in missing else "[green]yes[/]"))
        table.add_row(op, str(count), ", ".join(report.modules[op][:3]), *verdicts)
    _console().print(table)
    blocked = []
    for cls in usable:
        missing = report.unsupported[cls.name]
        if missing is None:
            _console().print(f"{cls.name}: cannot tell before converting")
        elif missing:
            blocked.append(cls.name)
            _console().print(f"[red]{cls.name}: cannot convert {', '.join(missing)}[/]")
        else:
            _console().print(f"[green]{cls.name}: every operator converts[/]")
    if blocked and len(blocked) == len(usable):
        raise ExportError(
            f"no backend of {profile.name!r} can convert every operator ({', '.join(blocked)} checked)",
            fix="Replace the listed operators in the model, or pick a device whose backend supports them",
        )


@app.command()
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

    manager = _manager(ctx)
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
    with _progress() as progress:
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
        _console().print(table)
    notes = [f"not measured: {line}" for line in skipped]
    for note in [*below_parity(result), *notes]:
        _console().print(f"[yellow]{escape(note)}[/]", soft_wrap=True)
    paths = write(result, out_dir or opened.path / "bench", notes)
    _console().print("written: " + ", ".join(str(p) for p in paths.values()))


def _trial_line(r: Any) -> str:
    from edgepeft.search.study import describe

    figures = (
        f"val {r.shown(r.val_score)}, {r.size_mb:.3f} MB, p95 {r.p95_ms:.3f} ms"
        + (f", broke {', '.join(r.broke)}" if r.broke else "")
        if r.state == "complete"
        else f"{r.state}: {r.note}"
    )
    return f"trial {r.number}: {escape(describe(r.settings))} -> {escape(figures)}"


@app.command()
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
    from edgepeft.search.study import best, describe, load_plan, pareto, plot, run_search

    manager = _manager(ctx)
    plan = load_plan(find_recipe(recipe), manager)
    name = device or plan.search.device
    if name is None:
        raise ConfigError(
            "no device to search for", where=str(recipe), fix='Pass --device, or set [search] device = "..."'
        )
    profile = load_profile(name, manager.devices)
    out = out_dir or Path("runs") / f"search-{plan.name}"
    console = _console()

    with _progress() as progress:
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
            on_trial=lambda r: console.print(_trial_line(r), soft_wrap=True),
            progress=progress,
        )
    if workers > 1 or ray is not None:  # the other workers' trials ended in other processes: list them all
        for r in results:
            console.print(_trial_line(r), soft_wrap=True)
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
    console.print(table)
    import importlib.util

    title = f"search {plan.name} on {profile.name}: {len(results)} trials"
    if importlib.util.find_spec("matplotlib") is not None and plot(results, out / "pareto.png", title):
        console.print(f"plot: {out / 'pareto.png'}")
    console.print(f"every trial: {out / 'trials.json'}")
    if chosen is None:
        console.print(f"[bold red]no trial meets every {profile.name} budget[/]")
        raise typer.Exit(BUDGET_EXIT)
    console.print(
        f"best within budget: trial {chosen.number} (validation {chosen.metric} {chosen.shown(chosen.val_score)}, "
        f"test {chosen.shown(chosen.test_score)}, {chosen.size_mb:.3f} MB, p95 {chosen.p95_ms:.3f} ms)\n"
        f"deploy it: edgepeft deploy {chosen.run} --device {profile.name} --precision {chosen.precision}",
        soft_wrap=True,
    )


BUDGET_EXIT = 10


def _print_parity(parity: ParityReport) -> None:
    from edgepeft.api.tasks import format_metric

    quality = ", ".join(
        f"{m} {format_metric(m, parity.metrics[m])} (PyTorch {format_metric(m, parity.reference_metrics[m])})"
        for m in parity.primary
    )
    _console().print(
        f"parity ({parity.precision}) on {parity.examples} held-out examples: top-1 agreement "
        f"{parity.top1_agreement:.2%}, max |diff| {parity.max_abs_diff:.2g}, mean |diff| {parity.mean_abs_diff:.2g}, "
        f"{quality}"
    )


@app.command()
def verify(
    ctx: typer.Context,
    bundle_dir: Annotated[Path, typer.Argument(help="A bundle folder or .zip written by `edgepeft deploy`.")],
) -> None:
    """Check every file of a bundle against manifest.json's sha256, a text model's bundled tokenizer against the
    samples, then re-run the sample inputs with the runtime the manifest names and compare with the recorded
    outputs."""
    import tempfile

    from edgepeft.artifacts.bundle import extract_zip
    from edgepeft.artifacts.bundle import verify as verify_bundle

    with tempfile.TemporaryDirectory() as unpacked:
        folder = extract_zip(bundle_dir, Path(unpacked)) if bundle_dir.suffix == ".zip" else bundle_dir
        result = verify_bundle(folder, _manager(ctx))
        if result.problems:
            raise ArtifactError(f"bundle is not intact: {'; '.join(result.problems)}", where=str(bundle_dir))
    _console().print(
        f"{bundle_dir}: every file matches its manifest sha256, and {result.samples_rerun} sample inputs give the "
        "recorded outputs"
    )
    if result.tokenizer:
        _console().print(f"tokenizer: {result.tokenizer}")


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
        manager = _loaded_manager()
        manager.call("edgepeft_register_commands", app=app)
        check_command_names(app)
    except EdgepeftError as exc:
        sys.exit(_report(exc))
    app(prog_name="edgepeft", obj=manager)

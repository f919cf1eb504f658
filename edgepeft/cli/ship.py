"""Shipping a run: `edgepeft check`, `export`, `profile`, `deploy` and `verify`, and how their reports print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from edgepeft.cli.console import console, progress_bar
from edgepeft.cli.context import plugin_manager
from edgepeft.cli.errors import BUDGET_EXIT
from edgepeft.cli.options import DeviceOption, RunArgument, RunsDirOption, TimingOption
from edgepeft.errors import ArtifactError, BackendUnavailableError, ConfigError, ExportError
from edgepeft.ship.android import REMOTE_ROOT

if TYPE_CHECKING:
    from edgepeft.ship.parity import ParityReport
    from edgepeft.ship.profile import ProfileReport

BackendOption = Annotated[str | None, typer.Option(help="Override the profile's backend preference.")]
PrecisionOption = Annotated[str | None, typer.Option(help="Override the profile's precision preference.")]


def _prepare(ctx: typer.Context, run: Path, device: str, backend: str | None, precision: str | None, runs_dir: Path):
    from edgepeft.api.device import load_profile
    from edgepeft.artifacts.run_folder import open_run
    from edgepeft.ship.deploy import prepare
    from edgepeft.ship.export import choose_backend

    manager = plugin_manager(ctx)
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
    console().print(latency)
    table = Table("budget", "limit", "value", "unit", "source", "status", title=f"{report.device} budgets")
    for b in report.budgets:
        colour = "green" if b.passed else "red"
        table.add_row(b.budget, f"{b.limit:g}", f"{b.value:.4g}", b.unit, b.source, f"[{colour}]{b.status}[/]")
    console().print(table)


def _budget_exit(report: ProfileReport) -> None:
    if not report.within_budget:
        failed = ", ".join(b.budget for b in report.budgets if not b.passed)
        console(stderr=True).print(f"[bold red]error:[/] the model does not meet the {report.device} budget ({failed})")
        raise typer.Exit(BUDGET_EXIT)


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
        with progress_bar() as progress:
            report = profile_run(prepared, timing_seconds=timing_seconds, progress=progress)
        _print_report(report)
    _budget_exit(report)


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
    with progress_bar() as progress:
        result = deploy_run(prepared, out_dir, push=android, timing_seconds=timing_seconds, progress=progress)
    _print_report(result.report)
    console().print(f"bundle: {result.folder}  ({result.zip_path.name})")
    if android is not None:
        console().print(f"pushed to {android.serial}:{REMOTE_ROOT}/{result.folder.name}")
    _budget_exit(result.report)


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

    manager = plugin_manager(ctx)
    if layout not in ("NCHW", "NHWC"):
        raise ConfigError(f"unknown layout {layout!r}", where="--layout", fix="Use NCHW or NHWC")
    backend_cls = usable_backend(manager, backend, precision, layout)
    opened = open_run(run, manager, runs_dir)
    options = ExportOptions(precision=precision, threads=threads, input_layout=layout, batch_size=batch_size)
    folder, checked = export_run(opened, manager, backend_cls, options, out_dir, parity_thresholds({}, precision))
    _print_parity(checked.parity)
    console().print(f"exported: {folder / checked.artifact.path.name} ({checked.artifact.size_bytes:,} bytes)")


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

    manager = plugin_manager(ctx)
    profile = load_profile(device, manager.devices)
    names = [backend] if backend else [b for b in profile.runtime.backends if b in manager.backends]
    classes = [manager.backends.get(name, where="--backend") for name in names]
    usable = [cls for cls in classes if cls.unavailable_reason() is None]
    for cls in classes:
        if cls not in usable:
            console(stderr=True).print(f"[yellow]skipped {cls.name}:[/] {cls.unavailable_reason()}")
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
    console().print(table)
    blocked = []
    for cls in usable:
        missing = report.unsupported[cls.name]
        if missing is None:
            console().print(f"{cls.name}: cannot tell before converting")
        elif missing:
            blocked.append(cls.name)
            console().print(f"[red]{cls.name}: cannot convert {', '.join(missing)}[/]")
        else:
            console().print(f"[green]{cls.name}: every operator converts[/]")
    if blocked and len(blocked) == len(usable):
        raise ExportError(
            f"no backend of {profile.name!r} can convert every operator ({', '.join(blocked)} checked)",
            fix="Replace the listed operators in the model, or pick a device whose backend supports them",
        )


def _print_parity(parity: ParityReport) -> None:
    from edgepeft.api.tasks import format_metric

    quality = ", ".join(
        f"{m} {format_metric(m, parity.metrics[m])} (PyTorch {format_metric(m, parity.reference_metrics[m])})"
        for m in parity.primary
    )
    console().print(
        f"parity ({parity.precision}) on {parity.examples} held-out examples: top-1 agreement "
        f"{parity.top1_agreement:.2%}, max |diff| {parity.max_abs_diff:.2g}, mean |diff| {parity.mean_abs_diff:.2g}, "
        f"{quality}"
    )


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
        result = verify_bundle(folder, plugin_manager(ctx))
        if result.problems:
            raise ArtifactError(f"bundle is not intact: {'; '.join(result.problems)}", where=str(bundle_dir))
    console().print(
        f"{bundle_dir}: every file matches its manifest sha256, and {result.samples_rerun} sample inputs give the "
        "recorded outputs"
    )
    if result.tokenizer:
        console().print(f"tokenizer: {result.tokenizer}")

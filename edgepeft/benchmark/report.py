"""Tables, ratios and Pareto plots of a :class:`~edgepeft.benchmark.bench.BenchResult`, and writing them out."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from edgepeft.api.tasks import format_metric
from edgepeft.benchmark.bench import BenchResult, Measurement
from edgepeft.util import atomic


@dataclass(frozen=True)
class Comparison:
    """One row against a reference row: times smaller, times faster (p50 at batch 1 and at the profile's
    batch), times the reference's throughput at the large batch, times less inference memory, and the
    score difference in points (a classifier's accuracy points)."""

    smaller: float
    faster: float
    faster_at_profile_batch: float
    throughput: float
    less_memory: float | None
    score_points: float


def compare(row: Measurement, ref: Measurement, result: BenchResult) -> Comparison:
    batch, big = result.profile_batch, result.throughput_batch
    memory = (ref.peak_memory_mb, row.peak_memory_mb)
    return Comparison(
        smaller=ref.size_bytes / row.size_bytes,
        faster=ref.latency[1].p50_ms / row.latency[1].p50_ms,
        faster_at_profile_batch=ref.latency[batch].p50_ms / row.latency[batch].p50_ms,
        throughput=row.items_per_second(big) / ref.items_per_second(big),
        less_memory=memory[0] / memory[1] if None not in memory else None,
        score_points=(row.score - ref.score) * 100,
    )


@dataclass(frozen=True)
class Ratios:
    """One row against the teacher (as trained), the baseline (the first baseline row: the teacher through a
    runtime's one-line int8 conversion), and the teacher's one-line export on the row's own runtime, where
    there is one."""

    label: str
    teacher: Comparison
    baseline: Comparison | None
    same_runtime_baseline: Comparison | None


def ratios(result: BenchResult) -> list[Ratios]:
    """Ratios of every measured row."""
    teacher, baseline = result.reference("teacher"), result.reference("baseline")
    if teacher is None:
        return []
    per_runtime = {r.candidate.backend: r for r in result.rows if r.candidate.role == "baseline" and not r.refused}

    def against(row: Measurement, ref: Measurement | None) -> Comparison | None:
        return compare(row, ref, result) if ref is not None else None

    return [
        Ratios(
            row.candidate.label,
            compare(row, teacher, result),
            against(row, baseline),
            against(row, per_runtime.get(row.candidate.backend)),
        )
        for row in result.rows
        if not row.refused
    ]


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _points(value: float) -> str:
    return f"{value:+.2f}"


def _latency(row: Measurement, batch: int) -> str:
    lat = row.latency[batch]
    return f"{lat.p50_ms:.3f} / {lat.p95_ms:.3f}"


def score_name(result: BenchResult) -> str:
    """What the score is: a classifier's accuracy, else the mean of the heads' main metrics."""
    if result.metrics == ("accuracy",):
        return "accuracy"
    return "score (mean of " + ", ".join(f"-{m}" if m.endswith(("rmse", "mae")) else m for m in result.metrics) + ")"


def measured_table(result: BenchResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows of what was measured for each candidate."""
    batch, big, peak = result.profile_batch, result.throughput_batch, result.peak
    header = [
        "model",
        "role",
        "parameters",
        "MFLOPs/example",
        "size KB",
        *result.metrics,
        "agreement",
        "peak MB",
        "p50 / p95 ms @1",
        *([f"p50 / p95 ms @{batch}"] if batch != 1 else []),
        f"items/s @{big}",
        f"% of matmul peak @{big}",
        "FLOP floor ms @1",
    ]
    rows = []
    for r in result.rows:
        head = [r.candidate.label, r.candidate.role, f"{r.parameters:,}", f"{r.flops / 1e6:.2f}"]
        if r.refused:
            rows.append([*head, f"not measured: {r.refused}", *[""] * (len(header) - len(head) - 1)])
            continue
        achieved = r.flops * r.items_per_second(big)
        rows.append(
            [
                *head,
                f"{r.size_bytes / 1024:,.1f}",
                *(format_metric(m, r.metrics[m]) for m in result.metrics),
                f"{r.agreement:.2%}" + (" (below the parity gate)" if r.below_parity else ""),
                "-" if r.peak_memory_mb is None else f"{r.peak_memory_mb:.0f}",
                _latency(r, 1),
                *([_latency(r, batch)] if batch != 1 else []),
                f"{r.items_per_second(big):,.0f}",
                f"{achieved / peak.flops_per_second:.1%}",
                f"{peak.floor_ms(r.flops):.4f}",
            ]
        )
    return header, rows


def ratio_table(result: BenchResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows of each candidate's ratios to the teacher (T), the baseline (B) and the teacher's
    int8 on the same runtime (R)."""
    batch, big = result.profile_batch, result.throughput_batch
    header = [
        "model",
        "smaller T / B / R",
        "faster @1 T / B / R",
        *([f"faster @{batch} T / B / R"] if batch != 1 else []),
        f"throughput @{big} T / B / R",
        "less memory T / B / R",
        f"{'accuracy' if result.metrics == ('accuracy',) else 'score'} points T / B / R",
    ]

    def cell(r: Ratios, name: str, show: Callable[[float], str]) -> str:
        refs = (r.teacher, r.baseline, r.same_runtime_baseline)
        return " / ".join("-" if c is None or getattr(c, name) is None else show(getattr(c, name)) for c in refs)

    rows = [
        [
            r.label,
            cell(r, "smaller", _x),
            cell(r, "faster", _x),
            *([cell(r, "faster_at_profile_batch", _x)] if batch != 1 else []),
            cell(r, "throughput", _x),
            cell(r, "less_memory", _x),
            cell(r, "score_points", _points),
        ]
        for r in ratios(result)
    ]
    return header, rows


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def describe(result: BenchResult) -> str:
    """One paragraph: what was measured, where, and what the ratios refer to."""
    peak = result.peak
    references = result.reference_labels()
    first = result.first("baseline")
    baseline = references["baseline"] or (
        f"not measured ({first.candidate.backend} {first.candidate.precision} is unavailable)"
        if first
        else "not measured (no available backend declares one)"
    )
    return (
        f"{result.run} for device profile {result.device}: {result.examples:,} held-out test examples, "
        f"{result.threads} threads, latency at batch 1"
        + (f" and {result.profile_batch} (the profile's batch)" if result.profile_batch != 1 else "")
        + f", throughput (items over mean time per call) at batch {result.throughput_batch}. This machine's "
        f"fp32 matmul peak: {peak.flops_per_second / 1e9:.1f} GFLOP/s ({peak.size}x{peak.size}, {peak.threads} "
        "threads); the FLOP floor is a model's FLOPs at that peak (int8 rows are held to the fp32 peak too, so "
        f"they can pass 100%). T = the teacher ({references['teacher'] or 'not measured'}); B = the baseline, "
        f"{baseline}; R = the teacher's one-line int8 export on the row's own runtime. Peak MB = peak "
        "resident memory of a fresh process running the exported file at the profile's batch. Student exports "
        "passed the parity gate; teacher and baseline exports are measured as converted."
    )


def below_parity(result: BenchResult) -> list[str]:
    """A line for each ungated (teacher or baseline) export that misses the parity gate."""
    return [f"{r.candidate.label} misses the parity gate: {r.below_parity}" for r in result.rows if r.below_parity]


def render(result: BenchResult, notes: list[str]) -> str:
    """The result as Markdown: a description, the measured table, the ratio table and the notes."""
    parts = [describe(result), markdown(*measured_table(result)), markdown(*ratio_table(result))]
    return "\n\n".join(parts) + "".join(f"\n\n- {note}" for note in [*below_parity(result), *notes])


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower x, higher y), ordered by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


STYLE = {"teacher": ("*", "black"), "baseline": ("s", "tab:red"), "student": ("o", "tab:blue")}


def plot_pareto(result: BenchResult, path: Path) -> bool:
    """The score (a classifier's accuracy) against file size and against batch-1 latency, teacher,
    baselines and students marked, with each panel's Pareto front, as a PNG written atomically to ``path``;
    False when no row has figures."""
    from matplotlib.figure import Figure

    rows = [r for r in result.rows if not r.refused]
    if not rows:
        return False
    fig = Figure(figsize=(13, 5), constrained_layout=True)
    axes = fig.subplots(1, 2)
    panels = (
        ("file size (KB, log scale)", lambda r: r.size_bytes / 1024),
        ("p50 latency at batch 1 (ms, log scale)", lambda r: r.latency[1].p50_ms),
    )
    for ax, (xlabel, x_of) in zip(axes, panels, strict=True):
        points = [(x_of(r), r.score * 100) for r in rows]
        for role, (marker, colour) in STYLE.items():
            chosen = [p for p, r in zip(points, rows, strict=True) if r.candidate.role == role]
            if chosen:
                ax.scatter(*zip(*chosen, strict=True), marker=marker, color=colour, s=90, label=role, zorder=3)
        on_front = pareto_front(points)
        named = sorted({*on_front, *(i for i, r in enumerate(rows) if r.candidate.role != "student")})
        for n, i in enumerate(named):  # the rest are in the table; labelling all would overlap
            offset = (6, 6) if n % 2 == 0 else (6, -12)
            ax.annotate(rows[i].candidate.label, points[i], textcoords="offset points", xytext=offset, fontsize=7)
        front = [points[i] for i in on_front]
        ax.step(*zip(*front, strict=True), where="post", linestyle="--", color="grey", label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"test {score_name(result)} x 100")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    title = f"{result.run} on {result.device}: {score_name(result)} vs size and latency ({result.threads} threads)"
    fig.suptitle(title)
    with atomic.atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return True


def write(result: BenchResult, folder: Path, notes: list[str]) -> dict[str, Path]:
    """Write ``bench.json`` (every figure and ratio), ``bench.md`` and, with matplotlib installed (the
    ``bench`` extra), ``pareto.png`` to ``folder``; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "bench.json", "markdown": folder / "bench.md", "plot": folder / "pareto.png"}
    if importlib.util.find_spec("matplotlib") is None:
        notes = [*notes, "no Pareto plot: matplotlib is not installed (pip install 'edgepeft[bench]')"]
        del paths["plot"]
    elif not plot_pareto(result, paths["plot"]):
        notes = [*notes, "no Pareto plot: no candidate could be measured"]
        del paths["plot"]
    data = {**result.as_dict(), "ratios": [asdict(r) for r in ratios(result)], "notes": notes}
    atomic.write_json(paths["json"], data)
    atomic.write_text(paths["markdown"], render(result, notes) + "\n")
    return paths

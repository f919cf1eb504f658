"""Tables, ratios and Pareto plots of a :class:`~edgepeft.benchmark.BenchResult`, and writing them out."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgepeft import atomic
from edgepeft.benchmark import BenchResult, Measurement


@dataclass(frozen=True)
class Comparison:
    """One row against a reference row: times smaller, times faster (p50 at batch 1; p95 at the profile's
    batch), times the reference's throughput at the large batch, times less inference memory, and the
    accuracy difference in points."""

    smaller: float
    faster: float
    faster_at_profile_batch: float
    throughput: float
    less_memory: float
    accuracy_points: float


def compare(row: Measurement, ref: Measurement, result: BenchResult) -> Comparison:
    batch, big = result.profile_batch, result.throughput_batch
    return Comparison(
        smaller=ref.size_bytes / row.size_bytes,
        faster=ref.latency[1].p50_ms / row.latency[1].p50_ms,
        faster_at_profile_batch=ref.latency[batch].p95_ms / row.latency[batch].p95_ms,
        throughput=row.items_per_second(big) / ref.items_per_second(big),
        less_memory=ref.peak_memory_mb / row.peak_memory_mb,
        accuracy_points=(row.accuracy - ref.accuracy) * 100,
    )


@dataclass(frozen=True)
class Ratios:
    """One row against the teacher (PyTorch fp32) and the baseline (the teacher through onnxruntime's
    dynamic int8)."""

    label: str
    teacher: Comparison
    baseline: Comparison | None


def ratios(result: BenchResult) -> list[Ratios]:
    """Ratios of every measured row to the teacher and to the baseline."""
    teacher, baseline = result.reference("teacher"), result.reference("baseline")
    if teacher is None:
        return []
    return [
        Ratios(
            row.candidate.label,
            compare(row, teacher, result),
            compare(row, baseline, result) if baseline is not None else None,
        )
        for row in result.rows
        if not row.refused
    ]


def _x(value: float) -> str:
    return f"{value:.2f}x"


def _points(value: float) -> str:
    return f"{value:+.2f}"


def measured_table(result: BenchResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows of what was measured for each candidate."""
    batch, big, peak = result.profile_batch, result.throughput_batch, result.peak
    header = [
        "model",
        "role",
        "parameters",
        "MFLOPs/example",
        "size KB",
        "accuracy",
        "agreement",
        "peak MB",
        "p50 / p95 ms @1",
        *([f"p95 ms @{batch}"] if batch not in (1, big) else []),
        f"items/s @{big}",
        f"% of matmul peak @{big}",
        "FLOP floor ms @1",
    ]
    rows = []
    for r in result.rows:
        head = [r.candidate.label, r.candidate.role, f"{r.parameters:,}", f"{r.flops / 1e6:.2f}"]
        if r.refused:
            rows.append([*head, f"refused by the parity gate: {r.refused}", *[""] * (len(header) - 5)])
            continue
        lat1 = r.latency[1]
        achieved = r.flops * r.items_per_second(big)
        rows.append(
            [
                *head,
                f"{r.size_bytes / 1024:,.1f}",
                f"{r.accuracy:.2%}",
                f"{r.agreement:.2%}",
                f"{r.peak_memory_mb:.0f}",
                f"{lat1.p50_ms:.3f} / {lat1.p95_ms:.3f}",
                *([f"{r.latency[batch].p95_ms:.3f}"] if batch not in (1, big) else []),
                f"{r.items_per_second(big):,.0f}",
                f"{achieved / peak.flops_per_second:.1%}",
                f"{peak.floor_ms(r.flops):.4f}",
            ]
        )
    return header, rows


def ratio_table(result: BenchResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows of each candidate's ratios to the teacher (T) and to the baseline (B)."""
    batch, big = result.profile_batch, result.throughput_batch
    at_batch = batch not in (1, big)
    header = [
        "model",
        "smaller T / B",
        "faster @1 T / B",
        *([f"faster p95 @{batch} T / B"] if at_batch else []),
        f"throughput @{big} T / B",
        "less memory T / B",
        "accuracy points T / B",
    ]

    def pair(r: Ratios, name: str, show: Any) -> str:
        b = show(getattr(r.baseline, name)) if r.baseline is not None else "-"
        return f"{show(getattr(r.teacher, name))} / {b}"

    rows = [
        [
            r.label,
            pair(r, "smaller", _x),
            pair(r, "faster", _x),
            *([pair(r, "faster_at_profile_batch", _x)] if at_batch else []),
            pair(r, "throughput", _x),
            pair(r, "less_memory", _x),
            pair(r, "accuracy_points", _points),
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
    return (
        f"{result.run} for device profile {result.device}: {result.examples:,} held-out test examples, "
        f"{result.threads} threads, latency at batch 1"
        + (f" and {result.profile_batch} (the profile's batch)" if result.profile_batch != 1 else "")
        + f", throughput at batch {result.throughput_batch}. This machine's fp32 matmul peak: "
        f"{peak.flops_per_second / 1e9:.1f} GFLOP/s ({peak.size}x{peak.size}, {peak.threads} threads); the "
        "FLOP floor is a model's FLOPs at that peak (int8 rows are held to the fp32 peak too, so they can pass "
        "100%). Teacher = the teacher in PyTorch fp32; baseline = the teacher through onnxruntime dynamic int8; "
        "T / B = the ratio to each. Peak MB = peak resident memory of a fresh process running the exported "
        "file at the profile's batch."
    )


def render(result: BenchResult) -> str:
    """The result as Markdown: a description, the measured table and the ratio table."""
    return "\n\n".join([describe(result), markdown(*measured_table(result)), markdown(*ratio_table(result))])


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


def plot_pareto(result: BenchResult, path: Path) -> None:
    """Accuracy against file size and against batch-1 latency, teacher, baselines and students marked,
    with each panel's Pareto front, as a PNG written atomically to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result.rows if not r.refused]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), constrained_layout=True)
    panels = (
        ("file size (KB, log scale)", lambda r: r.size_bytes / 1024),
        ("p50 latency at batch 1 (ms, log scale)", lambda r: r.latency[1].p50_ms),
    )
    for ax, (xlabel, x_of) in zip(axes, panels, strict=True):
        points = [(x_of(r), r.accuracy * 100) for r in rows]
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
        ax.set_ylabel("test accuracy (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{result.run} on {result.device}: accuracy vs size and latency ({result.threads} threads)")
    with atomic.atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write(result: BenchResult, folder: Path, notes: list[str]) -> dict[str, Path]:
    """Write ``bench.json`` (every figure and ratio), ``bench.md`` and, with matplotlib installed (the
    ``bench`` extra), ``pareto.png`` to ``folder``; returns the paths written."""
    import importlib.util

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "bench.json", "markdown": folder / "bench.md", "plot": folder / "pareto.png"}
    if importlib.util.find_spec("matplotlib") is None:
        notes = [*notes, "no Pareto plot: matplotlib is not installed (pip install 'edgepeft[bench]')"]
        del paths["plot"]
    data = {**result.as_dict(), "ratios": [asdict(r) for r in ratios(result)], "notes": notes}
    atomic.write_json(paths["json"], data)
    text = render(result) + "".join(f"\n\n- {note}" for note in notes)
    atomic.write_text(paths["markdown"], text + "\n")
    if "plot" in paths:
        plot_pareto(result, paths["plot"])
    return paths

"""Tables, ratios and Pareto plots of a :class:`~edgepeft.benchmark.BenchResult`, and writing them out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgepeft import atomic
from edgepeft.benchmark import BenchResult, Measurement


@dataclass(frozen=True)
class Ratios:
    """One row against the teacher (PyTorch fp32) and the baseline (the teacher through onnxruntime's
    dynamic int8): how many times smaller and faster, and the accuracy it gives up, in points."""

    label: str
    smaller_than_teacher: float
    smaller_than_baseline: float | None
    faster_than_teacher: float
    faster_than_baseline: float | None
    throughput_vs_teacher: float
    throughput_vs_baseline: float | None
    accuracy_vs_teacher: float
    accuracy_vs_baseline: float | None


def _against(row: Measurement, ref: Measurement, big: int) -> tuple[float, float, float, float]:
    """``row`` against ``ref``: times smaller, times faster at batch 1 (p50), times the throughput at
    ``big``, and accuracy difference in points."""
    return (
        ref.size_bytes / row.size_bytes,
        ref.latency[1].p50_ms / row.latency[1].p50_ms,
        row.items_per_second(big) / ref.items_per_second(big),
        (row.accuracy - ref.accuracy) * 100,
    )


def ratios(result: BenchResult) -> list[Ratios]:
    """Ratios for every measured row; latency ratios compare p50 at batch 1, throughput the large batch."""
    teacher, baseline = result.reference("teacher"), result.reference("baseline")
    if teacher is None:
        return []
    big = result.throughput_batch
    out = []
    for row in result.rows:
        if row.refused:
            continue
        t = _against(row, teacher, big)
        b = _against(row, baseline, big) if baseline is not None else (None,) * 4
        out.append(Ratios(row.candidate.label, t[0], b[0], t[1], b[1], t[2], b[2], t[3], b[3]))
    return out


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _points(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


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
    """Header and rows of each candidate's ratios to the teacher and to the baseline."""
    big = result.throughput_batch
    header = [
        "model",
        "smaller than teacher",
        "smaller than baseline",
        "faster @1 than teacher",
        "faster @1 than baseline",
        f"throughput @{big} vs teacher",
        "vs baseline",
        "accuracy vs teacher (points)",
        "vs baseline (points)",
    ]
    rows = [
        [
            r.label,
            _x(r.smaller_than_teacher),
            _x(r.smaller_than_baseline),
            _x(r.faster_than_teacher),
            _x(r.faster_than_baseline),
            _x(r.throughput_vs_teacher),
            _x(r.throughput_vs_baseline),
            _points(r.accuracy_vs_teacher),
            _points(r.accuracy_vs_baseline),
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
        + (f" and {result.profile_batch} (the profile's batch)" if result.profile_batch not in (1,) else "")
        + f", throughput at batch {result.throughput_batch}. This machine's fp32 matmul peak: "
        f"{peak.flops_per_second / 1e9:.1f} GFLOP/s ({peak.size}x{peak.size}, {peak.threads} threads); the FLOP "
        "floor is a model's FLOPs at that peak. Teacher = the teacher in PyTorch fp32; baseline = the teacher "
        "through onnxruntime dynamic int8. Peak MB = peak resident memory of a fresh process running the "
        "exported file at the profile's batch."
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
    data = {**result.as_dict(), "ratios": [vars(r) for r in ratios(result)], "notes": notes}
    atomic.write_json(paths["json"], data)
    text = render(result) + "".join(f"\n\n- {note}" for note in notes)
    atomic.write_text(paths["markdown"], text + "\n")
    if "plot" in paths:
        plot_pareto(result, paths["plot"])
    return paths

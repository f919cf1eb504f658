"""Teacher and every stage of a compressed student, side by side in one run, on the held-out test split.

    python bench/compression.py runs/realtime-vision [--device realtime-vision] [--threads 2] [--out bench/results]

For the teacher and each kept stage (``stages/00-student``, ``02-prune``, ...): parameters, PyTorch
accuracy, and for TFLite and ONNX at fp32 and int8 (each through the parity gate): file size, accuracy,
p50/p95 latency at batch 1. Then the ratios a compression recipe is judged by: parameters and int8 TFLite
size against the teacher, accuracy retention, the file-size cut of a prune stage, and int8 accuracy
after quantization-aware training against post-training int8 of the stage before it.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
from pathlib import Path

from edgepeft import count_parameters
from edgepeft.api.device import load_profile
from edgepeft.artifacts.run_folder import open_run
from edgepeft.benchmark.bench import Bench, Candidate, Measurement
from edgepeft.host.manager import default_manager
from edgepeft.train.loop import score
from edgepeft.util import atomic

EXPORTS = [("tflite", "fp32"), ("tflite", "int8"), ("onnx", "fp32"), ("onnx", "int8")]


def figures(m: Measurement) -> dict:
    """One export's size, accuracy and batch-1 latency, or why the parity gate refused it."""
    lat = m.latency.get(1)
    return {
        "size_bytes": m.size_bytes,
        "accuracy": m.score,
        "agreement": m.agreement,
        "p50_ms": lat.p50_ms if lat and not m.refused else None,
        "p95_ms": lat.p95_ms if lat and not m.refused else None,
        "refused": m.refused,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--device", default="realtime-vision", help="profile whose runtime settings and parity apply")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    manager = default_manager()
    run = open_run(Path(args.run), manager)
    profile = load_profile(args.device, manager.devices)
    bench = Bench(run, profile, manager, threads=args.threads, timing_seconds=2.0, batches=(1,), memory=False)
    data = bench.data
    if not (run.path / "stages").is_dir():
        raise SystemExit(f"{run.path} keeps no stages/: train a recipe with compression techniques first")
    missing = [b for b, _ in EXPORTS if b not in manager.backends or manager.backends.get(b).unavailable_reason()]
    if missing:
        raise SystemExit(f"backends {', '.join(sorted(set(missing)))} are not usable here: pip install 'edgepeft[all]'")
    models = ["teacher", *sorted(f"stages/{p.name}" for p in (run.path / "stages").iterdir() if p.is_dir())]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            model = bench.model(name)
            row = {
                "model": Path(name).name,
                "parameters": count_parameters(model),
                "pytorch_accuracy": score(model, data, data.test),
            }
            for backend, precision in EXPORTS:
                candidate = Candidate(name, backend, precision, "teacher" if name == "teacher" else "student")
                row[f"{backend} {precision}"] = figures(
                    bench.measure(candidate, Path(tmp) / name / backend / precision)
                )
            rows.append(row)
            print(f"measured {name}", flush=True)
    table = render(rows, run.name, len(data.test), args.threads)
    print(table)
    atomic.write_text(Path(args.out) / f"compression-{run.name}.md", table + "\n")
    atomic.write_json(Path(args.out) / f"compression-{run.name}.json", rows)


def render(rows: list[dict], run: str, examples: int, threads: int) -> str:
    teacher = rows[0]
    lines = [
        f"{run}: {examples:,} held-out test examples; {threads} threads; latency at batch 1; one run",
        "",
        "| model | parameters | fewer than teacher | PyTorch acc | export | size KB | teacher tflite fp32 / size "
        "| acc | retention | agreement | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    teacher_file = teacher["tflite fp32"]["size_bytes"]
    for row in rows:
        for name in (f"{b} {p}" for b, p in EXPORTS):
            m = row[name]
            figures = (
                f"{m['size_bytes'] / 1024:.1f} | {teacher_file / m['size_bytes']:.1f}x | {m['accuracy']:.2%} "
                f"| {m['accuracy'] / teacher['pytorch_accuracy']:.2%} | {m['agreement']:.2%} "
                f"| {m['p50_ms']:.3f} | {m['p95_ms']:.3f}"
                if not m["refused"]
                else f"refused by the parity gate: {m['refused'][:60]} | | | | | |"
            )
            lines.append(
                f"| {row['model']} | {row['parameters']:,} | {teacher['parameters'] / row['parameters']:.1f}x "
                f"| {row['pytorch_accuracy']:.2%} | {name} | {figures} |"
            )
    lines += ["", *findings(rows)]
    return "\n".join(lines)


def findings(rows: list[dict]) -> list[str]:
    """The stage-to-stage comparisons: what pruning did to file sizes, what QAT did to int8 accuracy."""
    out = []
    for before, after in itertools.pairwise(rows[1:]):
        if after["model"].endswith("prune"):
            for backend in ("onnx", "tflite"):
                a, b = before[f"{backend} fp32"]["size_bytes"], after[f"{backend} fp32"]["size_bytes"]
                out.append(
                    f"- {after['model']}: {backend} fp32 file {a / 1024:.1f} KB -> {b / 1024:.1f} KB "
                    f"({1 - b / a:.1%} smaller)"
                )
        if after["model"].endswith("quantize"):
            for backend in ("onnx", "tflite"):
                a, b = before[f"{backend} int8"]["accuracy"], after[f"{backend} int8"]["accuracy"]
                shown = [f"{v:.2%}" if v is not None else "refused" for v in (a, b)]
                out.append(
                    f"- {after['model']}: {backend} int8 accuracy, post-training int8 of {before['model']} "
                    f"{shown[0]} -> after quantization-aware training {shown[1]}"
                )
    return out


if __name__ == "__main__":
    main()

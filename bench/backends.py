"""Side-by-side benchmark of every backend and precision on one trained student, in one run.

    python bench/backends.py [RUN] [--model student|teacher] [--out bench/results]

Trains the default recipe first if RUN does not exist. Reports, for PyTorch eager and each export: file
size, held-out accuracy and top-1 agreement with PyTorch, p50/p95 latency at batch 1 and at a
throughput batch, and each figure's ratio to PyTorch eager measured in the same run (absolute times on
shared machines are noisy; ratios are what to compare).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from edgepeft.backend import ExportOptions
from edgepeft.devices import parity_thresholds
from edgepeft.export import calibration_inputs, export_checked
from edgepeft.plugins import default_manager
from edgepeft.profile import measure_latency, sample_batch
from edgepeft.recipe import default_recipe_path, load_recipe
from edgepeft.run import Trainer, load_model, open_run

CASES = [
    ("cpu", "fp32"),
    ("onnx", "fp32"),
    ("onnx", "int8-dynamic"),
    ("onnx", "int8"),
    ("tflite", "fp32"),
    ("tflite", "int8-dynamic"),
    ("tflite", "int8"),
]
THROUGHPUT_BATCH = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", default="runs/digits-distill")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--model", choices=("student", "teacher"), default="student", help="which model of the run")
    args = parser.parse_args()
    manager = default_manager()
    if not (Path(args.run) / "metrics.json").is_file():
        Trainer(load_recipe(default_recipe_path(), manager), manager, Path(args.run).parent).run()
    run = open_run(Path(args.run), manager)
    model, spec = load_model(run.path / args.model, manager)
    data = run.data(manager)
    x, y = data.test.x, data.test.y

    import torch

    torch.set_num_threads(args.threads)

    def eager(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(batch)).numpy()

    rows = [
        {
            "name": "pytorch eager fp32",
            "size_bytes": (run.path / args.model / "model.safetensors").stat().st_size,
            "accuracy": float((eager(x).argmax(1) == y).mean()),
            "top1_agreement": 1.0,
            "batch1": measure_latency(eager, sample_batch(x, 1)),
            "throughput": measure_latency(eager, sample_batch(x, THROUGHPUT_BATCH)),
        }
    ]
    calibration = calibration_inputs(data.train.x, run.resolved.recipe.seed)
    with tempfile.TemporaryDirectory() as tmp:
        for backend, precision in CASES:
            measured = {}
            for label, batch in (("batch1", 1), ("throughput", THROUGHPUT_BATCH)):
                options = ExportOptions(
                    precision=precision, threads=args.threads, batch_size=batch, calibration=calibration
                )
                folder = Path(tmp) / f"{backend}-{precision}-{batch}"
                folder.mkdir()
                checked = export_checked(
                    model, manager.backends.get(backend)(), options, (x, y), parity_thresholds({}, precision), folder
                )
                measured[label] = measure_latency(checked.runner, sample_batch(x, batch))
            rows.append(
                {
                    "name": f"{backend} {precision}",
                    "size_bytes": checked.artifact.size_bytes,
                    "accuracy": checked.parity.accuracy,
                    "top1_agreement": checked.parity.top1_agreement,
                    **measured,
                }
            )
    report(rows, spec.parameters, args)


def report(rows: list[dict], parameters: int, args: argparse.Namespace) -> None:
    base = rows[0]
    fp32_file = {r["name"].split()[0]: r["size_bytes"] for r in rows if r["name"].endswith("fp32")}
    lines = [
        f"{args.model}: {parameters:,} parameters; threads {args.threads}; throughput batch {THROUGHPUT_BATCH}; "
        "speed ratios are against PyTorch eager fp32 in this run",
        "",
        "| model | size KB | smaller than the backend's fp32 file | accuracy | agreement | p50 b1 ms | p95 b1 ms "
        f"| b1 speed-up | p50 b{THROUGHPUT_BATCH} ms | p95 b{THROUGHPUT_BATCH} ms | images/s | throughput ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b1, tp = r["batch1"], r["throughput"]
        images = THROUGHPUT_BATCH / (tp.p50_ms / 1e3)
        lines.append(
            f"| {r['name']} | {r['size_bytes'] / 1024:.1f} | {fp32_file[r['name'].split()[0]] / r['size_bytes']:.2f}x "
            f"| {r['accuracy']:.2%} | {r['top1_agreement']:.2%} | {b1.p50_ms:.3f} | {b1.p95_ms:.3f} "
            f"| {base['batch1'].p50_ms / b1.p50_ms:.1f}x | {tp.p50_ms:.2f} | {tp.p95_ms:.2f} | {images:,.0f} "
            f"| {base['throughput'].p50_ms / tp.p50_ms:.1f}x |"
        )
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"backends-{args.model}.md").write_text(table + "\n")
    serial = [{**r, "batch1": vars(r["batch1"]), "throughput": vars(r["throughput"])} for r in rows]
    (out / f"backends-{args.model}.json").write_text(
        json.dumps({"parameters": parameters, "rows": serial}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()

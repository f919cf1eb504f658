"""Every scenario measured side by side against the baselines users would pick instead, in one run.

    make bench                      # python bench/run.py: every landed scenario, full timing
    python bench/run.py --quick     # digits only, a few training epochs, short timing: minutes

Per scenario: trains its built-in recipe unless ``RUNS/<recipe>`` already holds a finished run, then
``edgepeft bench`` measures the teacher, the baselines (the teacher through onnxruntime dynamic int8
and TFLite post-training int8) and the student on every backend and precision. Then the toolkit's own
overhead (cold CLI start, training loop against a plain loop, teacher-output caching). Writes
``OUT/<scenario>/{bench.json,bench.md,pareto.png}``, ``OUT/overhead.json`` and ``OUT/summary.md``.
A scenario whose recipe has not landed yet is listed as such.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from edgepeft.api.device import load_profile
from edgepeft.artifacts.recipe import ResolvedRecipe, builtin_recipes, read_toml, resolve
from edgepeft.artifacts.run_folder import open_run
from edgepeft.benchmark.bench import bench_run, candidates
from edgepeft.benchmark.report import ratios, write
from edgepeft.errors import EdgepeftError
from edgepeft.host.manager import PluginManager, default_manager
from edgepeft.train.trainer import Trainer
from edgepeft.util import atomic


@dataclass(frozen=True)
class Scenario:
    """A built-in recipe and the device profile it is judged on."""

    name: str
    recipe: str
    device: str
    quick_epochs: dict[str, int] = field(default_factory=dict)
    """Epochs per recipe section (teacher, student) in --quick mode; only scenarios with these run there."""


SCENARIOS = (
    Scenario("digits", "digits-distill", "x86-server", quick_epochs={"teacher": 4, "student": 4}),
    Scenario("realtime-vision", "realtime-vision", "realtime-vision"),
    Scenario("text-sentiment", "text-sentiment", "android"),
    Scenario("android-recommendation", "android-recommendation", "android-recommendation"),
)


def recipe_for(scenario: Scenario, manager: PluginManager, quick: bool) -> ResolvedRecipe:
    path = builtin_recipes()[scenario.recipe]
    data, text = read_toml(path)
    if quick:
        for section, epochs in scenario.quick_epochs.items():
            data[section]["epochs"] = epochs
        return resolve(data, None, f"{path} (--quick epochs)", manager)
    return resolve(data, text, str(path), manager)


def trained_run(scenario: Scenario, manager: PluginManager, runs: Path, quick: bool, console: Console) -> Path:
    folder = runs / scenario.recipe
    if (folder / "metrics.json").is_file():
        console.print(f"{scenario.name}: using the finished run {folder}")
        return folder
    console.print(f"{scenario.name}: training {scenario.recipe} into {folder}")
    with Progress(console=console) as progress:
        Trainer(recipe_for(scenario, manager, quick), manager, runs, progress).run()
    return folder


def measure_overhead(run_dir: Path, quick: bool, threads: int) -> dict[str, Any]:
    """bench/overhead.py on a scenario's run, in a fresh process: no runtime of the measurements before it
    (their thread pools, caches) shares the CPU with the loops it times."""
    command = [sys.executable, str(Path(__file__).with_name("overhead.py")), str(run_dir), "--threads", str(threads)]
    proc = subprocess.run([*command, *(["--quick"] if quick else [])], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"measuring the toolkit's overhead failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def summary(results: dict[str, Any], overhead: dict[str, Any], missing: list[str], seconds: float) -> str:
    cli, train = overhead["cli"], overhead["training"]
    lines = [
        f"# edgepeft benchmarks ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {seconds / 60:.1f} min)",
        "",
    ]
    for name, text in results.items():
        lines += [f"## {name}", "", text, "", f"![{name} Pareto plot]({name}/pareto.png)", ""]
    lines += [
        "## Toolkit overhead",
        "",
        f"- Cold `edgepeft --help`: {cli['edgepeft_help_s']:.3f} s against {cli['python_pass_s']:.3f} s for "
        f"`python -c pass` ({cli['ratio']:.1f}x; medians of alternating fresh processes).",
        f"- Training loop on {overhead['run']}'s student ({train['student_parameters']:,} parameters, batch "
        f"{train['batch_size']}, {train['steps_timed']} steps): edgepeft {train['edgepeft_ms_per_step']:.3f} ms "
        f"per step against a plain PyTorch loop {train['plain_ms_per_step']:.3f} ms: "
        f"{train['loop_overhead']:+.1%} overhead.",
    ]
    if "caching_saving" in train:
        lines.append(
            f"- Teacher-output caching ({train['teacher_parameters']:,}-parameter teacher): distillation "
            f"{train['distill_cached_ms_per_step']:.3f} ms per step with cached logits (building the cache "
            f"included) against {train['distill_uncached_ms_per_step']:.3f} ms running the teacher each step "
            f"({train['caching_saving']:.1%} saved)."
        )
    if missing:
        lines += ["", "## Not measured", "", *(f"- {line}" for line in missing)]
    return "\n".join(lines) + "\n"


def bench_scenario(
    scenario: Scenario, run_dir: Path, manager: PluginManager, args: argparse.Namespace, console: Console
) -> str:
    """Measure one scenario's run into ``OUT/<scenario>/``; returns its Markdown."""
    profile = load_profile(scenario.device, manager.devices)
    todo, skipped = candidates(manager)
    console.print(f"{scenario.name}: measuring {len(todo)} candidates on {profile.name}")
    result = bench_run(
        open_run(run_dir, manager),
        profile,
        manager,
        todo,
        threads=args.threads,
        timing_seconds=0.2 if args.quick else 2.0,
        on_measured=lambda row: console.print(f"  measured {row.candidate.label}"),
    )
    paths = write(result, args.out / scenario.name, [f"not measured: {line}" for line in skipped])
    students = [r for r in ratios(result) if r.label.startswith("student") and r.baseline is not None]
    for r in sorted(students, key=lambda r: -r.baseline.faster)[:3]:
        console.print(
            f"  {r.label}: {r.baseline.smaller:.1f}x smaller and {r.baseline.faster:.1f}x faster at batch 1 "
            f"than the baseline, {r.baseline.score_points:+.2f} score points"
        )
    return paths["markdown"].read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits only, few epochs, short timing")
    parser.add_argument("--out", type=Path, default=Path("bench/results") / time.strftime("%Y%m%d-%H%M%S"))
    parser.add_argument("--runs", type=Path, help="where finished runs are reused [default: runs, or OUT/runs]")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--scenario", action="append", choices=[s.name for s in SCENARIOS], help="only these (repeatable)"
    )
    args = parser.parse_args()
    runs = args.runs or (args.out / "runs" if args.quick else Path("runs"))
    console = Console(stderr=True, highlight=False)
    manager = default_manager()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    chosen = [s for s in SCENARIOS if args.scenario is None or s.name in args.scenario]
    results, missing, first_run = {}, [], None
    for scenario in chosen:
        if args.quick and not scenario.quick_epochs:
            continue
        if scenario.recipe not in builtin_recipes():
            missing.append(f"{scenario.name}: the built-in recipe {scenario.recipe!r} has not landed yet")
            continue
        run_dir = trained_run(scenario, manager, runs, args.quick, console)
        first_run = first_run or run_dir
        results[scenario.name] = bench_scenario(scenario, run_dir, manager, args, console)
    if first_run is None:
        raise SystemExit("no scenario to measure: " + "; ".join(missing or ["--quick runs only digits"]))
    console.print("measuring toolkit overhead")
    overhead = measure_overhead(first_run, args.quick, args.threads)
    atomic.write_json(args.out / "overhead.json", overhead)
    atomic.write_text(args.out / "summary.md", summary(results, overhead, missing, time.perf_counter() - started))
    print((args.out / "summary.md").read_text())


def entry() -> None:
    """main(), with edgepeft's errors as one line and an exit code instead of a traceback."""
    try:
        main()
    except EdgepeftError as exc:
        Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    entry()

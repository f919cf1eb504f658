"""What edgepeft itself costs: cold CLI start, the training loop against a plain PyTorch loop, and what
caching the teacher's outputs saves, on a finished run's recipe, data, student and teacher.

    python bench/overhead.py runs/digits-distill [--quick] [--threads 2]     # prints JSON

 Every comparison runs each side once untimed, then alternates the
two sides in one process, so a noisy machine slows both alike; medians are reported with their ratio."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import Progress

import edgepeft
from edgepeft.api.context import TrainContext
from edgepeft.artifacts.recipe import ResolvedRecipe
from edgepeft.artifacts.run_folder import load_model, open_run
from edgepeft.host.manager import PluginManager, default_manager
from edgepeft.train.loop import Checkpointer, batches, fit, score


def alternate(first: Callable[[], float], second: Callable[[], float], repeats: int) -> tuple[float, float]:
    """Run each side once as a warm-up, then both in turn ``repeats`` times; their median results."""
    first(), second()
    a, b = [], []
    for _ in range(repeats):
        a.append(first())
        b.append(second())
    return statistics.median(a), statistics.median(b)


def _wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def cli_startup(repeats: int) -> dict[str, float]:
    """Cold ``edgepeft --help`` against ``python -c pass``, each a fresh process (seconds, medians)."""
    edgepeft_cli = shutil.which("edgepeft", path=str(Path(sys.executable).parent)) or "edgepeft"
    help_s, bare_s = alternate(
        lambda: _wall([edgepeft_cli, "--help"]), lambda: _wall([sys.executable, "-c", "pass"]), repeats
    )
    return {"edgepeft_help_s": help_s, "python_pass_s": bare_s, "ratio": help_s / bare_s}


def plain_loop(model: torch.nn.Module, ctx: TrainContext, epochs: int, lr: float, weight_decay: float) -> None:
    """What a user writes by hand: the same batches, optimizer and schedule, a validation pass per epoch."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = -(-len(ctx.data.train) // ctx.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps)
    for epoch in range(1, epochs + 1):
        model.train()
        for batch in batches(ctx.data.train, ctx.batch_size, seed=ctx.seed * 10_007 + epoch):
            loss = F.cross_entropy(model(batch.x), batch.y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        score(model, ctx.data, ctx.data.validation)


class LoopTimer:
    """Times training functions per step, each on a fresh student built from one seed."""

    def __init__(self, manager: PluginManager, resolved: ResolvedRecipe, ctx: TrainContext, epochs: int) -> None:
        self.manager, self.resolved, self.ctx, self.epochs = manager, resolved, ctx, epochs
        self.section = resolved.recipe.student
        self.steps = epochs * -(-len(ctx.data.train) // ctx.batch_size)

    def student(self) -> torch.nn.Module:
        torch.manual_seed(0)
        return self.manager.models.get(self.section.model)().build(
            self.resolved.student_options, self.ctx.data.input_shape, self.ctx.data.num_classes
        )

    def per_step_ms(self, train: Callable[[torch.nn.Module], Any]) -> float:
        model = self.student()
        start = time.perf_counter()
        train(model)
        return (time.perf_counter() - start) / self.steps * 1e3

    def plain(self) -> Callable[[torch.nn.Module], Any]:
        return lambda model: plain_loop(model, self.ctx, self.epochs, self.section.lr, self.section.weight_decay)

    def edgepeft(self, techniques: Callable[[], tuple[edgepeft.Technique, ...]] = tuple) -> Callable[..., Any]:
        """``fit`` as ``edgepeft train`` calls it (lifecycle hooks, a progress bar, checkpoints), after
        setting up the techniques ``techniques()`` returns, inside the timed span."""

        def train(model: torch.nn.Module) -> None:
            chosen = techniques()
            for technique in chosen:
                technique.setup(self.ctx)
            with tempfile.TemporaryDirectory() as tmp, Progress(console=Console(file=io.StringIO())) as progress:
                fit(
                    model,
                    self.ctx,
                    phase="student",
                    epochs=self.epochs,
                    lr=self.section.lr,
                    weight_decay=self.section.weight_decay,
                    techniques=chosen,
                    on_step=lambda hook, state: self.manager.call(hook, state=state),
                    progress=progress,
                    checkpoint=Checkpointer(Path(tmp) / "checkpoint.pt"),
                )

        return train


def uncached_distill(manager: PluginManager, options: Any) -> edgepeft.Technique:
    """The ``distill`` technique, but running the teacher on every batch instead of looking its logits up."""
    base = manager.techniques.get("distill")

    class Uncached(base):  # type: ignore[misc, valid-type]
        def setup(self, ctx: TrainContext) -> None:
            self.ctx = ctx
            self.teacher = ctx.teacher.eval()
            self.heads = ctx.data.heads
            self.teacher_logits = torch.zeros(len(ctx.data.train), ctx.data.num_classes)

        def loss_terms(self, terms: dict, batch: Any, logits: torch.Tensor) -> dict:
            with torch.no_grad():
                self.teacher_logits[batch.index] = self.teacher(batch.x)
            return super().loss_terms(terms, batch, logits)

    return Uncached(options)


def training_overhead(
    manager: PluginManager, resolved: ResolvedRecipe, ctx: TrainContext, *, epochs: int, repeats: int
) -> dict[str, Any]:
    """edgepeft's training loop against :func:`plain_loop` on the recipe's student and data, and, when the
    recipe distils, distillation with cached teacher logits (building the cache counted) against running
    the teacher every step (milliseconds per step, medians)."""
    timer = LoopTimer(manager, resolved, ctx, epochs)
    toolkit, plain = alternate(
        lambda: timer.per_step_ms(timer.edgepeft()), lambda: timer.per_step_ms(timer.plain()), repeats
    )
    out: dict[str, Any] = {
        "epochs": epochs,
        "steps_timed": timer.steps,
        "edgepeft_ms_per_step": toolkit,
        "plain_ms_per_step": plain,
        "loop_overhead": toolkit / plain - 1,
        "student_parameters": sum(p.numel() for p in timer.student().parameters()),
        "batch_size": ctx.batch_size,
        "train_examples": len(ctx.data.train),
    }
    distill = next((t for t in resolved.techniques if t.name == "distill"), None)
    if distill is None:
        return out
    cls, options = type(distill), distill.options
    cached, uncached = alternate(
        lambda: timer.per_step_ms(timer.edgepeft(lambda: (cls(options),))),
        lambda: timer.per_step_ms(timer.edgepeft(lambda: (uncached_distill(manager, options),))),
        repeats,
    )
    return {
        **out,
        "distill_cached_ms_per_step": cached,
        "distill_uncached_ms_per_step": uncached,
        "caching_saving": 1 - cached / uncached,
        "teacher_parameters": sum(p.numel() for p in ctx.teacher.parameters()),
    }


def measure(run_dir: Path, manager: PluginManager, quick: bool) -> dict[str, Any]:
    run = open_run(run_dir, manager)
    ctx = TrainContext(
        data=run.data(manager),
        teacher=load_model(run_dir / "teacher", manager)[0],
        batch_size=run.resolved.recipe.data.batch_size,
        seed=run.resolved.recipe.seed,
    )
    epochs, repeats = (1, 1) if quick else (10, 7)
    return {
        "run": run.name,
        "threads": torch.get_num_threads(),
        "cli": cli_startup(repeats=3 if quick else 9),
        "training": training_overhead(manager, run.resolved, ctx, epochs=epochs, repeats=repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--quick", action="store_true", help="one epoch, one timed repeat")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.disable(logging.INFO)  # the loops' per-epoch log lines
    print(json.dumps(measure(args.run, default_manager(), args.quick), indent=2))


if __name__ == "__main__":
    main()

"""What edgepeft itself costs: cold CLI start, the training loop against a plain PyTorch loop, and what
caching the teacher's outputs saves. Every comparison alternates its two sides in one process, so a
noisy machine slows both alike; medians are reported with their ratio."""

from __future__ import annotations

import io
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
from edgepeft.plugins import PluginManager
from edgepeft.recipe import ResolvedRecipe
from edgepeft.train import Checkpointer, TrainContext, accuracy, batches, fit, predict


def alternate(first: Callable[[], float], second: Callable[[], float], repeats: int) -> tuple[float, float]:
    """Run ``first`` and ``second`` in turn ``repeats`` times each; their median results."""
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


def plain_loop(model: torch.nn.Module, ctx: TrainContext, epochs: int, lr: float) -> None:
    """What a user writes by hand: the same batches, optimizer and schedule, a validation pass per epoch."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
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
        accuracy(predict(model, ctx.data.validation.x), ctx.data.validation.y)


def _quiet_progress() -> Progress:
    return Progress(console=Console(file=io.StringIO(), force_terminal=True))


class _Timed:
    """Builds a fresh student from one seed for every timed run and times a training function on it."""

    def __init__(self, manager: PluginManager, resolved: ResolvedRecipe, ctx: TrainContext, epochs: int) -> None:
        self.manager, self.resolved, self.ctx, self.epochs = manager, resolved, ctx, epochs
        self.steps = epochs * -(-len(ctx.data.train) // ctx.batch_size)

    def student(self) -> torch.nn.Module:
        section = self.resolved.recipe.student
        torch.manual_seed(0)
        return self.manager.models.get(section.model)().build(
            self.resolved.student_options, self.ctx.data.input_shape, self.ctx.data.num_classes
        )

    def per_step_ms(self, train: Callable[[torch.nn.Module], Any]) -> float:
        model = self.student()
        start = time.perf_counter()
        train(model)
        return (time.perf_counter() - start) / self.steps * 1e3

    def edgepeft_fit(self, techniques: tuple = ()) -> Callable[[torch.nn.Module], Any]:
        """``fit`` as ``edgepeft train`` calls it: lifecycle hooks, a progress bar and checkpoints."""
        lr = self.resolved.recipe.student.lr

        def train(model: torch.nn.Module) -> None:
            with tempfile.TemporaryDirectory() as tmp, _quiet_progress() as progress:
                fit(
                    model,
                    self.ctx,
                    phase="student",
                    epochs=self.epochs,
                    lr=lr,
                    techniques=techniques,
                    on_step=lambda hook, state: self.manager.call(hook, state=state),
                    progress=progress,
                    checkpoint=Checkpointer(Path(tmp) / "checkpoint.pt"),
                )

        return train


def uncached_distill(manager: PluginManager, options: Any, teacher: torch.nn.Module) -> edgepeft.Technique:
    """The ``distill`` technique, but running the teacher on every batch instead of looking its logits up."""
    base = manager.techniques.get("distill")

    class Uncached(base):  # type: ignore[misc, valid-type]
        def setup(self, ctx: TrainContext) -> None:
            self.teacher_logits = torch.zeros(len(ctx.data.train), ctx.data.num_classes)

        def loss_terms(self, terms: dict, batch: Any, logits: torch.Tensor) -> dict:
            with torch.no_grad():
                self.teacher_logits[batch.index] = teacher(batch.x)
            return super().loss_terms(terms, batch, logits)

    return Uncached(options)


def training_overhead(
    manager: PluginManager, resolved: ResolvedRecipe, ctx: TrainContext, *, epochs: int, repeats: int
) -> dict[str, float]:
    """edgepeft's training loop against :func:`plain_loop` on the recipe's student and data, and distillation
    with cached teacher logits against running the teacher every step (milliseconds per step, medians)."""
    timed = _Timed(manager, resolved, ctx, epochs)
    lr = resolved.recipe.student.lr
    toolkit, plain = alternate(
        lambda: timed.per_step_ms(timed.edgepeft_fit()),
        lambda: timed.per_step_ms(lambda m: plain_loop(m, ctx, epochs, lr)),
        repeats,
    )
    distill = next(t for t in resolved.techniques if t.name == "distill")
    teacher = ctx.teacher.eval()
    distill.setup(ctx)
    uncached = uncached_distill(manager, distill.options, teacher)
    uncached.setup(ctx)
    cached_ms, uncached_ms = alternate(
        lambda: timed.per_step_ms(timed.edgepeft_fit((distill,))),
        lambda: timed.per_step_ms(timed.edgepeft_fit((uncached,))),
        repeats,
    )
    return {
        "steps_timed": timed.steps,
        "edgepeft_ms_per_step": toolkit,
        "plain_ms_per_step": plain,
        "loop_overhead": toolkit / plain - 1,
        "distill_cached_ms_per_step": cached_ms,
        "distill_uncached_ms_per_step": uncached_ms,
        "caching_saving": 1 - cached_ms / uncached_ms,
        "student_parameters": sum(p.numel() for p in timed.student().parameters()),
        "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
        "train_examples": len(ctx.data.train),
        "batch_size": ctx.batch_size,
    }

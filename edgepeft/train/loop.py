"""The one training loop every technique plugs into (torch is imported inside the functions)."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgepeft.api import tasks
from edgepeft.api.context import Batch, FitResult, StepHook, StepState, TrainContext
from edgepeft.api.dataset import Split, TaskData
from edgepeft.errors import ConfigError, TrainingError, TrainingInterrupted
from edgepeft.train import distributed

if TYPE_CHECKING:
    import numpy as np
    import torch

    from edgepeft.api.technique import Technique


log = logging.getLogger("edgepeft.train")


def resolve_accelerator(accelerator: str) -> str:
    """The torch device to train on: ``cpu``, ``cuda``, or ``auto`` (CUDA when a GPU is visible)."""
    import torch

    if accelerator not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"unknown accelerator {accelerator!r}", where="--accelerator", fix="Use auto, cpu or cuda")
    if accelerator == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise ConfigError(
            f"no CUDA GPU is visible to torch {torch.__version__} ({build})",
            where="--accelerator cuda",
            fix="Use --accelerator cpu (or auto), or run on a machine with an NVIDIA GPU and a CUDA build of torch",
        )
    if accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return accelerator


def batches(
    split: Split,
    batch_size: int,
    *,
    device: str = "cpu",
    seed: int | None = None,
    rank: int = 0,
    world: int = 1,
) -> Iterator[Batch]:
    """Batches of ``split`` in order, or shuffled with ``seed``; a classifier's labels as int64, other
    tasks' as float32. With ``world`` processes, each batch is split among them and process ``rank`` gets
    every ``world``-th example of it (a batch smaller than ``world`` borrows from the first ones)."""
    import numpy as np
    import torch

    order = np.arange(len(split)) if seed is None else np.random.default_rng(seed).permutation(len(split))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        if len(idx) < world:
            idx = np.concatenate([idx, order[: world - len(idx)]])
        idx = idx[rank::world]
        yield Batch(
            x=torch.from_numpy(split.x[idx]).to(device),
            y=torch.from_numpy(split.y[idx].astype(np.int64 if split.y.ndim == 1 else np.float32)).to(device),
            index=torch.from_numpy(idx),
        )


def predict(model: torch.nn.Module, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Outputs of ``model`` (in eval mode, no grad, on the device its weights are on) for every row of
    ``x``, as float32 numpy."""
    import numpy as np
    import torch

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size])).to(device)
            outputs.append(model(chunk).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(outputs)


def evaluate(model: torch.nn.Module, data: TaskData, split: Split) -> dict[str, float]:
    """Every metric of ``data``'s task for ``model`` on ``split`` (:func:`edgepeft.api.tasks.evaluate`)."""
    return tasks.evaluate(data.heads, predict(model, split.x), split.y)


def score(model: torch.nn.Module, data: TaskData, split: Split) -> float:
    """The task's score for ``model`` on ``split``: a classifier's accuracy (:func:`edgepeft.api.tasks.score`)."""
    return tasks.score(data.heads, evaluate(model, data, split))


class Checkpointer:
    """Saves a phase's full training state (model, optimizer, scheduler, RNG, position, best epoch so far)
    every ``every`` steps, at each epoch's end and when a stop is requested (SIGINT/SIGTERM), and loads it
    back so a killed run continues exactly where its last checkpoint left it.

    The file is written atomically with ``torch.save`` and read with ``torch.load(weights_only=True)``. Under
    torchrun, rank 0 writes it and every process reads it.
    """

    def __init__(self, path: Path, every: int = 50) -> None:
        self.path = Path(path)
        self.every = every
        self.stop_requested = False

    def load(self, phase: str) -> dict[str, Any] | None:
        import torch

        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise TrainingError(
                f"the checkpoint cannot be read: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                where=str(self.path),
                fix="Delete it to start the phase over, or train from scratch without --resume",
            ) from None
        return state if state.get("phase") == phase else None

    def save(self, state: dict[str, Any]) -> None:
        distributed.on_main(self._write, state)

    def _write(self, state: dict[str, Any]) -> None:
        import torch

        from edgepeft.util.atomic import atomic_file

        with atomic_file(self.path, durable=False) as tmp:  # swapped atomically; no fsync, see atomic_file
            torch.save(state, tmp)


def fit(
    model: torch.nn.Module,
    ctx: TrainContext,
    *,
    phase: str,
    epochs: int,
    lr: float,
    weight_decay: float = 0.0,
    techniques: Sequence[Technique] = (),
    on_step: StepHook | None = None,
    progress: Any = None,
    checkpoint: Checkpointer | None = None,
) -> FitResult:
    """Train ``model`` on ``ctx.device`` (mixed precision on CUDA); keep the weights of the best validation
    epoch and return with the model back on the CPU. Checkpoints are saved every ``checkpoint.every`` steps,
    when a stop is requested and when the phase ends (a resumed run replays the same batches from there).

    Each step's loss is the sum of named terms: the task's (``task``, or ``task.<head>`` for each head of a
    multi-head task; see :func:`edgepeft.api.tasks.head_losses`) and whatever the techniques add or rescale;
    the techniques' own parameters (:meth:`Technique.trainable`) train with the model's, and their
    :meth:`Technique.augment` may alter or extend each batch first (from a generator seeded by the step, so a
    resumed run sees the same batches).
    ``on_step(hook_name, state)`` feeds the lifecycle hooks. With
    ``checkpoint``, training resumes from the phase's last checkpoint and saves new ones as it goes.

    Under torchrun (:mod:`edgepeft.train.distributed`), ``ctx.batch_size`` stays the global batch: each of the
    processes trains on its share of every batch (the same steps and learning-rate schedule as one process),
    DDP averages the gradients, the losses reported are averaged over the processes, and rank 0 scores the
    validation split and keeps the model every process continues with after each epoch.
    """
    import torch

    rank, world = distributed.rank(), distributed.world()
    if min(ctx.batch_size, len(ctx.data.train)) < world:
        raise ConfigError(
            f"{world} processes cannot share batches of {min(ctx.batch_size, len(ctx.data.train))} examples",
            where="[data] batch_size",
            fix=f"Set batch_size to at least {world} (a multiple of it gives every process as many examples), "
            "or start fewer processes (torchrun --nproc-per-node)",
        )
    model.to(ctx.device)
    ctx.model = model
    extra = [p for technique in techniques for p in technique.trainable()]
    groups = [{"params": list(model.parameters())}, *([{"params": extra, "weight_decay": 0.0}] if extra else [])]
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    cuda = ctx.device.startswith("cuda")
    amp_dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and amp_dtype == torch.float16)

    def mixed_precision() -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=amp_dtype) if cuda else contextlib.nullcontext()

    steps_per_epoch = math.ceil(len(ctx.data.train) / ctx.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    best = FitResult(best_epoch=0, best_val_score=-math.inf, history=[])
    best_state: dict[str, torch.Tensor] | None = None
    step, first_epoch, skip, running = 0, 1, 0, 0.0
    saved = checkpoint.load(phase) if checkpoint is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        torch.set_rng_state(saved["torch_rng"])
        with torch.no_grad():
            for parameter, value in zip(extra, saved.get("extra", []), strict=True):
                parameter.copy_(value)
        step, first_epoch, skip, running = saved["step"], saved["epoch"], saved["step_in_epoch"], saved["running"]
        best_score = saved.get("best_val_score", saved.get("best_val_accuracy"))  # the key before multi-head tasks
        best = FitResult(saved["best_epoch"], best_score, list(saved["history"]))
        best_state = saved["best_state"]
    net = distributed.wrap(model)

    def save(epoch: int, step_in_epoch: int) -> None:
        if checkpoint is None:
            return
        checkpoint.save(
            {
                "phase": phase,
                "step": step,
                "epoch": epoch,
                "step_in_epoch": step_in_epoch,
                "running": running,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "extra": [p.detach().cpu() for p in extra],
                "best_epoch": best.best_epoch,
                "best_val_score": best.best_val_score,
                "history": best.history,
                "best_state": best_state,
            }
        )

    task = progress.add_task(phase, total=epochs * steps_per_epoch, completed=step) if progress is not None else None
    for epoch in range(first_epoch, epochs + 1):
        model.train()
        seed = ctx.seed * 10_007 + epoch
        epoch_batches = batches(ctx.data.train, ctx.batch_size, device=ctx.device, seed=seed, rank=rank, world=world)
        for index, batch in enumerate(epoch_batches):
            if epoch == first_epoch and index < skip:
                continue  # done before the checkpoint this run resumed from
            step += 1
            augmentation = torch.Generator().manual_seed((ctx.seed * 1_000_003 + step) * world + rank)
            for technique in techniques:
                batch = technique.augment(batch, augmentation)
            state = StepState(phase=phase, epoch=epoch, step=step, model=model)
            if on_step is not None:
                on_step("edgepeft_before_step", state)
            try:
                with mixed_precision():
                    logits = net(batch.x)
                    terms = tasks.head_losses(ctx.data.heads, logits, batch.y)
                    for technique in techniques:
                        terms = technique.loss_terms(terms, batch, logits.float())
                    loss = sum(terms.values())
            except torch.OutOfMemoryError:
                raise TrainingError(
                    f"out of memory at batch size {ctx.batch_size} (step {step} of the {phase}, on {ctx.device})",
                    fix=f"Set a smaller [data] batch_size in the recipe, e.g. {max(1, ctx.batch_size // 2)}",
                ) from None
            requested = float(checkpoint is not None and checkpoint.stop_requested)  # one process's stop stops all
            values = torch.stack([t.detach().float().reshape(()) for t in (loss, *terms.values())])
            loss_value, *term_values, stop = distributed.mean(
                torch.cat([values, values.new_tensor([requested])])
            ).tolist()
            if not math.isfinite(loss_value):
                kept = (
                    f"; the last good checkpoint is {checkpoint.path}"
                    if checkpoint and checkpoint.path.exists()
                    else ""
                )
                raise TrainingError(
                    f"the loss became {loss_value} at step {step} (epoch {epoch}) while training the {phase}{kept}",
                    fix="Lower the learning rate, or check the data for NaN or infinite values",
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            distributed.average_gradients(extra)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            running += loss_value
            state.loss = loss_value
            state.loss_terms = dict(zip(terms, term_values, strict=True))
            if on_step is not None:
                on_step("edgepeft_after_step", state)
            if progress is not None:
                progress.update(task, advance=1, description=f"{phase} epoch {epoch}/{epochs} loss {state.loss:.3f}")
            if checkpoint is not None and (stop or step % checkpoint.every == 0):
                save(epoch, index + 1)
                if stop:
                    raise TrainingInterrupted(
                        f"interrupted at step {step} (epoch {epoch}) of the {phase}; the checkpoint is saved",
                        where=str(checkpoint.path),
                    )
        distributed.sync(model)
        val_acc = distributed.broadcast(score(model, ctx.data, ctx.data.validation) if rank == 0 else 0.0)
        best.history.append({"epoch": epoch, "loss": running / steps_per_epoch, "val_score": val_acc})
        log.info(
            "%s epoch %d/%d: loss %.4f, validation score %.4f",
            phase,
            epoch,
            epochs,
            running / steps_per_epoch,
            val_acc,
        )
        if on_step is not None:
            ended = StepState(phase, epoch, step, model, running / steps_per_epoch, epochs=epochs, val_score=val_acc)
            on_step("edgepeft_after_epoch", ended)
        if best_state is None or val_acc > best.best_val_score:  # a NaN score never wins after the first epoch
            best.best_epoch, best.best_val_score = epoch, val_acc
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        running = 0.0
        if epoch == epochs:
            save(epoch + 1, 0)  # the finished phase: a resumed run goes straight on to the next one
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval().cpu()
    return best


@contextlib.contextmanager
def stop_on_signals(checkpoint: Checkpointer) -> Iterator[None]:
    """SIGINT/SIGTERM ask training to checkpoint and stop at the next step; a second SIGINT stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request(signum: int, _frame: Any) -> None:
        if checkpoint.stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        checkpoint.stop_requested = True

    previous = {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        checkpoint.stop_requested = False

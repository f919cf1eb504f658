"""Training on several processes started by ``torchrun``: one process group (gloo on CPU, nccl on CUDA),
DistributedDataParallel around the training steps, and rank 0 as the only process that writes files.

Without torchrun (or with one process) every helper is a no-op and :func:`is_main` is true. torch is
imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from edgepeft.errors import ConfigError, EdgepeftError

if TYPE_CHECKING:
    import torch

P = ParamSpec("P")
T = TypeVar("T")

_rank, _world, _device = 0, 1, "cpu"


class RankFailed(EdgepeftError):
    """Raised on the other ranks when rank 0 failed inside :func:`on_main`; it exits with rank 0's code."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(f"rank 0 failed with exit code {exit_code}; its error is reported above")
        self.exit_code = exit_code


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    return _rank


def world() -> int:
    """How many processes train together (1 without torchrun)."""
    return _world


def is_main() -> bool:
    """Whether this process is rank 0, the one that writes files, logs and progress."""
    return _rank == 0


def init(device: str) -> str:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)
    and return the device this process trains on: ``cuda:<LOCAL_RANK>`` with nccl for ``cuda``, the CPU
    with gloo otherwise. Without torchrun, or with one process, it returns ``device`` and joins nothing."""
    global _rank, _world, _device
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise ConfigError(
            f"torch {torch.__version__} is built without torch.distributed",
            where="torchrun",
            fix="Install a torch build with distributed support, or train in one process without torchrun",
        )
    if device.startswith("cuda"):
        local, visible = int(os.environ["LOCAL_RANK"]), torch.cuda.device_count()
        if local >= visible:
            raise ConfigError(
                f"process {local} on this machine has no GPU of its own ({visible} visible)",
                where="torchrun --nproc-per-node",
                fix=f"Start at most {visible} processes per machine, one per GPU",
            )
        device = f"cuda:{local}"
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    _rank, _world, _device = dist.get_rank(), dist.get_world_size(), device
    return device


def shutdown() -> None:
    """Leave the process group (after the last collective); :func:`is_main` keeps its answer."""
    if _world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process gets here."""
    if _world > 1:
        import torch.distributed as dist

        dist.barrier()


def on_main(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
    """Call ``fn`` on rank 0 only and return its result there (``None`` elsewhere), once every process has
    got here (so none is still reading what ``fn`` writes). The others wait until it is done, and raise
    :class:`RankFailed` with rank 0's exit code if it failed."""
    if _world == 1:
        return fn(*args, **kwargs)
    barrier()
    code = 1
    try:
        result = fn(*args, **kwargs) if _rank == 0 else None
        code = 0
    except EdgepeftError as exc:
        code = exc.exit_code
        raise
    finally:
        code = int(broadcast(float(code)))
        if code and _rank != 0:
            raise RankFailed(code)
    return result


def broadcast(value: float) -> float:
    """Rank 0's ``value``, on every process."""
    if _world == 1:
        return value
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64, device=_device)
    dist.broadcast(tensor, src=0)
    return tensor.item()


def mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over the processes (``tensor`` itself in one process)."""
    if _world == 1:
        return tensor
    import torch.distributed as dist

    total = tensor.detach().clone()
    dist.all_reduce(total)
    return total / _world


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in DistributedDataParallel (gradients averaged over the processes), or ``model`` itself
    in one process. The wrapper shares ``model``'s parameters: train through it, save ``model``."""
    if _world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[_device] if _device.startswith("cuda") else None)


def sync(model: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers (e.g. batch-norm statistics, which each process updates from
    its own examples) to every process."""
    if _world == 1:
        return
    import torch.distributed as dist

    for tensor in [*model.parameters(), *model.buffers()]:
        dist.broadcast(tensor.data, src=0)


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Average the gradients of parameters DDP does not manage (e.g. a technique's own) over the processes."""
    if _world == 1:
        return
    import torch.distributed as dist

    for parameter in parameters:
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad)
            parameter.grad /= _world

"""The physical limit: a model's arithmetic per example, and how fast this machine multiplies matrices."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch


def forward_flops(model: torch.nn.Module, example: np.ndarray) -> int:
    """Floating-point operations of one forward pass per example (a multiply-add counts as two).

    Counted by ``torch.utils.flop_counter`` on a real batch: matrix multiplies and convolutions, which
    carry nearly all of a network's arithmetic; element-wise operations are not counted.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()
    with counter, torch.inference_mode():
        model(torch.from_numpy(example))
    model.train(was_training)
    return int(counter.get_total_flops()) // len(example)


@dataclass(frozen=True)
class MatmulPeak:
    """This machine's best measured fp32 matrix-multiply rate with ``threads`` threads."""

    flops_per_second: float
    size: int
    threads: int

    def floor_ms(self, flops: float) -> float:
        """The least time ``flops`` operations can take at this rate, in milliseconds."""
        return flops / self.flops_per_second * 1e3


def matmul_peak(threads: int, size: int = 1024, seconds: float = 1.0) -> MatmulPeak:
    """Time ``size``x``size`` fp32 matrix products for about ``seconds`` and keep the fastest one."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        out = torch.empty(size, size)
        for _ in range(3):
            torch.mm(a, b, out=out)
        best, start = float("inf"), time.perf_counter()
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(previous)
    return MatmulPeak(2 * size**3 / best, size, threads)

"""Measure an exported model on this host and judge it against a device profile's budgets."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgepeft.backend import Runner
from edgepeft.devices import DeviceProfile


@dataclass(frozen=True)
class Latency:
    """Wall-clock latency of one call at ``batch_size``, over ``iterations`` timed calls (after warm-up)."""

    batch_size: int
    iterations: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float

    def scaled(self, factor: float) -> Latency:
        """These figures divided by ``factor`` (a device's speed relative to this host)."""
        return Latency(
            self.batch_size,
            self.iterations,
            self.p50_ms / factor,
            self.p95_ms / factor,
            self.p99_ms / factor,
            self.mean_ms / factor,
        )


def sample_batch(x: np.ndarray, batch_size: int) -> np.ndarray:
    """A batch of ``batch_size`` real examples from ``x`` (repeated when ``x`` is smaller)."""
    reps = -(-batch_size // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:batch_size])


def measure_latency(
    runner: Runner,
    batch: np.ndarray,
    *,
    warmup: int = 10,
    min_iterations: int = 50,
    max_iterations: int = 2000,
    min_seconds: float = 1.0,
    progress: Any = None,
) -> Latency:
    """Time ``runner(batch)`` repeatedly; every sample is kept (no outlier trimming)."""
    for _ in range(warmup):
        runner(batch)
    times: list[float] = []
    task = progress.add_task(f"latency @ batch {len(batch)}", total=min_iterations) if progress is not None else None
    start = time.perf_counter()
    while len(times) < max_iterations and (len(times) < min_iterations or time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        runner(batch)
        times.append((time.perf_counter() - t0) * 1e3)
        if task is not None:
            progress.update(task, completed=min(len(times), min_iterations))
    samples = np.asarray(times)
    p50, p95, p99 = np.percentile(samples, [50, 95, 99])
    return Latency(len(batch), len(samples), float(p50), float(p95), float(p99), float(samples.mean()))


@dataclass(frozen=True)
class BudgetCheck:
    """One budget of a device profile, the value it is judged on, and where that value came from."""

    budget: str
    limit: float
    value: float
    unit: str
    source: str

    @property
    def passed(self) -> bool:
        return self.value >= self.limit if self.budget == "min_accuracy_retention" else self.value <= self.limit

    @property
    def status(self) -> str:
        return "pass" if self.passed else "fail"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


def check_budgets(
    profile: DeviceProfile,
    *,
    size_bytes: int,
    device_latency: Latency,
    accuracy_retention: float,
    peak_memory_mb: float,
) -> list[BudgetCheck]:
    """Every budget the profile sets, with the value it is judged on and where that value came from."""
    b = profile.budgets
    rows = [
        ("max_size_mb", b.max_size_mb, size_bytes / 1e6, "MB", "measured"),
        (
            "p95_latency_ms",
            b.p95_latency_ms,
            device_latency.p95_ms,
            f"ms @ batch {b.batch_size}",
            f"estimated: host / {profile.hardware.relative_speed:g}",
        ),
        ("peak_memory_mb", b.peak_memory_mb, peak_memory_mb, "MB", "measured: process peak"),
        ("min_accuracy_retention", b.min_accuracy_retention, accuracy_retention, "x teacher", "measured"),
    ]
    return [
        BudgetCheck(name, limit, value, unit, source) for name, limit, value, unit, source in rows if limit is not None
    ]

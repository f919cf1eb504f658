"""Measure an exported model on this host and judge it against a device profile's budgets."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from edgepeft.api.backend import Backend, ExportOptions
from edgepeft.api.device import DeviceProfile
from edgepeft.api.tasks import retention
from edgepeft.ship.memory import MemoryReport, measure_peak_memory
from edgepeft.ship.parity import ParityReport

if TYPE_CHECKING:
    import numpy as np

    from edgepeft.api.backend import Runner
    from edgepeft.ship.export import CheckedExport


@dataclass(frozen=True)
class Latency:
    """Wall-clock latency of one call at ``batch_size``, over ``iterations`` timed calls (after warm-up).

    ``samples_ms`` keeps every timing (outliers included) for plots; it is left out of :meth:`summary`.
    """

    batch_size: int
    iterations: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    samples_ms: tuple[float, ...] = field(default=(), repr=False, compare=False)

    def scaled(self, factor: float) -> Latency:
        """These figures divided by ``factor`` (a device's speed relative to this host)."""
        return Latency(
            self.batch_size,
            self.iterations,
            self.p50_ms / factor,
            self.p95_ms / factor,
            self.p99_ms / factor,
            self.mean_ms / factor,
            tuple(t / factor for t in self.samples_ms),
        )

    def summary(self) -> dict[str, float | int]:
        return {k: v for k, v in asdict(self).items() if k != "samples_ms"}


def sample_batch(x: np.ndarray, batch_size: int) -> np.ndarray:
    """A batch of ``batch_size`` real examples from ``x`` (repeated when ``x`` is smaller)."""
    import numpy as np

    reps = -(-batch_size // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:batch_size])


def measure_latency(
    runner: Runner,
    batch: np.ndarray,
    *,
    warmup: int = 50,
    min_iterations: int = 50,
    max_iterations: int = 20000,
    min_seconds: float = 2.0,
    progress: Any = None,
) -> Latency:
    """Time ``runner(batch)`` repeatedly; every sample is kept (no outlier trimming)."""
    import numpy as np

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
    return Latency(len(batch), len(samples), float(p50), float(p95), float(p99), float(samples.mean()), tuple(times))


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


@dataclass(frozen=True)
class DeviceLatency:
    """Latency on the device itself: measured there, or estimated from this host."""

    latency: Latency
    measured: bool
    how: str

    @property
    def label(self) -> str:
        return "measured on the device" if self.measured else "estimated"

    def as_dict(self) -> dict[str, Any]:
        return {**self.latency.summary(), "source": self.label, "how": self.how}


def estimate_device_latency(host: Latency, profile: DeviceProfile) -> DeviceLatency:
    factor = profile.hardware.relative_speed
    return DeviceLatency(host.scaled(factor), False, f"host figures / relative_speed {factor:g} (docs/devices.md)")


def check_budgets(
    profile: DeviceProfile,
    *,
    size_bytes: int,
    device_latency: DeviceLatency,
    score_retention: float,
    peak_memory_mb: float,
) -> list[BudgetCheck]:
    """Every budget the profile sets, with the value it is judged on and where that value came from."""
    b = profile.budgets
    rows = [
        ("max_size_mb", b.max_size_mb, size_bytes / 1e6, "MB", "measured"),
        (
            "p95_latency_ms",
            b.p95_latency_ms,
            device_latency.latency.p95_ms,
            f"ms @ batch {b.batch_size}",
            device_latency.label,
        ),
        ("peak_memory_mb", b.peak_memory_mb, peak_memory_mb, "MiB", "measured on this host: process peak"),
        ("min_accuracy_retention", b.min_accuracy_retention, score_retention, "x teacher", "measured"),
    ]
    return [
        BudgetCheck(name, limit, value, unit, source) for name, limit, value, unit, source in rows if limit is not None
    ]


@dataclass
class ProfileReport:
    """Everything `edgepeft profile` measures for one export on one device profile."""

    device: str
    backend: str
    precision: str
    parity: ParityReport
    size_bytes: int
    teacher_metrics: dict[str, float]
    host_latency: dict[int, Latency]
    device_latency: DeviceLatency
    memory: MemoryReport
    budgets: list[BudgetCheck]

    @property
    def score_retention(self) -> float:
        """The share of the teacher's test quality the export keeps (:func:`edgepeft.api.tasks.retention`)."""
        return retention(self.parity.primary, self.parity.metrics, self.teacher_metrics)

    @property
    def within_budget(self) -> bool:
        return all(b.passed for b in self.budgets)

    def as_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "backend": self.backend,
            "precision": self.precision,
            "test_score": {
                "value": self.parity.score,
                "metrics": self.parity.metrics,
                "examples": self.parity.examples,
                "how": "exported model on the held-out test split",
                "where": "host",
            },
            "teacher_test_metrics": {"value": self.teacher_metrics, "how": "PyTorch teacher, same split"},
            "score_retention": self.score_retention,
            "parity": {**self.parity.as_dict(), "split": "test"},
            "size_bytes": self.size_bytes,
            "latency_host_ms": {str(b): lat.summary() for b, lat in self.host_latency.items()},
            "latency_device_ms": self.device_latency.as_dict(),
            "peak_memory_mb": {
                **asdict(self.memory),
                "model_mb": self.memory.model_mb,
                "how": "peak RSS of a fresh Python process that loads and runs the exported file; before_load_mb "
                "is Python and edgepeft before the runtime loads",
                "where": "host",
            },
            "budgets": [b.as_dict() for b in self.budgets],
            "within_budget": self.within_budget,
        }


def profile_export(
    checked: CheckedExport,
    backend: type[Backend],
    options: ExportOptions,
    profile: DeviceProfile,
    held_out: np.ndarray,
    teacher_metrics: dict[str, float],
    *,
    device_latency: DeviceLatency | None = None,
    timing_seconds: float = 2.0,
    progress: Any = None,
) -> ProfileReport:
    """Measure a checked export on this host (latency at batch 1 and the profile's batch, inference peak
    memory) and judge it against the profile's budgets; ``device_latency`` replaces the estimate."""
    batch = profile.budgets.batch_size
    fixed = checked.artifact.fixed_batch
    # a fixed-shape model (TFLite) always runs its built batch: timing "batch 1" there would be that batch again
    sizes = sorted({1, batch}) if fixed in (None, 1) else [batch]
    host = {
        b: measure_latency(checked.runner, sample_batch(held_out, b), min_seconds=timing_seconds, progress=progress)
        for b in sizes
    }
    device = device_latency or estimate_device_latency(host[batch], profile)
    memory = measure_peak_memory(backend, checked.artifact, options, sample_batch(held_out, batch))
    budgets = check_budgets(
        profile,
        size_bytes=checked.artifact.size_bytes,
        device_latency=device,
        score_retention=retention(checked.parity.primary, checked.parity.metrics, teacher_metrics),
        peak_memory_mb=memory.process_peak_mb,
    )
    return ProfileReport(
        device=profile.name,
        backend=checked.artifact.backend,
        precision=options.precision,
        parity=checked.parity,
        size_bytes=checked.artifact.size_bytes,
        teacher_metrics=teacher_metrics,
        host_latency=host,
        device_latency=device,
        memory=memory,
        budgets=budgets,
    )

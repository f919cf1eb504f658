"""Pick a backend for a device, export, and prove the exported model answers like the PyTorch one."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgepeft.backend import Artifact, Backend, ExportOptions, Runner
from edgepeft.devices import DeviceProfile, Parity
from edgepeft.errors import BackendUnavailableError, ConfigError, ParityError

if TYPE_CHECKING:
    import torch

    from edgepeft.plugins import PluginManager


@dataclass(frozen=True)
class ParityReport:
    """How closely the exported model matched the PyTorch model on real held-out inputs."""

    examples: int
    top1_agreement: float
    max_abs_diff: float
    min_top1_agreement: float
    max_abs_diff_allowed: float

    @property
    def passed(self) -> bool:
        return self.top1_agreement >= self.min_top1_agreement and self.max_abs_diff <= self.max_abs_diff_allowed

    def as_dict(self) -> dict[str, float | int | bool]:
        return {**asdict(self), "passed": self.passed}


def choose_backend(
    profile: DeviceProfile, manager: PluginManager, backend: str | None = None, precision: str | None = None
) -> tuple[type[Backend], str]:
    """The first backend in the profile's preference that is installed here, and its best precision."""
    if backend is not None:
        candidates = [manager.backends.get(backend, where="--backend")]
    else:
        candidates = [manager.backends.get(b) for b in profile.runtime.backends if b in manager.backends]
    reasons = []
    for cls in candidates:
        reason = cls.unavailable_reason()
        if reason:
            reasons.append(f"{cls.name}: {reason}")
            continue
        wanted = [precision] if precision else profile.runtime.precisions
        usable = [p for p in wanted if p in cls.precisions]
        if usable:
            return cls, usable[0]
        reasons.append(f"{cls.name}: supports {', '.join(cls.precisions)}, not {', '.join(wanted)}")
    if not candidates:
        raise ConfigError(
            f"none of the profile's backends ({', '.join(profile.runtime.backends)}) is registered",
            where=profile.source,
            fix=f"Install a backend plugin; registered backends: {', '.join(manager.backends.names())}",
        )
    raise BackendUnavailableError(f"no usable backend for device {profile.name!r} ({'; '.join(reasons)})")


def export_options(profile: DeviceProfile, precision: str) -> ExportOptions:
    """Runtime settings from the profile; threads are capped at this host's cores for measuring here."""
    threads = min(profile.runtime.threads, os.cpu_count() or 1)
    return ExportOptions(precision=precision, threads=threads, input_layout=profile.runtime.input_layout)


def run_batched(runner: Runner, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.concatenate([runner(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def compare(reference: np.ndarray, exported: np.ndarray, parity: Parity) -> ParityReport:
    return ParityReport(
        examples=len(reference),
        top1_agreement=float((reference.argmax(axis=1) == exported.argmax(axis=1)).mean()),
        max_abs_diff=float(np.abs(reference.astype(np.float64) - exported).max()),
        min_top1_agreement=parity.min_top1_agreement,
        max_abs_diff_allowed=parity.max_abs_diff,
    )


@dataclass
class CheckedExport:
    """An exported model that passed the parity gate, loaded and ready to measure."""

    artifact: Artifact
    runner: Runner
    outputs: np.ndarray
    parity: ParityReport


def export_checked(
    model: torch.nn.Module,
    backend: Backend,
    options: ExportOptions,
    held_out: np.ndarray,
    parity: Parity,
    directory: Path,
) -> CheckedExport:
    """Export ``model`` to ``directory``, run both on ``held_out`` and fail on any parity breach."""
    from edgepeft.train import predict

    artifact = backend.export(model, held_out[:2], directory, options)
    runner = backend.load(artifact, options)
    reference = predict(model, held_out)
    outputs = run_batched(runner, held_out)
    report = compare(reference, outputs, parity)
    if not report.passed:
        raise ParityError(
            f"the {backend.name} export disagrees with PyTorch on the held-out test split: top-1 agreement "
            f"{report.top1_agreement:.4f} (needs >= {report.min_top1_agreement}), max abs difference "
            f"{report.max_abs_diff:.3g} (allowed {report.max_abs_diff_allowed:g})",
            fix="Nothing was written. Try another backend or precision (--backend/--precision), "
            "or relax [parity] in the device profile if the difference is acceptable",
        )
    return CheckedExport(artifact=artifact, runner=runner, outputs=outputs, parity=report)

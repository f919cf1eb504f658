"""Pick a backend for a device, export, and prove the exported model answers like the PyTorch one."""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgepeft.api.backend import Artifact, Backend, ExportOptions, Runner
from edgepeft.api.device import DeviceProfile, ParityThresholds, Precision
from edgepeft.artifacts.export_record import ExportRecord
from edgepeft.errors import BackendUnavailableError, ConfigError, ParityError, UnknownNameError
from edgepeft.ship.parity import CulpritReport, ParityReport, compare, find_culprit, torch_module_outputs

if TYPE_CHECKING:
    import torch

    from edgepeft.api.tasks import Head
    from edgepeft.artifacts.run_folder import Run
    from edgepeft.host.manager import PluginManager

CALIBRATION_EXAMPLES = 256


def _check_precision(precision: str) -> None:
    known = typing.get_args(Precision)
    if precision not in known:
        raise UnknownNameError("precision", precision, known, where="--precision")


def _unsupported_precision(cls: type[Backend], precision: str) -> ConfigError:
    return ConfigError(
        f"backend {cls.name!r} does not export {precision}",
        where="--precision",
        fix=f"Choose one of: {', '.join(cls.precisions)}",
    )


def usable_backend(manager: PluginManager, name: str, precision: str, layout: str = "NCHW") -> type[Backend]:
    """The named backend, checked to be installed here and to export ``precision`` in ``layout``."""
    _check_precision(precision)
    cls = manager.backends.get(name, where="--backend")
    reason = cls.unavailable_reason()
    if reason:
        raise BackendUnavailableError(f"backend {name!r} cannot run here: {reason}")
    if precision not in cls.precisions:
        raise _unsupported_precision(cls, precision)
    if layout not in cls.layouts:
        builders = [e.name for e in manager.backends if layout in e.value.layouts]
        raise ConfigError(
            f"backend {name!r} builds {', '.join(cls.layouts)} inputs, not {layout}",
            where="--layout",
            fix=f"Use --layout {cls.layouts[0]}, or a backend that builds {layout}"
            + (f" ({', '.join(builders)})" if builders else ""),
        )
    return cls


def choose_backend(
    profile: DeviceProfile, manager: PluginManager, backend: str | None = None, precision: str | None = None
) -> tuple[type[Backend], str]:
    """The first backend in the profile's preference that is installed here, and its best precision."""
    if precision is not None:
        _check_precision(precision)
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
        if profile.runtime.input_layout not in cls.layouts:
            reasons.append(
                f"{cls.name}: builds {', '.join(cls.layouts)} inputs, the profile asks for "
                f"{profile.runtime.input_layout}"
            )
            continue
        wanted = [precision] if precision else profile.runtime.precisions
        usable = [p for p in wanted if p in cls.precisions]
        if usable:
            return cls, usable[0]
        if backend is not None and precision is not None:
            raise _unsupported_precision(cls, precision)
        reasons.append(f"{cls.name}: supports {', '.join(cls.precisions)}, not {', '.join(wanted)}")
    if not candidates:
        raise ConfigError(
            f"none of the profile's backends ({', '.join(profile.runtime.backends)}) is registered",
            where=profile.source,
            fix=f"Install a backend plugin; registered backends: {', '.join(manager.backends.names())}",
        )
    raise BackendUnavailableError(f"no usable backend for device {profile.name!r} ({'; '.join(reasons)})")


def export_options(profile: DeviceProfile, precision: str, calibration: np.ndarray | None = None) -> ExportOptions:
    """Runtime settings from the profile; threads are capped at this host's cores for measuring here."""
    return ExportOptions(
        precision=precision,
        threads=min(profile.runtime.threads, os.cpu_count() or 1),
        input_layout=profile.runtime.input_layout,
        batch_size=profile.budgets.batch_size,
        device="cuda" if profile.hardware.accelerator == "cuda" else "cpu",
        calibration=calibration,
    )


def calibration_inputs(train_x: np.ndarray, seed: int, examples: int = CALIBRATION_EXAMPLES) -> np.ndarray:
    """A seeded sample of training inputs for static quantization; the held-out test split is never used."""
    rng = np.random.default_rng(seed)
    return train_x[np.sort(rng.choice(len(train_x), size=min(examples, len(train_x)), replace=False))]


def run_batched(runner: Runner, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.concatenate([runner(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


@dataclass
class CheckedExport:
    """An exported model that passed the parity gate, loaded and ready to measure."""

    artifact: Artifact
    runner: Runner
    outputs: np.ndarray
    parity: ParityReport


def locate_divergence(
    model: torch.nn.Module, backend: Backend, artifact: Artifact, options: ExportOptions, x: np.ndarray
) -> CulpritReport | None:
    """Layer-by-layer comparison of the export against PyTorch on ``x``; None if the backend cannot tell."""
    exported = backend.intermediates(artifact, options, x)
    if not exported:
        return None
    return find_culprit(torch_module_outputs(model, x), exported)


def export_checked(
    model: torch.nn.Module,
    backend: Backend,
    options: ExportOptions,
    held_out: tuple[np.ndarray, np.ndarray],
    thresholds: ParityThresholds,
    directory: Path,
    heads: Sequence[Head] | None = None,
) -> CheckedExport:
    """Export ``model`` to ``directory``, run both on the held-out ``(x, y)`` and fail on any parity breach,
    naming the first layer whose output diverges when the backend can expose layer outputs. ``heads`` are
    the task's (a classifier's single head by default)."""
    from edgepeft.train.loop import predict

    x, y = held_out
    # At least two rows: torch.export specialises a dimension of size 1, which would fix the batch at 1.
    artifact = backend.export(model, x[: max(options.batch_size, 2)], directory, options)
    runner = backend.load(artifact, options)
    outputs = run_batched(runner, x)
    report = compare(predict(model, x), outputs, y, options.precision, thresholds, heads)
    if not report.passed:
        culprit = locate_divergence(model, backend, artifact, options, x[:64])
        where = culprit.describe() if culprit else f"the {backend.name} backend cannot expose layer outputs"
        raise ParityError(
            f"the {backend.name} {options.precision} export disagrees with PyTorch on {report.examples} held-out "
            f"test examples: {'; '.join(report.failures)}; {where}",
            fix="Nothing was written. Try another backend or precision (--backend/--precision), "
            "or relax [parity.<precision>] in the device profile if the difference is acceptable",
        )
    return CheckedExport(artifact=artifact, runner=runner, outputs=outputs, parity=report)


def export_run(
    run: Run,
    manager: PluginManager,
    backend: type[Backend],
    options: ExportOptions,
    out_dir: Path,
    thresholds: ParityThresholds,
) -> tuple[Path, CheckedExport]:
    """Export a run's student to ``out_dir/<run>-<backend>-<precision>/`` through the parity gate, with
    ``export.json`` describing the file, its inputs and outputs, and the parity figures."""
    from edgepeft.util import atomic

    model, _ = run.student(manager)
    data = run.data(manager)
    options = dataclasses.replace(options, calibration=calibration_inputs(data.train.x, run.resolved.recipe.seed))
    suffix = (
        ""
        if (options.input_layout, options.batch_size) == ("NCHW", 1)
        else f"-{options.input_layout}-b{options.batch_size}"
    )
    target = Path(out_dir) / f"{run.name}-{backend.name}-{options.precision}{suffix}"
    with atomic.atomic_directory(target) as tmp:
        checked = export_checked(model, backend(), options, (data.test.x, data.test.y), thresholds, tmp, data.heads)
        described = checked.artifact.as_dict()
        described["path"] = checked.artifact.path.name
        described["extra_files"] = [p.name for p in checked.artifact.extra_files]
        record = ExportRecord.current(
            run=run.name, artifact=described, options=options.portable(), parity=checked.parity.as_dict()
        )
        record.write(tmp / ExportRecord.FILE)
    return target, dataclasses.replace(checked, artifact=checked.artifact.moved_to(target))

"""Conformance checks for plugins (``edgepeft plugins check NAME``), and the round trips they are built on.

Each thing a plugin registers is exercised on a small real task chosen among the installed plugins (a data
set, a model family made for it, and a backend that exports it), which the check's output names: a
technique must still train a step, compress if it does, rebuild from its record, export and pass the
parity gate; a backend must round-trip a trained model through the parity gate and give latency
figures; a model family must build, train a step and export; a data set must load splits of consistent
shapes; a device profile must validate. Plugin authors use the same functions in their tests through
:mod:`edgepeft.testing`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from edgepeft.api.backend import Artifact, Backend, ExportOptions
from edgepeft.api.context import TrainContext
from edgepeft.api.dataset import Dataset, TaskData
from edgepeft.api.device import ParityThresholds, load_profile, parity_thresholds
from edgepeft.api.model import ModelFamily
from edgepeft.api.tasks import format_metric
from edgepeft.api.technique import Technique
from edgepeft.authoring.example_task import ExampleTask, example_data, example_task, export_backend, options_for
from edgepeft.errors import EdgepeftError, PluginError
from edgepeft.ship.export import calibration_inputs, export_checked
from edgepeft.ship.parity import ParityReport
from edgepeft.ship.profile import Latency, measure_latency, sample_batch
from edgepeft.train.loop import fit

if TYPE_CHECKING:
    import torch

    from edgepeft.host.manager import PluginManager

# A 2,500-parameter model trained for seconds has small logit margins: quantized exports are held to
# "works", not to the production int8 gate (99% agreement), which is for real students.
TINY_QUANTIZED_PARITY = ParityThresholds(min_top1_agreement=0.95, max_metric_drop=0.05)


@dataclass
class RoundTrip:
    """What a round trip measured: the parity report of the export, its file and latency, and sizes."""

    parity: ParityReport
    artifact: Artifact
    parameters_before: int
    parameters_after: int
    latency: Latency | None = None
    report: dict[str, Any] = field(default_factory=dict)
    task: str = ""
    """The data set and model family it ran on, e.g. ``"images with convnet"``."""


def export_round_trip(
    model: torch.nn.Module,
    backend: Backend,
    data: TaskData,
    directory: Path,
    *,
    precision: str = "fp32",
    timed: bool = False,
) -> tuple[ParityReport, Artifact, Latency | None]:
    """Export ``model`` with ``backend`` through the parity gate on ``data``'s test split (raises on a breach);
    with ``timed``, also measure the runner's latency at batch 1."""
    options = ExportOptions(
        precision=precision, threads=1, batch_size=1, calibration=calibration_inputs(data.train.x, seed=0)
    )
    directory.mkdir(parents=True, exist_ok=True)
    thresholds = parity_thresholds({}, precision) if precision in ("fp32", "fp16") else TINY_QUANTIZED_PARITY
    checked = export_checked(model, backend, options, (data.test.x, data.test.y), thresholds, directory, data.heads)
    latency = None
    if timed:
        latency = measure_latency(checked.runner, sample_batch(data.test.x, 1), warmup=5, min_seconds=0.2)
    return checked.parity, checked.artifact, latency


def technique_round_trip(
    technique: Technique, manager: PluginManager, directory: Path, *, backend: str | None = None
) -> RoundTrip:
    """Apply ``technique`` as a recipe would to a tiny trained student (the same model is its teacher) on its
    ``example_data``: set up, train an epoch with its loss terms, compress (with its own fine-tuning), rebuild
    the result from its record, then export through the parity gate with ``backend`` (by default
    :func:`export_backend`)."""
    import torch

    from edgepeft.api.technique import count_parameters

    task = example_task(manager, type(technique).example_data)
    data, build = task.data, task.build
    trained = build(True)
    ctx = TrainContext(data=data, teacher=copy.deepcopy(trained), batch_size=64, seed=0)
    before = count_parameters(trained)
    adapted = technique.adapted(trained, ctx)
    student = ctx.model = adapted.model
    technique.setup(ctx)
    fit(student, ctx, phase="student", epochs=1, lr=0.005, techniques=[technique])
    compressed = technique.compress(student, ctx)
    model = compressed.model if compressed is not None else student
    records = [r for r in (adapted.record, compressed.record if compressed else None) if r is not None]
    if compressed is not None or records:  # a saved student must rebuild: from its records, or as built
        rebuilt = build(False)
        for record in records:
            rebuilt = type(technique).rebuild(rebuilt, record)
        try:
            rebuilt.load_state_dict(model.state_dict())
        except RuntimeError as exc:
            raise PluginError(
                f"technique {technique.name!r} changed the architecture without a record that rebuilds it: "
                f"{str(exc).splitlines()[0]}"
            ) from None
        x = torch.from_numpy(data.test.x[:16])
        if not torch.allclose(rebuilt.eval()(x), model.eval()(x), atol=1e-5):
            raise PluginError(f"technique {technique.name!r}: the model rebuilt from its record gives other outputs")
    exporter = manager.backends.get(backend) if backend else export_backend(manager)
    parity, artifact, _ = export_round_trip(model, exporter(), data, directory)
    report = compressed.report if compressed else {}
    return RoundTrip(parity, artifact, before, count_parameters(model), report=report, task=task.name)


def backend_round_trip(
    backend: Backend, manager: PluginManager, directory: Path, *, precision: str = "fp32"
) -> RoundTrip:
    """Export a small model of the default :func:`example_task`, trained briefly, with ``backend`` at
    ``precision`` through the parity gate and time it."""
    (trip,) = backend_round_trips(backend, manager, directory, (precision,))
    return trip


def backend_round_trips(
    backend: Backend, manager: PluginManager, directory: Path, precisions: Sequence[str]
) -> list[RoundTrip]:
    """:func:`backend_round_trip` at each of ``precisions``, all from one trained model."""
    from edgepeft.api.technique import count_parameters

    task = example_task(manager)
    data, model = task.data, task.build()
    parameters = count_parameters(model)
    trips = []
    for precision in precisions:
        parity, artifact, latency = export_round_trip(
            model, backend, data, directory / precision, precision=precision, timed=True
        )
        assert latency is not None
        if not all(math.isfinite(v) and v > 0 for v in (latency.p50_ms, latency.p95_ms, latency.p99_ms)):
            raise PluginError(f"backend {backend.name!r} gave latency figures that are not positive: {latency}")
        trips.append(RoundTrip(parity, artifact, parameters, parameters, latency=latency, task=task.name))
    return trips


def _every_precision(backend: type[Backend], manager: PluginManager, directory: Path) -> str:
    """Round trips at each precision the backend declares; the task they ran on and the figures of each."""
    trips = backend_round_trips(backend(), manager, directory, backend.precisions)
    figures = []
    for trip in trips:
        assert trip.latency is not None
        figures.append(
            f"{trip.parity.precision}: agreement {trip.parity.top1_agreement:.2%}, "
            f"accuracy {trip.parity.score:.2%}, p50/p95 {trip.latency.p50_ms:.3f}/{trip.latency.p95_ms:.3f} ms"
        )
    return f"on {trips[0].task}: " + "; ".join(figures) + " (batch 1)"


def model_round_trip(family: type[ModelFamily], manager: PluginManager, directory: Path) -> RoundTrip:
    """Build the family for its ``example_data``, train it briefly, and export it through the parity gate
    with :func:`export_backend`."""
    from edgepeft.api.technique import count_parameters

    data = example_data(manager, family.example_data) if family.example_data else example_task(manager).data
    task = ExampleTask(data, family)
    model = task.build()
    parity, artifact, _ = export_round_trip(model, export_backend(manager)(), task.data, directory)
    parameters = count_parameters(model)
    return RoundTrip(parity, artifact, parameters, parameters, task=task.name)


def check_dataset(cls: type[Dataset]) -> TaskData:
    """Load the data set with its example options and check its splits (shapes, labels, dtypes)."""
    import numpy as np

    data = cls().load(options_for(cls), 0)
    data.check()
    for split_name in ("validation", "test"):
        split = getattr(data, split_name)
        if split.x.shape[1:] != data.train.x.shape[1:]:
            raise PluginError(
                f"data set {cls.name!r}: {split_name} inputs have shape {list(split.x.shape[1:])}, "
                f"train inputs {list(data.train.x.shape[1:])}"
            )
    labels = "integers" if data.is_classifier else "float32"
    for split in (data.train, data.validation, data.test):
        integral = np.issubdtype(split.y.dtype, np.integer)
        if split.x.dtype != np.float32 or integral != data.is_classifier or split.y.dtype.kind not in "iuf":
            raise PluginError(
                f"data set {cls.name!r}: inputs must be float32 and labels {labels}, "
                f"got {split.x.dtype} and {split.y.dtype}"
            )
    return data


@dataclass
class CheckResult:
    """One conformance check: what was checked, ``pass``/``fail``/``skip``, and the figures or the reason."""

    kind: str
    name: str
    status: str
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def check_plugin(name: str, manager: PluginManager, directory: Path | None = None) -> list[CheckResult]:
    """Run the conformance checks for everything plugin ``name`` registers."""
    if name not in manager.info and not any(e.plugin == name for r in manager.registries.values() for e in r):
        raise PluginError(
            f"no installed plugin is named {name!r}",
            fix=f"See `edgepeft plugins` for installed plugins ({', '.join(sorted(manager.info))})",
        )
    workspace = contextlib.nullcontext(str(directory)) if directory else tempfile.TemporaryDirectory(prefix="edgepeft-")
    with workspace as folder:
        root = Path(folder)
        results = []
        for kind, registry in manager.registries.items():
            for entry in registry:
                if entry.plugin == name:
                    results.append(_run_check(kind, entry.name, entry.value, manager, root / f"{kind}-{entry.name}"))
    if not results:
        hooks = ", ".join(manager.hooks_of(name)) or "none"
        results.append(CheckResult("hooks", name, "skip", f"registers nothing to exercise (hooks: {hooks})"))
    return results


def _run_check(kind: str, name: str, value: Any, manager: PluginManager, directory: Path) -> CheckResult:
    checks: dict[str, Callable[[], str]] = {
        "technique": lambda: _describe(technique_round_trip(value(options_for(value)), manager, directory)),
        "backend": lambda: _every_precision(value, manager, directory),
        "model": lambda: _describe(model_round_trip(value, manager, directory)),
        "dataset": lambda: _describe_data(check_dataset(value)),
        "device": lambda: _describe_profile(name, manager),
    }
    try:
        reason = value.unavailable_reason() if hasattr(value, "unavailable_reason") else None
        if reason:
            return CheckResult(kind, name, "skip", f"cannot run here: {reason}")
        if kind in ("technique", "dataset", "model"):
            skipped = _options_problem(kind, value)
            if skipped:
                return skipped
        return CheckResult(kind, name, "pass", checks[kind]())
    except EdgepeftError as exc:
        return CheckResult(kind, name, "fail", exc.message)
    except Exception as exc:
        return CheckResult(kind, name, "fail", f"{type(exc).__name__}: {exc}")


def _options_problem(kind: str, cls: Any) -> CheckResult | None:
    """A skip when the class's options need values nobody gave; a failure when its example_options are invalid."""
    try:
        options_for(cls)
    except ValidationError as exc:
        where = ", ".join(".".join(map(str, e["loc"])) or e["msg"] for e in exc.errors())
        if getattr(cls, "example_options", None) or any(e["type"] != "missing" for e in exc.errors()):
            return CheckResult(kind, cls.name, "fail", f"its example_options are not valid options: {where}")
        return CheckResult(
            kind, cls.name, "skip", f"not exercised: its options need values ({where}); set example_options"
        )
    return None


def _describe_profile(name: str, manager: PluginManager) -> str:
    profile = load_profile(name, manager.devices)
    unknown = [b for b in profile.runtime.backends if b not in manager.backends]
    if unknown:
        raise PluginError(f"the profile names backends no installed plugin registers: {', '.join(unknown)}")
    return f"valid profile: backends {', '.join(profile.runtime.backends)}"


def _describe(trip: RoundTrip) -> str:
    figures = [
        f"on {trip.task}, exported with {trip.artifact.backend}",
        f"parameters {trip.parameters_before:,} -> {trip.parameters_after:,}",
        f"{trip.artifact.backend} {trip.parity.precision}: agreement {trip.parity.top1_agreement:.2%}, "
        + ", ".join(f"{m} {format_metric(m, trip.parity.metrics[m])}" for m in trip.parity.primary),
    ]
    if trip.latency is not None:
        figures.append(f"p50 {trip.latency.p50_ms:.3f} ms, p95 {trip.latency.p95_ms:.3f} ms at batch 1")
    return "; ".join(figures)


def _describe_data(data: TaskData) -> str:
    sizes = "/".join(f"{len(s):,}" for s in (data.train, data.validation, data.test))
    if data.is_classifier:
        return f"train/validation/test {sizes}; inputs {list(data.input_shape)}; {data.num_classes} classes"
    heads = ", ".join(f"{h.name} ({h.kind})" for h in data.heads)
    return f"train/validation/test {sizes}; inputs {list(data.input_shape)}; heads {heads}; {len(data.fields)} fields"

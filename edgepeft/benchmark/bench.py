"""A run's teacher, the baselines users would pick without edgepeft, and its student on every backend and
precision, measured side by side on this machine in one process, on the held-out test split.

The teacher rows and the baselines come from what each backend declares: the teacher exported plainly
(``Backend.teacher_precisions``) and what a user gets from the teacher in one line, the runtime's own
post-training conversion (``Backend.baseline_precisions``), ordered by ``Backend.bench_rank``. Student exports
pass the parity gate before they are timed (one the gate refuses is kept as refused); the teacher and
the baselines are measured as they come, like a user without edgepeft gets them, and marked where they
miss the gate.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgepeft.api.backend import Backend, ExportOptions
from edgepeft.api.device import DeviceProfile, ParityThresholds, parity_thresholds
from edgepeft.api.tasks import primary_metrics
from edgepeft.api.technique import count_parameters
from edgepeft.artifacts.run_folder import Run, load_model
from edgepeft.benchmark.flops import MatmulPeak, forward_flops, matmul_peak
from edgepeft.errors import EdgepeftError
from edgepeft.ship.export import CheckedExport, calibration_inputs, export_checked, export_options
from edgepeft.ship.memory import measure_peak_memory
from edgepeft.ship.profile import Latency, measure_latency, sample_batch

if TYPE_CHECKING:
    import torch

    from edgepeft.host.manager import PluginManager

THROUGHPUT_BATCH = 256
UNGATED = ParityThresholds()
"""No threshold: what a user gets from a one-line conversion, whatever its agreement."""


@dataclass(frozen=True)
class Candidate:
    """One model of the run on one backend at one precision, and the part it plays in the comparison."""

    model: str
    backend: str
    precision: str
    role: str

    @property
    def label(self) -> str:
        return f"{self.model} {self.backend} {self.precision}"


@dataclass
class Measurement:
    """What was measured for one candidate. ``refused`` says why it could not be measured (the parity gate
    refused a student export, or the export failed); ``below_parity`` lists the gate thresholds an ungated
    teacher or baseline export misses."""

    candidate: Candidate
    parameters: int
    flops: int
    """Per example, one forward pass."""
    size_bytes: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    """Every metric of the task on the test split (:func:`edgepeft.api.tasks.evaluate`)."""
    score: float | None = None
    """The task's score (a classifier's accuracy)."""
    agreement: float | None = None
    peak_memory_mb: float | None = None
    latency: dict[int, Latency] = field(default_factory=dict)
    refused: str = ""
    below_parity: str = ""

    def items_per_second(self, batch: int) -> float:
        """Sustained throughput at ``batch``: items over the mean time per call."""
        return batch / (self.latency[batch].mean_ms / 1e3)

    def as_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self.candidate),
            "label": self.candidate.label,
            "parameters": self.parameters,
            "flops_per_example": self.flops,
            "size_bytes": self.size_bytes,
            "metrics": self.metrics,
            "score": self.score,
            "top1_agreement": self.agreement,
            "peak_memory_mb": self.peak_memory_mb,
            "latency_ms": {str(b): lat.summary() for b, lat in self.latency.items()},
            "refused": self.refused,
            "below_parity": self.below_parity,
        }


@dataclass
class BenchResult:
    """Every candidate of one run measured under the same conditions, with the machine's matmul peak."""

    run: str
    device: str
    threads: int
    examples: int
    profile_batch: int
    throughput_batch: int
    peak: MatmulPeak
    rows: list[Measurement]
    metrics: tuple[str, ...] = ("accuracy",)
    """The task's main metrics (one per head), shown for every row."""

    @property
    def batches(self) -> tuple[int, ...]:
        return tuple(sorted({1, self.profile_batch, self.throughput_batch}))

    def first(self, role: str) -> Measurement | None:
        """The first row of ``role`` (``teacher`` or ``baseline``), measured or not."""
        return next((r for r in self.rows if r.candidate.role == role), None)

    def reference(self, role: str) -> Measurement | None:
        """The row ratios refer to: the first teacher row (the teacher as trained) or the first baseline row,
        in the order of :func:`candidates`; None when it could not be measured here."""
        row = self.first(role)
        return row if row is not None and not row.refused else None

    def reference_labels(self) -> dict[str, str | None]:
        """The label of each reference row, None where it could not be measured."""
        references = {role: self.reference(role) for role in ("teacher", "baseline")}
        return {role: r.candidate.label if r else None for role, r in references.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "device": self.device,
            "threads": self.threads,
            "test_examples": self.examples,
            "profile_batch": self.profile_batch,
            "throughput_batch": self.throughput_batch,
            "matmul_peak": dataclasses.asdict(self.peak),
            "metrics": list(self.metrics),
            "references": self.reference_labels(),
            "rows": [r.as_dict() for r in self.rows],
        }


def candidates(manager: PluginManager) -> tuple[list[Candidate], list[str]]:
    """The teacher rows and the baselines the backends declare (highest ``bench_rank`` first), then the
    student on every backend and precision, and a line for each one that cannot run here."""
    out, skipped = [], []

    def add(model: str, backend: type[Backend], precision: str, role: str) -> None:
        reason = backend.unavailable_reason()
        if reason is None and precision not in backend.precisions:
            reason = f"does not export {precision}"
        if reason:
            skipped.append(f"{model} {backend.name} {precision}: {reason}")
        else:
            out.append(Candidate(model, backend.name, precision, role))

    ranked = sorted((entry.value for entry in manager.backends), key=lambda cls: (-cls.bench_rank, cls.name))
    for cls in ranked:
        for precision in cls.teacher_precisions:
            add("teacher", cls, precision, "teacher")
    for cls in ranked:
        for precision in cls.baseline_precisions:
            add("teacher", cls, precision, "baseline")
    for entry in manager.backends:
        for precision in entry.value.precisions:
            add("student", entry.value, precision, "student")
    return out, skipped


class Bench:
    """Measures models of one run (``teacher``, ``student``, ``stages/NN-name``) for one device profile at
    ``batches``, with the inference peak memory at the profile's batch when ``memory`` is set."""

    def __init__(
        self,
        run: Run,
        profile: DeviceProfile,
        manager: PluginManager,
        *,
        threads: int,
        timing_seconds: float,
        batches: tuple[int, ...],
        memory: bool = True,
    ) -> None:
        self.run, self.profile, self.manager = run, profile, manager
        self.threads, self.timing_seconds = threads, timing_seconds
        self.batches, self.memory = batches, memory
        self.data = run.data(manager)
        self.calibration = calibration_inputs(self.data.train.x, run.resolved.recipe.seed)
        self.models: dict[str, torch.nn.Module] = {}

    def model(self, name: str) -> torch.nn.Module:
        if name not in self.models:
            self.models[name] = load_model(self.run.path / name, self.manager)[0]
        return self.models[name]

    def options(self, candidate: Candidate, batch: int) -> ExportOptions:
        """The profile's runtime settings at ``batch`` with the bench's threads (in the profile's input
        layout where the backend builds it, NCHW otherwise)."""
        options = export_options(self.profile, candidate.precision, self.calibration)
        layouts = self.manager.backends.get(candidate.backend).layouts
        layout = options.input_layout if options.input_layout in layouts else "NCHW"
        return dataclasses.replace(options, threads=self.threads, batch_size=batch, input_layout=layout)

    def measure(self, candidate: Candidate, folder: Path) -> Measurement:
        """Export (through the parity gate for a student), then time every batch size (re-exporting where
        the runtime's batch is fixed) and measure the inference process's peak memory."""
        model = self.model(candidate.model)
        test = self.data.test
        row = Measurement(candidate, count_parameters(model), forward_flops(model, test.x[:8]))
        gate = parity_thresholds(self.profile.parity, candidate.precision)
        try:
            exports = self._export_per_batch(model, candidate, gate if candidate.role == "student" else UNGATED, folder)
            latency = {
                b: measure_latency(e.runner, sample_batch(test.x, b), min_seconds=self.timing_seconds)
                for b, e in exports.items()
            }
            memory = self._peak_memory(candidate, exports) if self.memory else None
        except EdgepeftError as exc:
            row.refused = exc.what
            return row
        first = exports[self.batches[0]].parity
        row.size_bytes = exports[self.batches[0]].artifact.size_bytes
        row.metrics, row.score, row.agreement, row.latency, row.peak_memory_mb = (
            first.metrics,
            first.score,
            first.top1_agreement,
            latency,
            memory,
        )
        row.below_parity = "; ".join(dataclasses.replace(first, thresholds=gate).failures)
        return row

    def _export_per_batch(
        self, model: torch.nn.Module, candidate: Candidate, thresholds: ParityThresholds, folder: Path
    ) -> dict[int, CheckedExport]:
        backend = self.manager.backends.get(candidate.backend)()
        test = self.data.test
        exports: dict[int, CheckedExport] = {}
        for batch in self.batches:
            # a file with a dynamic batch serves every batch size; a fixed-shape one is rebuilt per batch
            reusable = next((e for e in exports.values() if e.artifact.inputs and e.artifact.fixed_batch is None), None)
            if reusable is None:
                target = folder / f"b{batch}"
                target.mkdir(parents=True)
                options = self.options(candidate, batch)
                reusable = export_checked(
                    model, backend, options, (test.x, test.y), thresholds, target, self.data.heads
                )
            exports[batch] = reusable
        return exports

    def _peak_memory(self, candidate: Candidate, exports: dict[int, CheckedExport]) -> float:
        batch = self.profile.budgets.batch_size
        report = measure_peak_memory(
            self.manager.backends.get(candidate.backend),
            exports[batch].artifact,
            self.options(candidate, batch),
            sample_batch(self.data.test.x, batch),
        )
        return report.process_peak_mb


def bench_run(
    run: Run,
    profile: DeviceProfile,
    manager: PluginManager,
    todo: list[Candidate],
    *,
    threads: int,
    timing_seconds: float = 2.0,
    throughput_batch: int = THROUGHPUT_BATCH,
    on_measured: Callable[[Measurement], None] | None = None,
) -> BenchResult:
    """Measure the candidates ``todo`` (see :func:`candidates`) of ``run`` for ``profile`` one after another."""
    import torch

    batches = tuple(sorted({1, profile.budgets.batch_size, throughput_batch}))
    bench = Bench(run, profile, manager, threads=threads, timing_seconds=timing_seconds, batches=batches)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        before = matmul_peak(threads)
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for i, candidate in enumerate(todo):
                rows.append(bench.measure(candidate, Path(tmp) / str(i)))
                if on_measured is not None:
                    on_measured(rows[-1])
        peak = max(before, matmul_peak(threads), key=lambda p: p.flops_per_second)  # before and after: the faster
    finally:
        torch.set_num_threads(previous)
    return BenchResult(
        run.name,
        profile.name,
        threads,
        len(bench.data.test),
        profile.budgets.batch_size,
        throughput_batch,
        peak,
        rows,
        tuple(primary_metrics(bench.data.heads)),
    )

"""The objective Optuna optimizes: one trial's student checked against the budgets, trained (stopped early when
hopeless), exported and measured on the device profile."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgepeft import hookimpl
from edgepeft.api import tasks
from edgepeft.errors import EdgepeftError
from edgepeft.search.space import apply, sample
from edgepeft.search.study import results_of
from edgepeft.search.trial import TrialResult

if TYPE_CHECKING:
    import optuna

    from edgepeft.api.device import DeviceProfile
    from edgepeft.artifacts.metrics import RunMetrics
    from edgepeft.host.manager import PluginManager
    from edgepeft.search.space import SearchPlan

HOPELESS_MARGIN = 0.05
"""A trial past half its student epochs whose validation accuracy trails a finished trial no larger than
its smallest possible file by more than this is stopped."""


class Search:
    """Runs trials of a :class:`SearchPlan` on a device profile into ``out`` (see :func:`run_search`)."""

    LATENCY_FLOOR_MARGIN = 4.0
    """The FLOP floor uses the fp32 matmul peak; int8 kernels can beat it, so a trial is only pruned before
    training when its floor exceeds the latency budget this many times over."""

    def __init__(
        self, plan: SearchPlan, profile: DeviceProfile, manager: PluginManager, out: Path, progress: Any = None
    ) -> None:
        from edgepeft.artifacts.recipe import resolve
        from edgepeft.artifacts.run_folder import load_task_data
        from edgepeft.benchmark.flops import matmul_peak
        from edgepeft.ship.export import export_options

        self.plan, self.profile, self.manager, self.out = plan, profile, manager, out
        self.progress = progress  # a rich Progress that shows each trial's training
        self.runs = out / "trials"
        base = resolve(plan.base, plan.text, plan.source, manager)
        self.data = load_task_data(manager, base, base.recipe.seed)
        self.peak = matmul_peak(export_options(profile, profile.runtime.precisions[0]).threads, seconds=0.5)

    def objective(self, trial: optuna.Trial) -> tuple[float, float, float]:
        import optuna

        from edgepeft.errors import TrainingInterrupted

        settings = sample(trial, self.plan.search.space)
        try:
            result = self.run_trial(trial.number, settings, results_of(trial.study))
        except TrainingInterrupted:
            raise  # Ctrl-C or SIGTERM: stop the search; --resume runs this trial again
        except EdgepeftError as exc:  # this trial's settings do not train or export: the search goes on
            result = TrialResult(trial.number, settings, "failed", note=exc.what)
        for key, value in dataclasses.asdict(result).items():
            trial.set_user_attr(key, value)
        trial.set_constraint("budgets_broken", float(len(result.broke) or result.state != "complete"))
        if result.state != "complete":
            raise optuna.TrialPruned(result.note)
        return result.objectives  # type: ignore[return-value]

    def precision_of(self, settings: dict[str, Any]) -> str:
        return settings.get("precision", self.profile.runtime.precisions[0])

    def run_trial(self, number: int, settings: dict[str, Any], finished: list[TrialResult]) -> TrialResult:
        """Cheap checks first (the student's parameters and FLOP latency floor against the budgets), then
        train (stopped early when hopeless against the ``finished`` trials), export with the profile's
        backend at the trial's precision, gated and scored on the validation split, and measure."""
        from edgepeft.artifacts.recipe import resolve

        name = f"{self.plan.name}-t{number:03d}"
        metric = "accuracy" if self.data.is_classifier else "score"
        result = TrialResult(number, settings, "complete", run=str(self.runs / name), metric=metric)
        result.precision = self.precision_of(settings)
        resolved = resolve(
            apply(self.plan.base, settings, name), None, f"{self.plan.source} trial {number}", self.manager
        )
        broken = self.before_training(resolved, result)
        if broken:
            result.state, result.broke, result.note, result.run = "pruned", [broken[0]], broken[1], None
            return result
        metrics = self._train(resolved, result, finished)
        if metrics is not None:
            self._measure(result, metrics)
        return result

    def _train(self, resolved: Any, result: TrialResult, finished: list[TrialResult]) -> RunMetrics | None:
        import shutil

        from edgepeft.artifacts.run_folder import partial_dir
        from edgepeft.errors import PluginError
        from edgepeft.train.trainer import Trainer

        rivals = [r for r in finished if r.feasible and r.precision == result.precision]
        guard_name = f"edgepeft-search-trial-{result.number}"
        self.manager.register(StopHopeless(self._least_mb(resolved, result), rivals), guard_name)
        try:
            return Trainer(resolved, self.manager, self.runs, self.progress).run()
        except PluginError as exc:
            if not isinstance(exc.__cause__, Hopeless):
                raise
            shutil.rmtree(partial_dir(self.runs / resolved.recipe.name), ignore_errors=True)
            result.state, result.note, result.run = "pruned", str(exc.__cause__), None
            return None
        finally:
            self.manager.unregister(guard_name)

    def _measure(self, result: TrialResult, metrics: RunMetrics) -> None:
        """Export and measure like ``edgepeft profile``, but with the parity gate and the accuracy on the
        validation split: the test split is reported (the PyTorch student's), never used to choose."""
        from edgepeft.artifacts.run_folder import open_run
        from edgepeft.ship.deploy import prepare, profile_run

        run = open_run(Path(result.run), self.manager)
        prepared = prepare(run, self.profile, self.manager, precision=result.precision)
        on_validation = dataclasses.replace(
            prepared, data=dataclasses.replace(prepared.data, test=prepared.data.validation)
        )
        report = profile_run(on_validation, timing_seconds=0.5)
        result.val_score = report.parity.score
        result.test_score = metrics.student.test_score
        result.size_mb = report.size_bytes / 1e6
        result.p95_ms = report.device_latency.latency.p95_ms
        result.peak_memory_mb = report.memory.process_peak_mb
        result.broke = [b.budget for b in report.budgets if not b.passed and b.budget != "min_accuracy_retention"]
        retention = self.profile.budgets.min_accuracy_retention
        parity = report.parity
        kept = tasks.retention(parity.primary, parity.metrics, metrics.teacher.val_metrics)
        if retention is not None and not kept >= retention:  # NaN (e.g. an AUC without both classes) fails
            result.broke.append("min_accuracy_retention")

    def before_training(self, resolved: Any, result: TrialResult) -> tuple[str, str] | None:
        """The budget the trial cannot meet whatever its training, and why (None when it might)."""
        import numpy as np

        from edgepeft.api.technique import count_parameters
        from edgepeft.benchmark.flops import forward_flops

        shape = tuple(self.data.input_shape)
        model = self.manager.models.get(resolved.recipe.student.model)().build_for(
            resolved.student_options, self.data.signature
        )
        result.parameters = count_parameters(model)
        budgets = self.profile.budgets
        least_mb = self._least_mb(resolved, result)
        if budgets.max_size_mb is not None and least_mb > budgets.max_size_mb:
            return "max_size_mb", f"{result.parameters:,} parameters need at least {least_mb:.2f} MB before training"
        if budgets.p95_latency_ms is not None:
            flops = forward_flops(model, np.zeros((2, *shape), np.float32)) * budgets.batch_size
            floor_ms = self.peak.floor_ms(flops) / self.profile.hardware.relative_speed
            if floor_ms > budgets.p95_latency_ms * self.LATENCY_FLOOR_MARGIN:
                return "p95_latency_ms", f"its FLOP floor on the device is {floor_ms:.2f} ms before training"
        return None

    def _least_mb(self, resolved: Any, result: TrialResult) -> float:
        """The smallest file the trial's student can make (0 when a technique may reshape it): one byte per
        int8 parameter, two per fp16, four per fp32."""
        from edgepeft.api.technique import Technique

        techniques = [type(t) for t in resolved.techniques]
        if any(t.compress is not Technique.compress or t.adapt is not Technique.adapt for t in techniques):
            return 0.0
        per_parameter = {"int8": 1, "int8-dynamic": 1, "fp16": 2}.get(result.precision or "", 4)
        return (result.parameters or 0) * per_parameter / 1e6


class Hopeless(Exception):
    """Raised from the epoch hook to stop a trial that cannot reach the Pareto front."""


class StopHopeless:
    """A plugin for one trial's training: from half its student epochs on, it stops the trial when a finished
    trial within budget, at the same precision and no larger than this one's smallest possible file, is
    ahead on validation by more than :data:`HOPELESS_MARGIN`."""

    def __init__(self, least_mb: float, finished: list[TrialResult]) -> None:
        self.least_mb, self.finished = least_mb, finished

    @hookimpl
    def edgepeft_after_epoch(self, state: Any) -> None:
        if state.phase != "student" or state.epoch * 2 < (state.epochs or 0):
            return
        for r in self.finished:
            if r.size_mb <= self.least_mb and r.val_score - state.val_score > HOPELESS_MARGIN:
                raise Hopeless(
                    f"stopped at epoch {state.epoch}/{state.epochs}: validation {r.metric} {r.shown(state.val_score)} "
                    f"while trial {r.number}, at most as large ({r.size_mb:.3f} MB), reached {r.shown(r.val_score)}"
                )

"""``edgepeft search``: the students a recipe's ``[search]`` space allows, trained and measured on a device
profile, with the accuracy/size/latency Pareto front and the best one that meets every budget.

The optimizer is Optuna's multi-objective TPE (maximize validation accuracy, minimize file size and
device p95 latency), with the profile's budgets as constraints. TPE, rather than NSGA-II, because a
search here has tens of trials, not the hundreds a genetic population needs, and TPE handles
categorical and conditional settings (a technique switched off has no options to sample). The test
split never steers the search: objectives use the validation split; test accuracy is only reported.

Every trial is stored as it ends (Optuna's SQLite study plus ``trials.json``); ``--resume`` continues
an interrupted search without rerunning finished trials. A seed fixes the trials of a fresh search.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, StrictInt, ValidationError, field_validator, model_validator

from edgepeft import hookimpl
from edgepeft.api import tasks
from edgepeft.api.tasks import format_metric
from edgepeft.errors import ConfigError, EdgepeftError
from edgepeft.util import atomic
from edgepeft.util.validation import StrictModel, parse, read_toml, toml_line

if TYPE_CHECKING:
    import optuna

    from edgepeft.api.device import DeviceProfile
    from edgepeft.host.manager import PluginManager

OBJECTIVES = ("val_score", "size_mb", "p95_ms")
HOPELESS_MARGIN = 0.05
"""A trial past half its student epochs whose validation accuracy trails a finished trial no larger than
its smallest possible file by more than this is stopped."""
DIRECTIONS = ("maximize", "minimize", "minimize")


class Range(StrictModel):
    """A numeric setting: integers when ``low``, ``high`` (and ``step``) are written as integers, floats
    otherwise (``2.0`` is a float)."""

    low: StrictInt | float
    high: StrictInt | float
    step: StrictInt | float | None = Field(None, gt=0)
    log: bool = False

    @property
    def integer(self) -> bool:
        return all(isinstance(v, int) for v in (self.low, self.high, self.step if self.step is not None else 1))

    @model_validator(mode="after")
    def _consistent(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("a log range needs low > 0 and no step")
        return self


class SearchSection(StrictModel):
    """``[search]``: the device whose budgets are hard constraints, how many trials, and the space."""

    device: str | None = None
    trials: int = Field(20, gt=0)
    seed: int = Field(0, ge=0)
    space: dict[str, list[Any] | Range] = Field(min_length=1)

    @field_validator("space", mode="before")
    @classmethod
    def _lists_or_ranges(cls, space: Any) -> Any:
        """A table is a range and a list a choice; each is checked as what it is, for a clear error."""
        if not isinstance(space, dict):
            return space
        out = {}
        for key, value in space.items():
            if isinstance(value, dict):
                try:
                    value = Range.model_validate(value)
                except ValidationError as exc:
                    raise ValueError(f"{key}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
            elif not isinstance(value, list) or not value:
                raise ValueError(f"{key}: give a non-empty list of values or a {{low, high}} range")
            out[key] = value
        return out


@dataclasses.dataclass
class SearchPlan:
    """A parsed search recipe: the base recipe (without ``[search]``), its source, and the search."""

    base: dict[str, Any]
    source: str
    text: str
    search: SearchSection

    @property
    def name(self) -> str:
        return self.base["name"]


def load_plan(path: Path, manager: PluginManager) -> SearchPlan:
    """Read a recipe with a ``[search]`` table; every key of the space must name a student setting or a
    technique of the recipe (``student.lr``, ``student.options.hidden``, ``techniques.prune.ratio``),
    ``techniques.NAME = [true, false]`` switches a technique on and off, and ``precision`` picks the
    export precision among the device profile's."""
    from edgepeft.artifacts.recipe import resolve

    data, text = read_toml(path)
    if "search" not in data:
        raise ConfigError(
            "the recipe has no [search] table",
            where=str(path),
            fix='Add [search] with device = "..." and a [search.space] of settings, see docs/search.md',
        )
    search = parse(SearchSection, data["search"], path, text, prefix=("search",))
    base = {k: v for k, v in data.items() if k != "search"}
    resolve(base, text, str(path), manager)  # the base recipe must be valid on its own
    techniques = {t["name"] for t in base.get("techniques", [])}
    for key, choice in search.space.items():
        where = f"{path}:{toml_line(text, ('search', 'space', key)) or '?'}"
        parts = key.split(".")
        if key == "precision":
            if not isinstance(choice, list) or not all(isinstance(v, str) for v in choice):
                raise ConfigError('\'precision\' takes a list of precisions, e.g. ["int8", "fp32"]', where=where)
            continue
        if parts[0] == "techniques" and len(parts) in (2, 3) and parts[1] in techniques:
            if len(parts) == 2 and not (isinstance(choice, list) and all(isinstance(v, bool) for v in choice)):
                raise ConfigError(f"{key!r} switches a technique: its values must be [true, false]", where=where)
            continue
        student_setting = len(parts) == 2 and parts[1] in ("epochs", "lr", "weight_decay")
        if parts[0] == "student" and (student_setting or (len(parts) == 3 and parts[1] == "options")):
            continue
        raise ConfigError(
            f"the search space names {key!r}, which is not a student setting or a technique of this recipe",
            where=where,
            fix="Use precision, student.epochs, student.lr, student.weight_decay, student.options.<option>, "
            f"techniques.<name>.<option> or techniques.<name> for one of: {', '.join(sorted(techniques)) or 'none'}",
        )
    return SearchPlan(base, str(path), text, search)


def sample(trial: optuna.Trial, space: dict[str, list[Any] | Range]) -> dict[str, Any]:
    """The settings of one trial; a switched-off technique's own settings are not sampled (conditional)."""
    chosen: dict[str, Any] = {}
    switches_first = sorted(
        space.items(), key=lambda item: not (item[0].startswith("techniques.") and item[0].count(".") == 1)
    )
    for key, choice in switches_first:
        parts = key.split(".")
        if parts[0] == "techniques" and len(parts) == 3 and chosen.get(f"techniques.{parts[1]}") is False:
            continue
        if isinstance(choice, list):
            picked = trial.suggest_categorical(key, [json.dumps(v) for v in choice])
            chosen[key] = json.loads(picked)
        elif choice.integer:
            chosen[key] = trial.suggest_int(key, choice.low, choice.high, step=choice.step or 1, log=choice.log)
        else:
            chosen[key] = trial.suggest_float(key, choice.low, choice.high, step=choice.step, log=choice.log)
    return chosen


def apply(base: dict[str, Any], settings: dict[str, Any], name: str) -> dict[str, Any]:
    """``base`` with ``settings`` written in, renamed ``name``."""
    recipe = copy.deepcopy(base)
    recipe["name"] = name
    for key, value in settings.items():
        parts = key.split(".")
        if key == "precision":
            continue  # an export setting, not the recipe's
        if parts[0] == "techniques":
            if len(parts) == 2:
                if not value:
                    recipe["techniques"] = [t for t in recipe["techniques"] if t["name"] != parts[1]]
                continue
            for technique in recipe["techniques"]:
                if technique["name"] == parts[1]:
                    technique[parts[2]] = value
            continue
        target = recipe
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return recipe


def check_plan(plan: SearchPlan, profile: DeviceProfile, manager: PluginManager) -> None:
    """Before any trial: every searched precision is exportable for ``profile``, and the recipe resolves with
    each setting at every one of its listed values (ranges at both ends), so an unknown option fails here."""
    from edgepeft.artifacts.recipe import resolve
    from edgepeft.ship.export import choose_backend

    for precision in plan.search.space.get("precision", []):
        if precision not in profile.runtime.precisions:
            raise ConfigError(
                f"the search space's precision {precision!r} is not one the {profile.name} profile runs",
                where=plan.source,
                fix=f"Use some of: {', '.join(profile.runtime.precisions)}",
            )
        choose_backend(profile, manager, precision=precision)
    for key, choice in plan.search.space.items():
        values = choice if isinstance(choice, list) else [choice.low, choice.high]
        for value in values:
            if key != "precision":
                resolve(
                    apply(plan.base, {key: value}, plan.name),
                    None,
                    f"{plan.source} ([search.space] {key} = {value!r})",
                    manager,
                )


@dataclasses.dataclass
class TrialResult:
    """One finished trial: its settings, what it measured, the budgets it broke, and where its run is."""

    number: int
    settings: dict[str, Any]
    state: str
    run: str | None = None
    parameters: int | None = None
    val_score: float | None = None
    test_score: float | None = None
    size_mb: float | None = None
    p95_ms: float | None = None
    peak_memory_mb: float | None = None
    precision: str | None = None
    """The export's precision (the searched one, or the profile's first that the backend supports)."""
    broke: list[str] = dataclasses.field(default_factory=list)
    note: str = ""
    metric: str = "accuracy"
    """What the scores are: a classifier's accuracy, or the multi-head task's score."""

    def shown(self, value: float | None) -> str:
        """A score as the trial's metric is written (a percentage for accuracy)."""
        return "-" if value is None else format_metric(self.metric, value)

    @property
    def objectives(self) -> tuple[float, float, float] | None:
        if self.state != "complete":
            return None
        return (self.val_score, self.size_mb, self.p95_ms)  # type: ignore[return-value]

    @property
    def feasible(self) -> bool:
        return self.state == "complete" and not self.broke


def describe(settings: dict[str, Any]) -> str:
    """Settings as short ``name=value`` pairs: the last part of each key, floats to 3 significant digits,
    a switched technique as on/off."""
    parts = []
    for key, value in settings.items():
        if isinstance(value, bool):
            value = "on" if value else "off"
        elif isinstance(value, float):
            value = f"{value:.3g}"
        parts.append(f"{key.split('.')[-1]}={value}")
    return " ".join(parts).replace(", ", ",")


def pareto(results: list[TrialResult]) -> list[TrialResult]:
    """Completed trials no other completed trial beats on every objective (accuracy up, size and
    latency down), ordered by size."""
    done = [r for r in results if r.objectives is not None]

    def dominates(a: TrialResult, b: TrialResult) -> bool:
        (aa, asz, al), (ba, bsz, bl) = a.objectives, b.objectives  # type: ignore[misc]
        return aa >= ba and asz <= bsz and al <= bl and (aa, asz, al) != (ba, bsz, bl)

    return sorted((r for r in done if not any(dominates(o, r) for o in done)), key=lambda r: r.size_mb or 0)


def best(results: list[TrialResult]) -> TrialResult | None:
    """The most accurate (on validation) trial that meets every budget; smaller wins a tie."""
    feasible = [r for r in results if r.feasible]
    return max(feasible, key=lambda r: (r.val_score, -(r.size_mb or 0)), default=None)


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

    def _train(self, resolved: Any, result: TrialResult, finished: list[TrialResult]) -> dict[str, Any] | None:
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

    def _measure(self, result: TrialResult, metrics: dict[str, Any]) -> None:
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
        result.test_score = metrics["student"]["test_score"]
        result.size_mb = report.size_bytes / 1e6
        result.p95_ms = report.device_latency.latency.p95_ms
        result.peak_memory_mb = report.memory.process_peak_mb
        result.broke = [b.budget for b in report.budgets if not b.passed and b.budget != "min_accuracy_retention"]
        retention = self.profile.budgets.min_accuracy_retention
        parity = report.parity
        kept = tasks.retention(parity.primary, parity.metrics, metrics["teacher"]["val_metrics"])
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


def results_of(study: optuna.Study) -> list[TrialResult]:
    """Every finished trial of ``study`` as :class:`TrialResult`, in trial order."""
    import optuna

    out = []
    fields = {f.name for f in dataclasses.fields(TrialResult)}
    for t in study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    ):
        attrs = {k: v for k, v in t.user_attrs.items() if k in fields}
        if "number" in attrs:
            out.append(TrialResult(**attrs))
    return sorted(out, key=lambda r: r.number)


def _study(plan: SearchPlan, out: Path, worker: int = 0) -> optuna.Study:
    """The study in ``out/study.db`` with a TPE sampler seeded by the seed, the trials already in the study
    and the worker's number: the same history gives the same next trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{out / 'study.db'}"
    history = (
        len(optuna.load_study(study_name=plan.name, storage=storage).trials) if (out / "study.db").is_file() else 0
    )
    sampler = optuna.samplers.TPESampler(
        seed=plan.search.seed + history + 1000 * worker,
        multivariate=True,
        n_startup_trials=min(10, max(3, plan.search.trials // 3)),
    )
    return optuna.create_study(
        study_name=plan.name, storage=storage, directions=list(DIRECTIONS), sampler=sampler, load_if_exists=True
    )


def _fingerprint(plan: SearchPlan) -> str:
    return hashlib.sha256(
        json.dumps([plan.base, plan.search.model_dump(mode="json")], sort_keys=True).encode()
    ).hexdigest()


def open_study(plan: SearchPlan, out: Path, *, resume: bool) -> tuple[optuna.Study, int]:
    """The search's study and how many trials already finished. On resume, a trial that was running (or
    was interrupted) when the search stopped is failed and queued again with its settings, and its
    half-written run folder removed; a changed recipe is refused."""
    import shutil

    import optuna

    exists = (out / "study.db").is_file()
    if exists and not resume:
        raise ConfigError(
            "a search already ran into this folder",
            where=str(out),
            fix="Continue it with --resume, or choose another --out",
        )
    if resume and not exists:
        raise ConfigError("no interrupted search to resume here", where=str(out), fix="Drop --resume to start one")
    out.mkdir(parents=True, exist_ok=True)
    study = _study(plan, out)
    recorded = study.user_attrs.get("recipe")
    if recorded is None:
        study.set_user_attr("recipe", _fingerprint(plan))
    elif recorded != _fingerprint(plan):
        raise ConfigError(
            "the recipe or its [search] table changed since this search started",
            where=plan.source,
            fix=f"Resume with the recipe as it was, or start a new search with another --out than {out}",
        )
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    requeued = set(study.user_attrs.get("requeued", []))
    for t in study.trials:
        running = t.state == optuna.trial.TrialState.RUNNING
        interrupted = t.state == optuna.trial.TrialState.FAIL and "number" not in t.user_attrs
        if (running or interrupted) and t.number not in requeued:
            if running:
                study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            study.enqueue_trial(t.params)
            requeued.add(t.number)
    study.set_user_attr("requeued", sorted(requeued))
    for partial in (out / "trials").glob(".*.partial"):
        shutil.rmtree(partial, ignore_errors=True)
    return _study(plan, out), sum(t.state in finished for t in study.trials)


def optimize_share(recipe: str, device: str, out: str, trials: int, time_limit: float | None, worker: int) -> int:
    """One parallel worker (a process, or a Ray task): its share of the trials on the shared study in
    ``out``; returns how many trials it finished."""
    from edgepeft.api.device import load_profile
    from edgepeft.host.manager import default_manager

    manager = default_manager()
    plan = load_plan(Path(recipe), manager)
    study = _study(plan, Path(out), worker)
    search = Search(plan, load_profile(device, manager.devices), manager, Path(out))
    before = len(study.trials)
    study.optimize(search.objective, n_trials=trials, timeout=time_limit)
    return len(study.trials) - before


def run_search(
    plan: SearchPlan,
    profile: DeviceProfile,
    manager: PluginManager,
    out: Path,
    *,
    trials: int | None = None,
    time_limit: float | None = None,
    resume: bool = False,
    workers: int = 1,
    ray_address: str | None = None,
    on_trial: Callable[[TrialResult], None] | None = None,
    progress: Any = None,
) -> list[TrialResult]:
    """Run the search until ``trials`` (default: the recipe's) have finished or ``time_limit`` seconds pass;
    ``out/trials.json`` is rewritten after every trial. With ``workers`` > 1 the trials are shared among
    that many processes, or Ray tasks when ``ray_address`` is given (``"local"`` starts Ray here), all on
    the one study in ``out`` (on a cluster, ``out`` must be on storage every node sees); the first trial
    runs here first, so the teacher is trained once. Returns every finished trial."""
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise ConfigError("edgepeft search needs optuna", fix="pip install 'edgepeft[search]'")
    check_plan(plan, profile, manager)
    out = out.resolve()
    study, previous = open_study(plan, out, resume=resume)
    wanted = (trials or plan.search.trials) - previous

    def record(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        results = results_of(study)
        write_trials(out, plan, profile, results)
        if on_trial is not None and results and results[-1].number == trial.number:
            on_trial(results[-1])

    parallel = workers > 1 or ray_address is not None
    if wanted > 0 and (not parallel or previous == 0):  # in parallel: the first trial here trains the teacher
        first = wanted if not parallel else 1
        study.optimize(
            Search(plan, profile, manager, out, progress).objective,
            n_trials=first,
            timeout=time_limit,
            callbacks=[record],
        )
        wanted -= first
    if wanted > 0 and parallel:
        shares = [wanted // workers + (i < wanted % workers) for i in range(workers)]
        source = str(Path(plan.source).resolve())
        jobs = [(source, profile.name, str(out), n, time_limit, i + 1) for i, n in enumerate(shares) if n]
        if ray_address is not None:
            _on_ray(jobs, ray_address)
        else:
            _on_processes(jobs)
    results = results_of(study)
    write_trials(out, plan, profile, results)
    return results


def _on_processes(jobs: list[tuple]) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
        for done in [pool.submit(optimize_share, *job) for job in jobs]:
            done.result()


def _on_ray(jobs: list[tuple], address: str) -> None:
    import os

    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--ray needs the ray package", where="--ray", fix="pip install 'edgepeft[ray]', or use --workers alone"
        ) from None
    env = {k: v for k, v in os.environ.items() if k.startswith("EDGEPEFT_")}  # device profiles, plugin choices
    ray.init(
        address=None if address == "local" else address,
        num_cpus=len(jobs) if address == "local" else None,
        runtime_env={"env_vars": env},
        ignore_reinit_error=True,
        log_to_driver=False,
    )
    task = ray.remote(num_cpus=1)(optimize_share)
    ray.get([task.remote(*job) for job in jobs])


def write_trials(out: Path, plan: SearchPlan, profile: DeviceProfile, results: list[TrialResult]) -> None:
    front = {r.number for r in pareto(results)}
    chosen = best(results)
    atomic.write_json(
        out / "trials.json",
        {
            "search": plan.name,
            "device": profile.name,
            "objectives": dict(zip(OBJECTIVES, DIRECTIONS, strict=True)),
            "best": chosen.number if chosen else None,
            "trials": [{**dataclasses.asdict(r), "pareto": r.number in front} for r in results],
        },
    )


def plot(results: list[TrialResult], path: Path, title: str) -> bool:
    """Validation accuracy (or score) against file size and against device p95 latency for every completed trial:
    the Pareto front marked, trials that broke a budget crossed, the best one starred; False without any."""
    from matplotlib.figure import Figure

    done = [r for r in results if r.objectives is not None]
    if not done:
        return False
    front, chosen = {r.number for r in pareto(results)}, best(results)
    fig = Figure(figsize=(12, 4.8), constrained_layout=True)
    for ax, (label, x_of) in zip(
        fig.subplots(1, 2),
        (("file size (MB)", lambda r: r.size_mb), ("device p95 latency (ms)", lambda r: r.p95_ms)),
        strict=True,
    ):
        groups = (  # the front last, so a dominated trial at the same point does not hide it
            ("dominated", "o", "tab:gray", [r for r in done if r.number not in front and not r.broke]),
            ("broke a budget", "x", "tab:red", [r for r in done if r.broke]),
            ("on the Pareto front", "o", "tab:blue", [r for r in done if r.number in front and not r.broke]),
        )
        for name, marker, colour, rows in groups:
            if rows:
                ax.scatter(
                    [x_of(r) for r in rows],
                    [r.val_score * 100 for r in rows],
                    marker=marker,
                    color=colour,
                    label=name,
                    s=50,
                    zorder=3,
                )
        if chosen is not None:
            ax.scatter(
                [x_of(chosen)],
                [chosen.val_score * 100],
                marker="*",
                s=260,
                color="gold",
                edgecolor="black",
                label=f"best within budget (trial {chosen.number})",
                zorder=4,
            )
        for r in done:
            ax.annotate(
                str(r.number), (x_of(r), r.val_score * 100), textcoords="offset points", xytext=(4, 4), fontsize=7
            )
        ax.set_xlabel(label)
        ax.set_ylabel("validation accuracy (%)" if done[0].metric == "accuracy" else "validation score x 100")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    with atomic.atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return True

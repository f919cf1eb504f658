"""The search's Optuna study in ``study.db``: seeded, resumed after an interruption, and read back as trials."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from edgepeft.errors import ConfigError
from edgepeft.search.trial import DIRECTIONS, TrialResult

if TYPE_CHECKING:
    import optuna

    from edgepeft.search.space import SearchPlan


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


def seeded_study(plan: SearchPlan, out: Path, worker: int = 0) -> optuna.Study:
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
    study = seeded_study(plan, out)
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
    return seeded_study(plan, out), sum(t.state in finished for t in study.trials)

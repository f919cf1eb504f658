"""Running a search: its trials here, then shared among worker processes or Ray tasks on the one study."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgepeft.errors import ConfigError
from edgepeft.search.objective import Search
from edgepeft.search.report import write_trials
from edgepeft.search.space import check_plan, load_plan
from edgepeft.search.study import open_study, results_of, seeded_study
from edgepeft.search.trial import TrialResult

if TYPE_CHECKING:
    import optuna

    from edgepeft.api.device import DeviceProfile
    from edgepeft.host.manager import PluginManager
    from edgepeft.search.space import SearchPlan


def optimize_share(recipe: str, device: str, out: str, trials: int, time_limit: float | None, worker: int) -> int:
    """One parallel worker (a process, or a Ray task): its share of the trials on the shared study in
    ``out``; returns how many trials it finished."""
    from edgepeft.api.device import load_profile
    from edgepeft.host.manager import default_manager

    manager = default_manager()
    plan = load_plan(Path(recipe), manager)
    study = seeded_study(plan, Path(out), worker)
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

"""What a search leaves besides its runs: ``trials.json`` and the Pareto plot."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from edgepeft.artifacts.trials import Trials
from edgepeft.search.trial import DIRECTIONS, OBJECTIVES, TrialResult, best, pareto
from edgepeft.util import atomic

if TYPE_CHECKING:
    from edgepeft.api.device import DeviceProfile
    from edgepeft.search.space import SearchPlan


def write_trials(out: Path, plan: SearchPlan, profile: DeviceProfile, results: list[TrialResult]) -> None:
    front = {r.number for r in pareto(results)}
    chosen = best(results)
    Trials.current(
        search=plan.name,
        device=profile.name,
        objectives=dict(zip(OBJECTIVES, DIRECTIONS, strict=True)),
        best=chosen.number if chosen else None,
        trials=[{**dataclasses.asdict(r), "pareto": r.number in front} for r in results],
    ).write(out / Trials.FILE)


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

"""Does one multi-task student beat two single-task students of the same total size?

    python bench/multitask.py [--runs runs] [--out bench/results/multitask-<time>]

Trains (or reuses from RUNS) the built-in ``android-recommendation`` recipe: a multi-task student predicting
the rating and the like. Then, for each head, the same recipe on that head alone (``data.options.heads``),
the ``multitask`` technique dropped (a single head has nothing to weigh) and the student's widths (embedding
dims and ranks, tower) scaled so that the two single-task students together have as many parameters as the
multi-task one. Each single-task pipeline trains its own teacher, as a user building two models would.
Every figure is on the held-out later interactions (test split). Writes ``OUT/multitask.json`` and
``OUT/multitask.md``.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edgepeft import atomic
from edgepeft.plugins import PluginManager, default_manager
from edgepeft.recipe import builtin_recipes, read_toml, resolve
from edgepeft.run import Trainer, count_parameters, load_task_data, open_run

RECIPE = "android-recommendation"
HEADS = ("rating", "like")
MAIN = {"rating": "rmse", "like": "auc"}
LOSS_ALLOWED = {"rmse": 0.01, "auc": 0.005}
"""The most the multi-task student may lose on the other head's metric (the issue's tolerance)."""


def scaled_options(options: dict[str, Any], factor: float) -> dict[str, Any]:
    """The recsys options with every width (dims, ranks, tower) scaled by ``factor``, at least 1."""
    out = copy.deepcopy(options)

    def scale(value: int) -> int:
        return max(1, round(value * factor))

    for key in ("dim", "rank"):
        if key in out and out[key] is not None:
            out[key] = scale(out[key])
    for key in ("dims", "ranks"):
        out[key] = {name: scale(v) for name, v in out.get(key, {}).items()}
    out["hidden"] = [scale(h) for h in out.get("hidden", [])]
    return out


def single_task_recipe(recipe: dict[str, Any], head: str, manager: PluginManager, budget: int) -> dict[str, Any]:
    """``recipe`` on ``head`` alone, its student scaled to the parameter count closest to ``budget``."""
    out = copy.deepcopy(recipe)
    out["name"] = f"{RECIPE}-{head}-only"
    out["data"].setdefault("options", {})["heads"] = [head]
    out["techniques"] = [t for t in out["techniques"] if t["name"] != "multitask"]
    resolved = resolve(out, None, out["name"], manager)
    data = load_task_data(manager, resolved, resolved.recipe.seed)
    family = manager.models.get(resolved.recipe.student.model)

    def parameters(factor: float) -> int:
        options = family.Options(**scaled_options(out["student"]["options"], factor))
        return count_parameters(family().build_for(options, data.signature))

    factor = min((f / 100 for f in range(20, 101)), key=lambda f: abs(parameters(f) - budget))
    out["student"]["options"] = scaled_options(out["student"]["options"], factor)
    return out


def trained(recipe: dict[str, Any], manager: PluginManager, runs: Path, console: Console) -> dict[str, Any]:
    """The run's metrics, training it unless ``runs`` holds a finished run of the same recipe."""
    folder = runs / recipe["name"]
    resolved = resolve(recipe, None, recipe["name"], manager)
    if (folder / "metrics.json").is_file():
        run = open_run(folder, manager)
        if run.resolved.to_dict() == resolved.to_dict():
            console.print(f"using the finished run {folder}")
            return run.metrics
    console.print(f"training {recipe['name']} into {folder}")
    with Progress(console=console, transient=True) as progress:
        return Trainer(resolved, manager, runs, progress).run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument(
        "--out", type=Path, default=Path("bench/results") / f"multitask-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    args = parser.parse_args()
    console, manager = Console(), default_manager()
    recipe, _ = read_toml(builtin_recipes()[RECIPE])
    multi = trained(recipe, manager, args.runs, console)
    budget = multi["student"]["parameters"]
    single = {}
    for head in HEADS:
        single[head] = trained(single_task_recipe(recipe, head, manager, budget // 2), manager, args.runs, console)

    rows, verdicts = [], {}
    for head in HEADS:
        metric = MAIN[head]
        multi_value = multi["student"]["test_metrics"][f"{head}.{metric}"]
        single_value = single[head]["student"]["test_metrics"][metric]
        gain = single_value - multi_value if metric == "rmse" else multi_value - single_value
        verdicts[head] = {"metric": metric, "multi": multi_value, "single": single_value, "gain": gain}
        rows.append([f"{head} {metric}", f"{multi_value:.4f}", f"{single_value:.4f}", f"{gain:+.4f}"])
    single_parameters = sum(s["student"]["parameters"] for s in single.values())
    rows.append(["student parameters", f"{budget:,}", f"{single_parameters:,} (both)", ""])
    wins = [h for h in HEADS if verdicts[h]["gain"] > 0]
    holds = {h: verdicts[h]["gain"] >= -LOSS_ALLOWED[MAIN[h]] for h in HEADS}
    beats = any(all(holds[other] for other in HEADS if other != h) for h in wins)
    verdict = (
        f"the multi-task student {'beats' if beats else 'does not beat'} the two single-task students: better on "
        f"{', '.join(wins) or 'no head'}; losses within {LOSS_ALLOWED} on the other: "
        + ", ".join(f"{h} {'yes' if ok else 'no'}" for h, ok in holds.items())
    )

    table = Table("test metric", "multi-task student", "single-task students", "multi-task gain", title=RECIPE)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(verdict)
    args.out.mkdir(parents=True, exist_ok=True)
    header = "| test metric | multi-task student | single-task students | multi-task gain |\n|---|---|---|---|\n"
    markdown = header + "\n".join("| " + " | ".join(r) + " |" for r in rows) + f"\n\n{verdict}\n"
    atomic.write_text(args.out / "multitask.md", markdown)
    atomic.write_json(
        args.out / "multitask.json",
        {
            "multi": multi,
            "single": single,
            "heads": verdicts,
            "beats": beats,
            "single_task_students": {h: s["student"]["parameters"] for h, s in single.items()},
        },
    )
    console.print(f"written: {args.out / 'multitask.md'}")


if __name__ == "__main__":
    main()

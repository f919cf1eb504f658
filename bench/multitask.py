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

from edgepeft import count_parameters
from edgepeft.artifacts.metrics import RunMetrics
from edgepeft.artifacts.recipe import builtin_recipes, read_toml, resolve
from edgepeft.artifacts.run_folder import load_task_data, open_run
from edgepeft.host.manager import PluginManager, default_manager
from edgepeft.train.trainer import Trainer
from edgepeft.util import atomic

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
    out["name"] = f"{recipe['name']}-{head}-only"
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


def trained(recipe: dict[str, Any], manager: PluginManager, runs: Path, console: Console) -> RunMetrics:
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


def compare(recipe: dict[str, Any], manager: PluginManager, runs: Path, console: Console) -> dict[str, Any]:
    """The multi-task student of ``recipe`` against its two single-task students: each head's main test
    metric, the multi-task gain (positive: the multi-task student is better) and the parameter counts."""
    multi = trained(recipe, manager, runs, console)
    budget = multi.student.parameters
    single = {
        head: trained(single_task_recipe(recipe, head, manager, budget // 2), manager, runs, console) for head in HEADS
    }
    heads = {}
    for head in HEADS:
        metric = MAIN[head]
        multi_value = multi.student.test_metrics[f"{head}.{metric}"]
        single_value = single[head].student.test_metrics[metric]
        gain = single_value - multi_value if metric == "rmse" else multi_value - single_value
        heads[head] = {"metric": metric, "multi": multi_value, "single": single_value, "gain": gain}
    parameters = {"multi": budget, **{f"{h}-only": s.student.parameters for h, s in single.items()}}
    return {"seed": recipe["seed"], "heads": heads, "parameters": parameters, "beats": beats(heads)}


def beats(heads: dict[str, dict[str, float]]) -> bool:
    """Better on one head's metric without losing more than the tolerance on the other."""
    holds = {h: heads[h]["gain"] >= -LOSS_ALLOWED[MAIN[h]] for h in HEADS}
    return any(heads[h]["gain"] > 0 and all(holds[o] for o in HEADS if o != h) for h in HEADS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="Recipe seeds (seed 0 is the recipe).")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parser.add_argument("--out", type=Path, default=Path("bench/results") / f"multitask-{stamp}")
    args = parser.parse_args()
    console, manager = Console(), default_manager()
    base, _ = read_toml(builtin_recipes()[RECIPE])
    results = []
    for seed in args.seeds:
        recipe = {**copy.deepcopy(base), "seed": seed, "name": RECIPE if seed == 0 else f"{RECIPE}-seed{seed}"}
        results.append(compare(recipe, manager, args.runs, console))

    header = ["seed", *(f"{h} {MAIN[h]}: multi / single (gain)" for h in HEADS), "parameters: multi / single", "beats"]
    rows = [
        [
            str(r["seed"]),
            *(
                f"{r['heads'][h]['multi']:.4f} / {r['heads'][h]['single']:.4f} ({r['heads'][h]['gain']:+.4f})"
                for h in HEADS
            ),
            f"{r['parameters']['multi']:,} / {r['parameters']['rating-only'] + r['parameters']['like-only']:,}",
            "yes" if r["beats"] else "no",
        ]
        for r in results
    ]
    mean = {h: sum(r["heads"][h]["gain"] for r in results) / len(results) for h in HEADS}
    summary = (
        f"multi-task gain, mean over {len(results)} seed(s): "
        + ", ".join(f"{h} {MAIN[h]} {mean[h]:+.4f}" for h in HEADS)
        + f"; beats the two single-task students (better on one head, within {LOSS_ALLOWED} on the other) in "
        f"{sum(r['beats'] for r in results)} of {len(results)}"
    )
    table = Table(*header, title=f"{RECIPE}: one multi-task student vs two single-task students (test split)")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(summary)
    args.out.mkdir(parents=True, exist_ok=True)
    markdown = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
    markdown += "\n".join("| " + " | ".join(r) + " |" for r in rows) + f"\n\n{summary}\n"
    atomic.write_text(args.out / "multitask.md", markdown)
    atomic.write_json(args.out / "multitask.json", {"seeds": results, "mean_gain": mean})
    console.print(f"written: {args.out / 'multitask.md'}")


if __name__ == "__main__":
    main()

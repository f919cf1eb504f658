"""Every hook is documented with its exact arguments, tested, and the lifecycle hooks fire as described."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import edgepeft
from edgepeft.artifacts.recipe import resolve
from edgepeft.host import hookspecs
from edgepeft.testing import tiny_recipe
from edgepeft.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
SPECS = {name: fn for name, fn in vars(hookspecs).items() if name.startswith("edgepeft_") and callable(fn)}


def test_there_are_hooks():
    assert len(SPECS) >= 9


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_is_documented_with_its_arguments(name):
    docs = (ROOT / "docs" / "hooks.md").read_text()
    args = ", ".join(inspect.signature(SPECS[name]).parameters)
    assert f"### `{name}({args})`" in docs


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_has_a_test(name):
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py") if p.name != "test_hooks.py")
    here = Path(__file__).read_text().split("# -- lifecycle tests", 1)[1]
    assert re.search(rf"def {name}\(", tests + here), f"no test implements {name}"


def test_documented_hooks_all_exist():
    docs = (ROOT / "docs" / "hooks.md").read_text()
    assert set(re.findall(r"### `(edgepeft_\w+)\(", docs)) == set(SPECS)


# -- lifecycle tests


def test_step_hooks_and_run_finished_fire_with_their_state(manager, register_plugin, tmp_path):
    seen: dict[str, list] = {"before": [], "after": [], "epochs": [], "finished": []}

    class Tracker:
        @edgepeft.hookimpl
        def edgepeft_before_step(self, state):
            assert state.loss is None
            seen["before"].append((state.phase, state.epoch, state.step))

        @edgepeft.hookimpl
        def edgepeft_after_step(self, state):
            seen["after"].append((state.phase, state.step, dict(state.loss_terms), state.loss))

        @edgepeft.hookimpl
        def edgepeft_after_epoch(self, state):
            seen["epochs"].append((state.phase, state.epoch, state.epochs, state.val_score))

        @edgepeft.hookimpl
        def edgepeft_run_finished(self, run_dir, metrics):
            seen["finished"].append((run_dir, metrics["student"]["test_score"]))

    register_plugin(Tracker(), "tracker")
    recipe = tiny_recipe(name="hooks")
    recipe["teacher"]["epochs"], recipe["student"]["epochs"] = 1, 2
    Trainer(resolve(recipe, None, "hooks", manager), manager, tmp_path).run()
    steps_per_epoch = -(-1169 // 64)
    phases = [p for p, *_ in seen["before"]]
    assert phases.count("teacher") == steps_per_epoch and phases.count("student") == 2 * steps_per_epoch
    assert [s for p, _, s in seen["before"] if p == "student"] == list(range(1, 2 * steps_per_epoch + 1))
    student_after = [a for a in seen["after"] if a[0] == "student"]
    assert set(student_after[0][2]) == {"task", "distill"}
    assert student_after[0][3] == pytest.approx(sum(student_after[0][2].values()), rel=1e-5)
    assert [e[:3] for e in seen["epochs"]] == [("teacher", 1, 1), ("student", 1, 2), ("student", 2, 2)]
    assert all(0 < e[3] <= 1 for e in seen["epochs"])
    assert seen["finished"] == [(tmp_path / "hooks", pytest.approx(seen["finished"][0][1]))]


def test_raising_in_after_step_stops_training_naming_the_plugin(manager, register_plugin, tmp_path):
    class Policy:
        @edgepeft.hookimpl
        def edgepeft_after_step(self, state):
            if state.step == 3:
                raise ValueError("budget exceeded")

    register_plugin(Policy(), "policy")
    with pytest.raises(edgepeft.PluginError, match=r"'policy' raised ValueError in hook edgepeft_after_step"):
        Trainer(resolve(tiny_recipe(name="stop"), None, "stop", manager), manager, tmp_path).run()


def test_plugin_commands_appear_in_the_cli(manager, register_plugin):
    import typer
    from typer.testing import CliRunner

    class Commands:
        @edgepeft.hookimpl
        def edgepeft_register_commands(self, app):
            @app.command("hello-plugin")
            def hello() -> None:
                typer.echo("hello from a plugin")

    register_plugin(Commands(), "commands")
    app = typer.Typer()
    app.command("noop")(lambda: None)
    manager.call("edgepeft_register_commands", app=app)
    result = CliRunner().invoke(app, ["hello-plugin"])
    assert result.exit_code == 0 and result.output.strip() == "hello from a plugin"

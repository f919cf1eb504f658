"""Run folders: replaced whole or not at all, the teacher cache, and damaged runs read back."""

from __future__ import annotations

import json
import shutil

import pytest

import edgepeft
from edgepeft.artifacts.recipe import resolve
from edgepeft.artifacts.run_folder import open_run
from edgepeft.host.manager import default_manager
from edgepeft.testing import tiny_recipe
from edgepeft.train.trainer import Trainer


def _train(manager, folder, name="r", **changes):
    recipe = tiny_recipe(name=name)
    recipe["teacher"]["epochs"] = recipe["student"]["epochs"] = 1
    for section, values in changes.items():
        recipe[section].update(values)
    return Trainer(resolve(recipe, None, name, manager), manager, folder).run()


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A runs folder holding the tiny run ``r`` and its teacher cache, trained once for this module."""
    folder = tmp_path_factory.mktemp("runs")
    _train(default_manager(), folder)
    return folder


@pytest.fixture
def trained(first_run, tmp_path):
    """A copy of the module's run ``r`` (with the teacher cache beside it) in ``tmp_path``, for a test to change."""
    shutil.copytree(first_run, tmp_path, dirs_exist_ok=True)
    return tmp_path / "r"


def test_a_failed_retrain_leaves_the_previous_run_intact_and_its_log_in_the_partial_folder(manager, trained, tmp_path):
    before = {p.relative_to(trained): p.read_bytes() for p in trained.rglob("*") if p.is_file()}
    with pytest.raises(
        edgepeft.TrainingError, match=r"loss became nan at step \d+ .* student; the last good checkpoint"
    ):
        _train(manager, tmp_path, teacher={"options": {"channels": [8, 16], "hidden": 48}}, student={"lr": 1e30})
    after = {p.relative_to(trained): p.read_bytes() for p in trained.rglob("*") if p.is_file()}
    assert after == before
    assert "teacher: best epoch" in (tmp_path / ".r.partial" / "train.log").read_text()
    assert (tmp_path / ".r.partial" / "checkpoint.pt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.partial", ".teachers", "r"]


def test_teacher_cache_follows_the_data_section(manager, trained, tmp_path):
    _train(manager, tmp_path)
    assert "reusing the cached teacher" in (trained / "train.log").read_text()
    _train(manager, tmp_path, data={"batch_size": 32})
    assert "reusing the cached teacher" not in (trained / "train.log").read_text()


def test_another_recipe_with_the_same_teacher_and_data_reuses_the_teacher(manager, trained, tmp_path):
    _train(manager, tmp_path, name="other", student={"epochs": 2})
    log = (tmp_path / "other" / "train.log").read_text()
    assert "reusing the cached teacher in" in log and ".teachers" in log and "teacher: best epoch" not in log
    first, second = (json.loads((tmp_path / n / "metrics.json").read_text())["teacher"] for n in ("r", "other"))
    assert first == second


def test_a_damaged_cached_teacher_is_trained_again(manager, trained, tmp_path):
    weights = trained / "teacher" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    _train(manager, tmp_path)
    log = (trained / "train.log").read_text()
    assert "cached teacher cannot be loaded" in log and "teacher: best epoch" in log
    open_run(trained, manager).student(manager)


@pytest.mark.parametrize("content", ["{}", '{"dataset": {"fingerprint": 3}, "teacher": {"test_score": "x"}}', "{"])
def test_damaged_metrics_is_an_artifact_error(manager, trained, content):
    (trained / "metrics.json").write_text(content)
    with pytest.raises(edgepeft.ArtifactError, match=r"metrics\.json is damaged"):
        open_run(trained, manager)


def test_damaged_model_spec_is_one_line(manager, trained):
    spec = trained / "student" / "model.json"
    spec.write_text(json.dumps({**json.loads(spec.read_text()), "num_classes": "ten"}))
    with pytest.raises(edgepeft.ArtifactError) as error:
        open_run(trained, manager).student(manager)
    assert "invalid model spec: num_classes:" in error.value.message and "\n" not in error.value.message


def test_missing_optional_package_for_a_dataset_says_how_to_install(manager, register_plugin, tmp_path):
    class Needs(edgepeft.Dataset):
        name = "needs-extra"
        requires = ("a_package_that_is_not_installed",)
        install_hint = "pip install 'edgepeft[extra]'"

        def load(self, options, seed):
            raise AssertionError("must not be called")

    class Plugin:
        @edgepeft.hookimpl
        def edgepeft_register_datasets(self, register):
            register(Needs)

    register_plugin(Plugin(), "needs")
    recipe = tiny_recipe(name="n", data={"dataset": "needs-extra", "batch_size": 8})
    with pytest.raises(edgepeft.DataError, match=r"'needs-extra' cannot be loaded here: missing .*edgepeft\[extra\]"):
        Trainer(resolve(recipe, None, "n", manager), manager, tmp_path).run()

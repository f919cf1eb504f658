"""Recipes: the default validates; mistakes are errors naming file, line and key."""

from __future__ import annotations

import pytest

from edgepeft.artifacts.recipe import default_recipe_path, load_recipe
from edgepeft.errors import ConfigError, UnknownNameError
from edgepeft.testing import tiny_recipe, write_recipe


def test_default_recipe_resolves_with_defaults_filled_in(manager):
    resolved = load_recipe(default_recipe_path(), manager)
    assert resolved.recipe.name == "digits-distill"
    assert [t.name for t in resolved.techniques] == ["distill"]
    as_dict = resolved.to_dict()
    assert as_dict["student"]["options"]["dropout"] == 0.0  # default written out
    distill = {"temperature": 4.0, "alpha": 0.7, "head_alpha": {}, "hidden": 0.0, "attention": 0.0, "layer_map": {}}
    assert as_dict["techniques"] == [{"name": "distill", **distill}]


def _load(tmp_path, manager, text: str):
    path = tmp_path / "r.toml"
    path.write_text(text)
    return load_recipe(path, manager), path


BASE = """\
name = "r"

[data]
dataset = "digits"

[teacher]
model = "cnn"
epochs = 2

[student]
model = "cnn"
epochs = 2

[[techniques]]
name = "distill"
alpha = 0.5
"""


def test_unknown_key_in_a_section(tmp_path, manager):
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, manager, BASE.replace("epochs = 2\n\n[student]", "epochz = 2\n\n[student]"))
    assert "r.toml:8: teacher.epochz: unknown key" in e.value.message
    assert "allowed here: model, options, epochs, lr, weight_decay" in e.value.message


def test_unknown_technique_option_points_at_its_line(tmp_path, manager):
    with pytest.raises(ConfigError, match=r"r\.toml:17: techniques\.0\.temprature: unknown key.*temperature, alpha"):
        _load(tmp_path, manager, BASE + "temprature = 2\n")


def test_wrong_type(tmp_path, manager):
    with pytest.raises(ConfigError, match=r"r\.toml:16: techniques\.0\.alpha: .*less than or equal to 1"):
        _load(tmp_path, manager, BASE.replace("alpha = 0.5", "alpha = 1.5"))
    with pytest.raises(ConfigError, match=r"r\.toml:12: student\.epochs: .*integer"):
        _load(tmp_path, manager, BASE.replace("epochs = 2\n\n[[", 'epochs = "many"\n\n[['))


def test_unknown_names_suggest(tmp_path, manager):
    with pytest.raises(UnknownNameError, match=r"r\.toml:4: unknown dataset 'digit'.*Did you mean 'digits'"):
        _load(tmp_path, manager, BASE.replace('dataset = "digits"', 'dataset = "digit"'))
    with pytest.raises(UnknownNameError, match=r"r\.toml:15: unknown technique 'distil'.*Did you mean 'distill'"):
        _load(tmp_path, manager, BASE.replace('name = "distill"', 'name = "distil"'))


def test_model_options_are_validated(tmp_path, manager):
    with pytest.raises(ConfigError, match=r"r\.toml:\d+: student\.options\.width: unknown key.*channels, hidden"):
        _load(tmp_path, manager, BASE.replace("[[techniques]]", "[student.options]\nwidth = 3\n\n[[techniques]]"))


def test_missing_file_and_bad_toml(tmp_path, manager):
    with pytest.raises(ConfigError, match=r"nope\.toml: file not found"):
        load_recipe(tmp_path / "nope.toml", manager)
    with pytest.raises(ConfigError, match=r"r\.toml: not valid TOML.*line 1"):
        _load(tmp_path, manager, "name = = 1\n")


def test_tiny_recipe_helper_round_trips(tmp_path, manager):
    path = write_recipe(tmp_path / "tiny.toml", tiny_recipe())
    assert load_recipe(path, manager).recipe.teacher.epochs == 3


def test_wrong_scalar_types_and_ranges_are_errors(tmp_path, manager):
    with pytest.raises(ConfigError, match=r"r\.toml:8: teacher\.epochs: .*integer"):
        _load(tmp_path, manager, BASE.replace("epochs = 2\n\n[student]", 'epochs = "2"\n\n[student]'))
    with pytest.raises(ConfigError, match=r"r\.toml:1: seed: .*greater than or equal to 0"):
        _load(tmp_path, manager, "seed = -5\n" + BASE)
    with pytest.raises(ConfigError, match=r"student\.options\.channels\.0: .*greater than 0"):
        _load(tmp_path, manager, BASE.replace("[[techniques]]", "[student.options]\nchannels = [0]\n\n[[techniques]]"))


def test_a_technique_listed_for_the_wrong_model_names_the_line(manager, tmp_path):
    student_lora = write_recipe(tmp_path / "a.toml", tiny_recipe(techniques=[{"name": "lora"}]))
    with pytest.raises(ConfigError, match="technique 'lora' does not apply to the student") as info:
        load_recipe(student_lora, manager)
    assert "a.toml:" in str(info.value) and "[[teacher.techniques]]" in info.value.fix
    recipe = tiny_recipe()
    recipe["teacher"]["techniques"] = [{"name": "distill"}]
    with pytest.raises(ConfigError, match="technique 'distill' does not apply to the teacher"):
        load_recipe(write_recipe(tmp_path / "b.toml", recipe), manager)

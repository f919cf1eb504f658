"""A search recipe's ``[search]`` table: the space of settings, read and checked against the recipe, and one
trial's settings sampled from it and written into the base recipe."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, StrictInt, ValidationError, field_validator, model_validator

from edgepeft.errors import ConfigError
from edgepeft.util.validation import StrictModel, parse, read_toml, toml_line

if TYPE_CHECKING:
    import optuna

    from edgepeft.api.device import DeviceProfile
    from edgepeft.host.manager import PluginManager


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

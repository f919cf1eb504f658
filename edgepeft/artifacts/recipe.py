"""Recipes: what to train (data, teacher, student, techniques), read from TOML and validated."""

from __future__ import annotations

import dataclasses
import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from edgepeft.api.technique import Technique
from edgepeft.errors import ConfigError
from edgepeft.util.validation import StrictModel, parse, read_toml, toml_line

if TYPE_CHECKING:
    from edgepeft.host.manager import PluginManager

DEFAULT_RECIPE = "digits-distill.toml"


class DataSection(StrictModel):
    dataset: str
    batch_size: int = Field(64, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)


class ModelSection(StrictModel):
    model: str
    options: dict[str, Any] = Field(default_factory=dict)
    epochs: int = Field(gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)


class TechniqueSection(BaseModel):
    """``[[techniques]]``: ``name`` picks the plugin; the other keys are its options."""

    model_config = ConfigDict(extra="allow")
    name: str


class TeacherSection(ModelSection):
    techniques: list[TechniqueSection] = Field(
        default_factory=list, description="Techniques that shape the teacher's training, e.g. lora."
    )


class Recipe(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Run folder name.")
    description: str = ""
    seed: int = Field(0, ge=0)
    data: DataSection
    teacher: TeacherSection
    student: ModelSection
    techniques: list[TechniqueSection] = Field(default_factory=list)
    search: dict[str, Any] | None = Field(None, description="Read by `edgepeft search`; training ignores it.")


@dataclass
class ResolvedRecipe:
    """A recipe whose plugin names exist and whose plugin options are validated (defaults filled in)."""

    recipe: Recipe
    source: str
    data_options: BaseModel
    teacher_options: BaseModel
    student_options: BaseModel
    techniques: list[Technique]
    teacher_techniques: list[Technique] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as it ran, every default written out (saved as the run's ``recipe.toml``)."""
        out = self.recipe.model_dump(mode="json", exclude={"techniques", "search"})
        # TOML has no null: an unset optional key is left out, which reads back as the same default.
        out["data"]["options"] = self.data_options.model_dump(mode="json", exclude_none=True)
        out["teacher"]["options"] = self.teacher_options.model_dump(mode="json", exclude_none=True)
        out["teacher"].pop("techniques")
        if self.teacher_techniques:  # left out when empty: a plain teacher's cache key stays as it was
            out["teacher"]["techniques"] = _dump(self.teacher_techniques)
        out["student"]["options"] = self.student_options.model_dump(mode="json", exclude_none=True)
        out["techniques"] = _dump(self.techniques)
        return out


def _dump(techniques: list[Technique]) -> list[dict[str, Any]]:
    return [{"name": t.name, **t.options.model_dump(mode="json", exclude_none=True)} for t in techniques]


def with_data_dir(resolved: ResolvedRecipe, folder: Path, manager: PluginManager) -> ResolvedRecipe:
    """``resolved`` reading its data set from ``folder`` (``edgepeft train --data-dir``)."""
    dataset = manager.datasets.get(resolved.recipe.data.dataset)
    if dataset.folder_option is None:
        raise ConfigError(
            f"data set {dataset.name!r} does not read from a folder",
            where="--data-dir",
            fix="Drop --data-dir; set the data set's own options under [data.options] in the recipe",
        )
    options = dataset.Options.model_validate({**resolved.data_options.model_dump(), dataset.folder_option: str(folder)})
    return dataclasses.replace(resolved, data_options=options)


def default_recipe_path() -> Path:
    return Path(str(importlib.resources.files("edgepeft.recipes") / DEFAULT_RECIPE))


def builtin_recipes() -> dict[str, Path]:
    """The recipes shipped with edgepeft, by name (``edgepeft train realtime-vision``)."""
    folder = importlib.resources.files("edgepeft.recipes")
    return {p.name.removesuffix(".toml"): Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def find_recipe(given: Path) -> Path:
    """``given`` when it is a file, else the built-in recipe of that name (the file's error otherwise)."""
    if given.exists() or given.suffix:
        return given
    return builtin_recipes().get(str(given), given)


def resolve(data: dict[str, Any], text: str | None, source: str, manager: PluginManager) -> ResolvedRecipe:
    """Validate a parsed recipe against the schema and the options of the plugins it names."""
    recipe = parse(Recipe, data, source, text)

    def where(*loc: str | int) -> str:
        line = toml_line(text, loc) if text else None
        return f"{source}:{line}" if line else source

    dataset = manager.datasets.get(recipe.data.dataset, where=where("data", "dataset"))
    teacher = manager.models.get(recipe.teacher.model, where=where("teacher", "model"))
    student = manager.models.get(recipe.student.model, where=where("student", "model"))

    def techniques_of(sections: list[TechniqueSection], *at: str) -> list[Technique]:
        out = []
        teacher = at[0] == "teacher"
        for i, section in enumerate(sections):
            cls = manager.techniques.get(section.name, where=where(*at, i, "name"))
            if not (cls.for_teacher if teacher else cls.for_student):
                other = "[[techniques]] (the student's)" if teacher else "[[teacher.techniques]]"
                raise ConfigError(
                    f"technique {cls.name!r} does not apply to the {'teacher' if teacher else 'student'}",
                    where=where(*at, i, "name"),
                    fix=f"List it under {other}",
                )
            out.append(cls(parse(cls.Options, section.model_extra or {}, source, text, prefix=(*at, i))))
        return out

    return ResolvedRecipe(
        recipe=recipe,
        source=source,
        data_options=parse(dataset.Options, recipe.data.options, source, text, prefix=("data", "options")),
        teacher_options=parse(teacher.Options, recipe.teacher.options, source, text, prefix=("teacher", "options")),
        student_options=parse(student.Options, recipe.student.options, source, text, prefix=("student", "options")),
        techniques=techniques_of(recipe.techniques, "techniques"),
        teacher_techniques=techniques_of(recipe.teacher.techniques, "teacher", "techniques"),
    )


def load_recipe(path: Path, manager: PluginManager) -> ResolvedRecipe:
    data, text = read_toml(path)
    return resolve(data, text, str(path), manager)

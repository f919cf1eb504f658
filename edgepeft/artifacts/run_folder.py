"""The run folder `edgepeft train` writes and later stages read: file names, saving and loading a model,
reading a finished run back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from edgepeft.api.dataset import TaskData
from edgepeft.api.model import ModelSpec
from edgepeft.artifacts.metrics import RunMetrics
from edgepeft.artifacts.recipe import ResolvedRecipe, resolve
from edgepeft.errors import (
    ArtifactError,
    ConfigError,
    DataError,
    EdgepeftError,
)
from edgepeft.util import atomic
from edgepeft.util.validation import parse, read_toml

if TYPE_CHECKING:
    import torch

    from edgepeft.host.manager import PluginManager

WEIGHTS = "model.safetensors"
SPEC = "model.json"
METRICS = RunMetrics.FILE
RECIPE = "recipe.toml"
LOG = "train.log"
CHECKPOINT = "checkpoint.pt"
FINGERPRINT = "fingerprint.txt"
PROGRESS = "progress.json"
TECHNIQUES = "techniques.json"
"""What the teacher's techniques reported (e.g. lora's trainable share), kept with the cached teacher."""
STAGES = "stages"
TEACHERS = ".teachers"


def save_model(model: torch.nn.Module, spec: ModelSpec, directory: Path) -> None:
    """Weights as safetensors plus the spec that rebuilds the module, each written atomically."""
    from safetensors.torch import save_model as save_safetensors

    with atomic.atomic_file(directory / WEIGHTS) as tmp:
        save_safetensors(model, str(tmp))
    atomic.write_json(directory / SPEC, spec.model_dump(mode="json"))


def load_model(directory: Path, manager: PluginManager) -> tuple[torch.nn.Module, ModelSpec]:
    """Rebuild a saved model from its spec and load its safetensors weights (no pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model as load_safetensors

    spec_path, weights_path = directory / SPEC, directory / WEIGHTS
    for path in (spec_path, weights_path):
        if not path.is_file():
            raise ArtifactError(f"missing {path.name}", where=str(directory), fix="Run `edgepeft train` to create it")
    try:
        spec = ModelSpec.model_validate_json(spec_path.read_text())
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(file)"
        raise ArtifactError(
            f"invalid model spec: {key}: {first['msg']}",
            where=str(spec_path),
            fix="The file is damaged; retrain with `edgepeft train`",
        ) from None
    family = manager.models.get(spec.family, where=str(spec_path))
    options = parse(family.Options, spec.options, spec_path, None, prefix=("options",))
    if "pretrained" in family.Options.model_fields:  # the saved weights replace any pretrained ones
        options = options.model_copy(update={"pretrained": False})
    model = family().build_for(options, spec.signature())
    for edit in spec.edits:
        technique = manager.techniques.get(edit.technique, where=str(spec_path))
        try:
            model = technique.rebuild(model, edit.record)
        except EdgepeftError:
            raise
        except Exception as exc:
            raise ArtifactError(
                f"technique {edit.technique!r} cannot rebuild the architecture it recorded: "
                f"{type(exc).__name__}: {exc}",
                where=str(spec_path),
                fix="The file is damaged, or the model family or plugin changed since training; retrain with "
                "`edgepeft train`",
            ) from None
    try:
        load_safetensors(model, str(weights_path), strict=True)
    except (SafetensorError, RuntimeError, OSError) as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines()[:2]).rstrip(".")
        raise ArtifactError(
            f"cannot load the weights: {detail}",
            where=str(weights_path),
            fix="The file is corrupt or belongs to another model; retrain with `edgepeft train`",
        ) from None
    model.eval()
    return model, spec


def partial_dir(run_dir: Path) -> Path:
    """Where a run is built (and an interrupted one waits to be resumed): ``runs/.<name>.partial/``."""
    return run_dir.with_name(f".{run_dir.name}.partial")


def resume_recipe(run: Path, manager: PluginManager) -> tuple[ResolvedRecipe, Path]:
    """The recipe of the interrupted run ``run`` (``runs/<name>`` or its partial folder) and its runs folder."""
    run = Path(run)
    name = run.name.removeprefix(".").removesuffix(".partial")
    work = partial_dir(run.with_name(name))
    if not (work / RECIPE).is_file():
        raise ConfigError(
            f"there is no interrupted run of {name!r} to resume (no {work / RECIPE})",
            where="--resume",
            fix="Pass the run folder of a run that was interrupted, e.g. runs/digits-distill",
        )
    data, text = read_toml(work / RECIPE)
    return resolve(data, text, str(work / RECIPE), manager), work.parent


def load_task_data(manager: PluginManager, resolved: ResolvedRecipe, seed: int) -> TaskData:
    """The recipe's data set, split with ``seed`` and checked; a missing optional package says how to get it."""
    cls = manager.datasets.get(resolved.recipe.data.dataset)
    reason = cls.unavailable_reason()
    if reason:
        raise DataError(f"data set {cls.name!r} cannot be loaded here: {reason}")
    data = cls().load(resolved.data_options, seed)
    data.check()
    return data


@dataclass
class Run:
    """A finished run folder, read back: its recipe, metrics and data set."""

    path: Path
    resolved: ResolvedRecipe
    metrics: RunMetrics

    @property
    def name(self) -> str:
        return self.resolved.recipe.name

    def student(self, manager: PluginManager) -> tuple[torch.nn.Module, ModelSpec]:
        return load_model(self.path / "student", manager)

    def data(self, manager: PluginManager) -> TaskData:
        """The run's data set and split, checked to be exactly the one it was trained on."""
        data = load_task_data(manager, self.resolved, self.resolved.recipe.seed)
        if data.fingerprint() != self.metrics.dataset.fingerprint:
            raise DataError(
                "the data set differs from the one this run was trained on (fingerprint mismatch)",
                where=str(self.path),
                fix="Restore the original data, or retrain with `edgepeft train`",
            )
        return data


def open_run(path: Path, manager: PluginManager, runs_dir: Path = Path("runs")) -> Run:
    """Read a run folder given as a path or as a run name under ``runs_dir``."""
    path = Path(path)
    if not path.is_dir() and (runs_dir / path).is_dir():
        path = runs_dir / path
    for name in (METRICS, RECIPE):
        if not (path / name).is_file():
            raise ArtifactError(
                f"not a finished run folder (no {name})",
                where=str(path),
                fix="Pass a folder written by `edgepeft train`, e.g. runs/digits-distill",
            )
    metrics = RunMetrics.read(path / METRICS)
    data, text = read_toml(path / RECIPE)
    resolved = resolve(data, text, str(path / RECIPE), manager)
    return Run(path=path, resolved=resolved, metrics=metrics)

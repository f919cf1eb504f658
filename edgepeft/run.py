"""`edgepeft train`: teacher, then student with techniques; writes a run folder that later stages read."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from edgepeft import atomic
from edgepeft.data import TaskData
from edgepeft.errors import ArtifactError, ConfigError, DataError
from edgepeft.models import ModelSpec
from edgepeft.recipe import ModelSection, ResolvedRecipe, resolve
from edgepeft.train import FitResult, StepState, TrainContext, accuracy, fit, predict
from edgepeft.validation import parse, read_toml

if TYPE_CHECKING:
    import torch

    from edgepeft.plugins import PluginManager
    from edgepeft.technique import Technique

log = logging.getLogger("edgepeft.run")

WEIGHTS = "model.safetensors"
SPEC = "model.json"
METRICS = "metrics.json"
RECIPE = "recipe.toml"
LOG = "train.log"


@dataclass
class ModelReport:
    """Held-out figures for one trained model."""

    test_accuracy: float
    val_accuracy: float
    parameters: int
    size_bytes: int


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


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
    except ValueError as exc:
        raise ArtifactError(f"invalid model spec: {exc}", where=str(spec_path)) from None
    family = manager.models.get(spec.family, where=str(spec_path))
    options = parse(family.Options, spec.options, spec_path, None, prefix=("options",))
    model = family().build(options, tuple(spec.input_shape), spec.num_classes)
    try:
        load_safetensors(model, str(weights_path), strict=True)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise ArtifactError(
            f"cannot load the weights: {str(exc).splitlines()[0]}",
            where=str(weights_path),
            fix="The file is corrupt or belongs to another model; retrain with `edgepeft train`",
        ) from None
    model.eval()
    return model, spec


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Trainer:
    """Runs a resolved recipe: trains (or reuses) the teacher, then the student, and writes the run."""

    def __init__(self, resolved: ResolvedRecipe, manager: PluginManager, runs_dir: Path, progress: Any = None):
        self.resolved = resolved
        self.recipe = resolved.recipe
        self.manager = manager
        self.run_dir = Path(runs_dir) / self.recipe.name
        self.progress = progress

    def _on_step(self, hook: str, state: StepState) -> None:
        self.manager.call(hook, state=state)

    def _build(self, section: ModelSection, options: Any, data: TaskData, seed: int) -> torch.nn.Module:
        import torch

        torch.manual_seed(seed)
        family = self.manager.models.get(section.model)
        return family().build(options, data.input_shape, data.num_classes)

    def _report(self, model: torch.nn.Module, data: TaskData, directory: Path) -> ModelReport:
        return ModelReport(
            test_accuracy=accuracy(predict(model, data.test.x), data.test.y),
            val_accuracy=accuracy(predict(model, data.validation.x), data.validation.y),
            parameters=count_parameters(model),
            size_bytes=(directory / WEIGHTS).stat().st_size,
        )

    def _spec(self, section: ModelSection, options: Any, data: TaskData, model: torch.nn.Module) -> ModelSpec:
        return ModelSpec(
            family=section.model,
            options=options.model_dump(mode="json"),
            input_shape=list(data.input_shape),
            num_classes=data.num_classes,
            parameters=count_parameters(model),
        )

    def teacher(self, data: TaskData, ctx: TrainContext) -> torch.nn.Module:
        """The trained teacher, reused from the run folder when recipe, data and seed are unchanged."""
        section, options = self.recipe.teacher, self.resolved.teacher_options
        directory = self.run_dir / "teacher"
        key = _fingerprint(
            section.model_dump(mode="json"), options.model_dump(mode="json"), data.fingerprint(), ctx.seed
        )
        key_file = directory / "fingerprint.txt"
        if key_file.is_file() and key_file.read_text().strip() == key:
            model, _ = load_model(directory, self.manager)
            log.info("reusing the cached teacher in %s", directory)
            return model
        model = self._build(section, options, data, ctx.seed)
        self._train("teacher", model, section, ctx)
        save_model(model, self._spec(section, options, data, model), directory)
        atomic.write_text(key_file, key + "\n")
        return model

    def _train(
        self,
        phase: str,
        model: torch.nn.Module,
        section: ModelSection,
        ctx: TrainContext,
        techniques: Sequence[Technique] = (),
    ) -> FitResult:
        result = fit(
            model,
            ctx,
            phase=phase,
            epochs=section.epochs,
            lr=section.lr,
            weight_decay=section.weight_decay,
            techniques=techniques,
            on_step=self._on_step,
            progress=self.progress,
        )
        log.info("%s: best epoch %d, validation accuracy %.4f", phase, result.best_epoch, result.best_val_accuracy)
        return result

    def run(self) -> dict[str, Any]:
        """Train everything and write the run folder; returns the metrics written to metrics.json."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.run_dir / LOG, mode="w", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger = logging.getLogger("edgepeft")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            return self._run()
        finally:
            logger.removeHandler(handler)
            handler.close()

    def _run(self) -> dict[str, Any]:
        dataset_cls = self.manager.datasets.get(self.recipe.data.dataset)
        log.info("loading data set %s", dataset_cls.name)
        data = dataset_cls().load(self.resolved.data_options, self.recipe.seed)
        data.check()
        ctx = TrainContext(data=data, teacher=None, batch_size=self.recipe.data.batch_size, seed=self.recipe.seed)
        teacher = self.teacher(data, ctx)
        ctx.teacher = teacher

        section, options = self.recipe.student, self.resolved.student_options
        student = self._build(section, options, data, self.recipe.seed + 1)
        for technique in self.resolved.techniques:
            student = technique.transform(student, ctx)
        for technique in self.resolved.techniques:
            technique.setup(ctx)
        result = self._train("student", student, section, ctx, self.resolved.techniques)
        save_model(student, self._spec(section, options, data, student), self.run_dir / "student")

        reports = {
            "teacher": self._report(teacher, data, self.run_dir / "teacher"),
            "student": self._report(student, data, self.run_dir / "student"),
        }
        metrics = {
            "task": "classification",
            "metric": "accuracy",
            "dataset": {
                "name": data.name,
                "fingerprint": data.fingerprint(),
                "sizes": {"train": len(data.train), "validation": len(data.validation), "test": len(data.test)},
            },
            "seed": self.recipe.seed,
            **{name: vars(report) for name, report in reports.items()},
            "compression": reports["teacher"].parameters / reports["student"].parameters,
            "accuracy_retention": reports["student"].test_accuracy / reports["teacher"].test_accuracy,
            "student_history": result.history,
        }
        atomic.write_text(self.run_dir / RECIPE, tomli_w.dumps(self.resolved.to_dict()))
        atomic.write_json(self.run_dir / METRICS, metrics)
        self.manager.call("edgepeft_run_finished", run_dir=self.run_dir, metrics=metrics)
        return metrics


@dataclass
class Run:
    """A finished run folder, read back: its recipe, metrics and data set."""

    path: Path
    resolved: ResolvedRecipe
    metrics: dict[str, Any]

    @property
    def name(self) -> str:
        return self.resolved.recipe.name

    def student(self, manager: PluginManager) -> tuple[torch.nn.Module, ModelSpec]:
        return load_model(self.path / "student", manager)

    def data(self, manager: PluginManager) -> TaskData:
        """The run's data set and split, checked to be exactly the one it was trained on."""
        recipe = self.resolved.recipe
        data = manager.datasets.get(recipe.data.dataset)().load(self.resolved.data_options, recipe.seed)
        if data.fingerprint() != self.metrics["dataset"]["fingerprint"]:
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
    if not (path / METRICS).is_file():
        raise ConfigError(
            "not a finished run folder (no metrics.json)",
            where=str(path),
            fix="Pass a folder written by `edgepeft train`, e.g. runs/digits-distill",
        )
    data, text = read_toml(path / RECIPE)
    resolved = resolve(data, text, str(path / RECIPE), manager)
    return Run(path=path, resolved=resolved, metrics=json.loads((path / METRICS).read_text()))

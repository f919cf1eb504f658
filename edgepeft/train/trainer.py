"""`edgepeft train`: teacher, then student with techniques; writes a run folder that later stages read."""

from __future__ import annotations

import itertools
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tomli_w

from edgepeft.api import tasks
from edgepeft.api.context import FineTuner, FitResult, StepState, TrainContext
from edgepeft.api.dataset import TaskData
from edgepeft.api.model import ModelEdit
from edgepeft.api.tasks import primary_metrics
from edgepeft.api.technique import count_parameters
from edgepeft.artifacts.metrics import ModelReport, RunMetrics
from edgepeft.artifacts.recipe import ModelSection, ResolvedRecipe
from edgepeft.artifacts.run_folder import (
    CHECKPOINT,
    LOG,
    METRICS,
    PROGRESS,
    RECIPE,
    STAGES,
    TECHNIQUES,
    WEIGHTS,
    load_model,
    load_task_data,
    partial_dir,
    save_model,
)
from edgepeft.errors import (
    ArtifactError,
    ConfigError,
    DataError,
    TrainingError,
    TrainingInterrupted,
)
from edgepeft.train import distributed
from edgepeft.train.loop import Checkpointer, evaluate, fit, predict, score, stop_on_signals
from edgepeft.train.models import apply_techniques, model_spec
from edgepeft.train.teacher_cache import TeacherCache, teacher_key
from edgepeft.util import atomic, interrupts

if TYPE_CHECKING:
    import torch

    from edgepeft.api.technique import Technique
    from edgepeft.host.manager import PluginManager

log = logging.getLogger("edgepeft.run")


class Trainer:
    """Runs a resolved recipe: trains (or reuses) the teacher, then the student, and writes the run."""

    def __init__(
        self,
        resolved: ResolvedRecipe,
        manager: PluginManager,
        runs_dir: Path,
        progress: Any = None,
        device: str = "cpu",
        *,
        checkpoint_every: int = 50,
        resume: bool = False,
    ):
        self.device = device
        self.resume = resume
        self.resolved = resolved
        self.recipe = resolved.recipe
        self.manager = manager
        self.run_dir = Path(runs_dir) / self.recipe.name
        self.progress = progress
        self.checkpoint = Checkpointer(partial_dir(self.run_dir) / CHECKPOINT, checkpoint_every)

    def _on_step(self, hook: str, state: StepState) -> None:
        if distributed.is_main():  # under torchrun, plugins see each step once, from rank 0
            self.manager.call(hook, state=state)

    def _build(self, section: ModelSection, options: Any, data: TaskData, seed: int) -> torch.nn.Module:
        import torch

        torch.manual_seed(seed)
        family = self.manager.models.get(section.model)
        family().check_data(options, data)
        model = family().build_for(options, data.signature)
        with torch.no_grad():
            shape = tuple(model.eval()(torch.zeros(2, *data.input_shape)).shape)
        if shape != (2, data.num_classes):
            wants = f"{data.num_classes} classes" if data.is_classifier else f"{data.num_classes} output columns"
            raise ConfigError(
                f"model {section.model!r} gives outputs of shape {list(shape)[1:]} for a batch, but data set "
                f"{data.name!r} has {wants}",
                where=f"{self.resolved.source}: {'teacher' if section is self.recipe.teacher else 'student'}.model",
                fix="Use a model family that outputs one score per class (one column per head)",
            )
        return model

    def _report(self, model: torch.nn.Module, section: ModelSection, data: TaskData, directory: Path) -> ModelReport:
        test, validation = evaluate(model, data, data.test), evaluate(model, data, data.validation)
        return ModelReport(
            test_score=tasks.score(data.heads, test),
            val_score=tasks.score(data.heads, validation),
            test_metrics=test,
            val_metrics=validation,
            parameters=count_parameters(model),
            size_bytes=(directory / WEIGHTS).stat().st_size,
            model=self.manager.models.get(section.model)().describe(model, data),
            techniques=json.loads((directory / TECHNIQUES).read_text()) if (directory / TECHNIQUES).is_file() else [],
        )

    def teacher(self, data: TaskData, ctx: TrainContext, work: Path) -> torch.nn.Module:
        """The trained teacher, from the cache when its recipe section, the data section, the data itself and
        the seed are unchanged (:class:`TeacherCache`), else trained with its techniques and cached."""
        section, options = self.recipe.teacher, self.resolved.teacher_options
        resolved = self.resolved.to_dict()  # defaults written out: a recipe and its resolved copy agree
        key = teacher_key(resolved["teacher"], resolved["data"], data.fingerprint(), ctx.seed)
        cache = TeacherCache(self.manager, self.run_dir, work, key)
        cached = cache.load()
        if cached is not None:
            return cached
        techniques = self.resolved.teacher_techniques
        built = self._build(section, options, data, ctx.seed)
        model, edits, reports, _ = apply_techniques(built, techniques, lambda t, m: t.adapted(m, ctx))
        self._train("teacher", model, section, ctx, techniques)
        # e.g. merge adapters into the weights
        model, merged, merge_reports, files = apply_techniques(
            model, techniques, lambda t, m: t.compress(m, ctx), empty_reports=True
        )
        edits, reports = edits + merged, reports + merge_reports
        spec = model_spec(section, options, data, model, edits)
        distributed.on_main(cache.save, model, spec, reports, files)
        return model

    def student(
        self, data: TaskData, ctx: TrainContext, work: Path
    ) -> tuple[torch.nn.Module, list[dict[str, float]], list[dict[str, Any]]]:
        """Train the student, then let each technique compress it in recipe order (each with its own
        recovery fine-tuning, seeded per stage). The student after every stage is kept in
        ``stages/NN-<stage>/`` with a progress file, so a resumed run continues after the last finished
        stage (and stages can be compared). Each saved stage is loaded back and checked to give the same
        outputs, so a technique whose record cannot rebuild its model fails here, not at export."""
        import torch

        section, options = self.recipe.student, self.resolved.student_options
        techniques = self.resolved.techniques
        stages = work / STAGES
        progress_file = stages / PROGRESS
        if self.resume and progress_file.is_file():
            progress = json.loads(progress_file.read_text())
            if progress.get("data") != data.fingerprint():
                raise DataError(
                    "the data set differs from the one the interrupted run trained its student on",
                    where=str(progress_file),
                    fix="Restore the original data, or start the run again without --resume",
                )
            student, _ = load_model(stages / progress["latest"], self.manager)
            log.info("resuming after stage %s", progress["latest"])
            ctx.model = student
            for technique in techniques:
                technique.setup(ctx)
        else:
            if stages.exists():
                distributed.on_main(shutil.rmtree, stages)
            built = self._build(section, options, data, self.recipe.seed + 1)
            student, edits, reports, _ = apply_techniques(built, techniques, lambda t, m: t.adapted(m, ctx))
            ctx.model = student
            for technique in techniques:
                technique.setup(ctx)
            history = self._train("student", student, section, ctx, techniques).history
            progress = {
                "done": 0,
                "latest": "00-student",
                "data": data.fingerprint(),
                "edits": [e.model_dump(mode="json") for e in edits],
                "adapted": reports,
                "history": history,
                "stages": [],
            }
            distributed.on_main(self._save_stage, student, section, options, data, stages, progress)
        for index, technique in enumerate(techniques[progress["done"] :], start=progress["done"] + 1):
            torch.manual_seed(self.recipe.seed * 1_000 + index)  # a resumed stage draws what the original drew
            ctx.fine_tuner = self._fine_tuner(f"{technique.name}#{index}", ctx)
            before = count_parameters(student)
            compressed = technique.compress(student, ctx)
            ctx.fine_tuner = None
            progress["done"] = index
            if compressed is None:
                distributed.on_main(atomic.write_json, progress_file, progress)
                continue
            student = compressed.model
            if compressed.record is not None:
                progress["edits"].append({"technique": technique.name, "record": compressed.record})
            progress["latest"] = f"{index:02d}-{technique.name}"
            progress["stages"].append(
                {
                    "stage": progress["latest"],
                    "parameters_before": before,
                    "parameters_after": count_parameters(student),
                    "val_score": score(student, data, data.validation),
                    **compressed.report,
                }
            )
            distributed.on_main(self._save_stage, student, section, options, data, stages, progress)
        distributed.on_main(shutil.copytree, stages / progress["latest"], work / "student", dirs_exist_ok=True)
        return student, progress["history"], progress["stages"]

    def _save_stage(
        self,
        model: torch.nn.Module,
        section: ModelSection,
        options: Any,
        data: TaskData,
        stages: Path,
        progress: dict[str, Any],
    ) -> None:
        """Save the student after a stage, check it loads back to the same model, then record progress."""
        folder = stages / progress["latest"]
        spec = model_spec(section, options, data, model, [ModelEdit(**e) for e in progress["edits"]])
        save_model(model, spec, folder)
        atomic.write_json(folder / TECHNIQUES, progress.get("adapted", []))
        probe = data.validation.x[:8]
        try:
            reloaded, _ = load_model(folder, self.manager)
            problem = "" if np.allclose(predict(reloaded, probe), predict(model, probe), atol=1e-5) else "other outputs"
        except ArtifactError as exc:
            problem = exc.message
        if problem:
            edits = ", ".join(e["technique"] for e in progress["edits"]) or "none"
            raise TrainingError(
                f"the student saved after stage {progress['latest']} does not load back to the same model "
                f"(architecture edits recorded: {edits}): {problem}",
                where=str(folder),
                fix="A technique changed the model without a record that rebuilds it; report it to its authors",
            )
        atomic.write_json(stages / PROGRESS, progress)

    def _fine_tuner(self, stage: str, ctx: TrainContext) -> FineTuner:
        """Fine-tuning for a compression stage: the student's section with the stage's epochs and rate, every
        technique's loss terms, and a phase name of its own for each call (``<stage>``, ``<stage>.2``, ...),
        so checkpoints of one call are never taken for another's."""
        calls = itertools.count(1)

        def finetune(model: torch.nn.Module, name: str, epochs: int, lr: float) -> FitResult:
            section = self.recipe.student.model_copy(update={"epochs": epochs, "lr": lr})
            call = next(calls)
            return self._train(stage if call == 1 else f"{stage}.{call}", model, section, ctx, self.resolved.techniques)

        return finetune

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
            checkpoint=self.checkpoint,
        )
        log.info("%s: best epoch %d, validation score %.4f", phase, result.best_epoch, result.best_val_score)
        return result

    def run(self) -> RunMetrics:
        """Train everything and write the run folder; returns the metrics written to metrics.json.

        The run is built in ``runs/.<name>.partial/`` and replaces ``runs/<name>/`` only when everything
        succeeded, so a failed or interrupted run leaves the previous one intact. The partial folder keeps
        the log and the latest checkpoint; ``resume=True`` continues from it. Under torchrun every process
        trains, rank 0 alone writes (and logs), and the others return once the run folder is published.
        """
        for technique in [*self.resolved.teacher_techniques, *self.resolved.techniques]:  # loading needs none
            reason = technique.unavailable_reason()
            if reason:
                raise ConfigError(f"technique {technique.name!r} cannot run here: {reason}", where=self.resolved.source)
        work = partial_dir(self.run_dir)
        if self.resume and not work.is_dir():
            raise ConfigError(
                f"there is no interrupted run of {self.recipe.name!r} to resume (no {work})",
                fix="Start it with `edgepeft train RECIPE`",
            )
        distributed.on_main(self._prepare, work)
        logger = logging.getLogger("edgepeft")
        handler: logging.Handler = logging.NullHandler()  # the other processes log nothing
        if distributed.is_main():
            handler = logging.FileHandler(work / LOG, mode="a" if self.resume else "w", encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            with stop_on_signals(self.checkpoint):
                metrics = self._run(work)
        except TrainingInterrupted as exc:
            raise TrainingInterrupted(
                exc.what, where=exc.where, fix=f"Continue with `edgepeft train --resume {self.run_dir}`"
            ) from None
        finally:
            logger.removeHandler(handler)
            handler.close()
        distributed.on_main(self._publish, work, metrics)
        return metrics if metrics is not None else RunMetrics.read(self.run_dir / METRICS)

    def _prepare(self, work: Path) -> None:
        """Create the partial folder (a fresh start discards an earlier interrupted attempt) with the recipe."""
        if not self.resume and work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        atomic.write_text(work / RECIPE, tomli_w.dumps(self.resolved.to_dict()))

    def _publish(self, work: Path, metrics: RunMetrics) -> None:
        """Replace ``runs/<name>/`` with the finished partial folder and tell the plugins."""
        (work / CHECKPOINT).unlink(missing_ok=True)
        (work / STAGES / PROGRESS).unlink(missing_ok=True)  # only now: a run killed before this resumes
        interrupts.check()
        atomic.replace_directory(work, self.run_dir)
        self.manager.call("edgepeft_run_finished", run_dir=self.run_dir, metrics=metrics.model_dump(mode="json"))

    def _run(self, work: Path) -> RunMetrics | None:
        """Train the teacher and the student and write metrics.json; the metrics, on rank 0 only."""
        log.info("loading data set %s", self.recipe.data.dataset)
        data = load_task_data(self.manager, self.resolved, self.recipe.seed)
        ctx = TrainContext(
            data=data, teacher=None, batch_size=self.recipe.data.batch_size, seed=self.recipe.seed, device=self.device
        )
        processes = f" in {distributed.world()} processes" if distributed.world() > 1 else ""
        log.info("training on %s%s", self.device, processes)
        teacher = self.teacher(data, ctx, work)
        ctx.teacher = teacher
        student, history, stages = self.student(data, ctx, work)
        return distributed.on_main(self._metrics, data, teacher, student, history, stages, work)

    def _metrics(
        self,
        data: TaskData,
        teacher: torch.nn.Module,
        student: torch.nn.Module,
        history: list[dict[str, float]],
        stages: list[dict[str, Any]],
        work: Path,
    ) -> RunMetrics:
        teacher_report = self._report(teacher, self.recipe.teacher, data, work / "teacher")
        student_report = self._report(student, self.recipe.student, data, work / "student")
        metrics = RunMetrics.current(
            task="classification" if data.is_classifier else "multi-head",
            metric="accuracy" if data.is_classifier else "score",
            metrics=primary_metrics(data.heads),
            heads=[h.to_dict() for h in data.heads],
            dataset={
                "name": data.name,
                "fingerprint": data.fingerprint(),
                "sizes": {"train": len(data.train), "validation": len(data.validation), "test": len(data.test)},
            },
            seed=self.recipe.seed,
            teacher=teacher_report,
            student=student_report,
            compression=teacher_report.parameters / student_report.parameters,
            score_retention=tasks.retention(
                primary_metrics(data.heads), student_report.test_metrics, teacher_report.test_metrics
            ),
            student_history=history,
            stages=stages,
        )
        metrics.write(work / METRICS)
        return metrics

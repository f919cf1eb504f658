"""``metrics.json``: what `edgepeft train` measured on the teacher and the student of a run folder; `edgepeft
profile`, `deploy`, `bench` and `search` read it back."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from edgepeft.artifacts.schema import Record, VersionedFile


class HeadRecord(Record):
    """One prediction target of the task."""

    name: str = Field(description="The head's name; multi-head metric keys are `<head>.<metric>`.")
    kind: Literal["classification", "binary", "regression"] = Field(
        description="classification: one output column per label; binary: one logit; regression: one value."
    )
    labels: list[str] = Field(default_factory=list, description="Class names of a classification head, in order.")


class DatasetRecord(Record):
    """The data set a run was trained on."""

    name: str = Field(description="The registered data set name (e.g. `digits`).")
    fingerprint: str = Field(description="sha256 of the split data; later stages refuse other data.")
    sizes: dict[str, int] = Field(description="Examples per split: `train`, `validation`, `test`.")


class ModelReport(Record):
    """Held-out figures for one trained model (the teacher or the student)."""

    test_score: float = Field(
        description="The task's score on the held-out test split: a classifier's accuracy (0-1); for a multi-head "
        "task the mean of the heads' main metrics, errors counted negatively."
    )
    val_score: float = Field(description="The same score on the validation split.")
    test_metrics: dict[str, float] = Field(
        description="Every metric on the test split: `accuracy` for a classifier, else `<head>.<metric>` "
        "(accuracy and AUC 0-1, RMSE in the target's unit, log loss in nats)."
    )
    val_metrics: dict[str, float] = Field(description="Every metric on the validation split.")
    parameters: int = Field(description="Number of parameters of the trained model.")
    size_bytes: int = Field(description="Size of its `model.safetensors`, in bytes.")
    model: dict[str, Any] = Field(
        default_factory=dict,
        description="What the model family reports about the trained model (e.g. embedding tables); `notes` "
        "holds lines shown after training.",
    )
    techniques: list[dict[str, Any]] = Field(
        default_factory=list,
        description="What each technique that adapted the model reported (e.g. lora's trainable share).",
    )


class EpochRecord(Record):
    """One epoch of the student's training."""

    epoch: int = Field(description="Epoch number, from 1.")
    loss: float = Field(description="Mean training loss of the epoch (every technique's terms included).")
    val_score: float = Field(description="The task's score on the validation split after the epoch.")


class StageRecord(Record):
    """One compression stage after the student's training; the technique's own figures are added as keys."""

    OMITTED_WHEN_NONE: ClassVar[frozenset[str]] = frozenset({"note"})

    stage: str = Field(description="`NN-<technique>`: the stage's number in recipe order and the technique.")
    parameters_before: int = Field(description="Student parameters before the stage.")
    parameters_after: int = Field(description="Student parameters after the stage.")
    val_score: float = Field(description="The task's score on the validation split after the stage.")
    note: str | None = Field(None, description="A caveat the technique states about the stage (absent without one).")


class RunMetrics(VersionedFile):
    """``runs/<name>/metrics.json``, written by `edgepeft train` once the run finished; read by `profile`,
    `deploy`, `bench` and `search`, and passed to the ``edgepeft_run_finished`` hook."""

    FILE: ClassVar[str] = "metrics.json"
    FIX: ClassVar[str] = "Retrain with `edgepeft train`"

    task: Literal["classification", "multi-head"] = Field(
        description="A single-head classifier, or a task with several heads."
    )
    metric: Literal["accuracy", "score"] = Field(
        description="What `test_score` and `val_score` are: a classifier's accuracy, or the task's score."
    )
    metrics: list[str] = Field(
        description="The main metric of each head (e.g. `accuracy`, `rating.rmse`): what retention compares."
    )
    heads: list[HeadRecord] = Field(default_factory=list, description="The task's heads, in output-column order.")
    dataset: DatasetRecord = Field(description="The data set and its split.")
    seed: int = Field(description="The recipe's seed.")
    teacher: ModelReport = Field(description="The teacher's figures.")
    student: ModelReport = Field(description="The student's figures, after every compression stage.")
    compression: float = Field(description="Teacher parameters / student parameters (x).")
    score_retention: float = Field(
        description="The share of the teacher's test quality the student keeps, for the main metric that keeps "
        "least (a ratio; an error's inverse ratio); NaN when a metric is undefined."
    )
    student_history: list[EpochRecord] = Field(default_factory=list, description="The student's training epochs.")
    stages: list[StageRecord] = Field(default_factory=list, description="The compression stages, in order.")

    @model_validator(mode="before")
    @classmethod
    def _classifier_keys_upgraded(cls, data: Any) -> Any:
        """A classifier's metrics from before tasks had several heads (``test_accuracy``), in today's keys."""
        if not isinstance(data, dict) or not all(
            isinstance(data.get(r), dict) and "test_accuracy" in data[r] for r in ("teacher", "student")
        ):
            return data
        data = dict(data)
        for role in ("teacher", "student"):
            m = dict(data[role])
            m["test_score"], m["val_score"] = m.pop("test_accuracy"), m.pop("val_accuracy", float("nan"))
            m.setdefault("test_metrics", {"accuracy": m["test_score"]})
            m.setdefault("val_metrics", {"accuracy": m["val_score"]})
            data[role] = m
        data.setdefault("metrics", ["accuracy"])
        if "accuracy_retention" in data:
            data["score_retention"] = data.pop("accuracy_retention")
        return data

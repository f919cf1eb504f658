"""What `edgepeft export`, `profile` and `deploy` measure on an exported model, as ``export.json`` and
``manifest.json`` record it: its inputs and outputs, the parity check, latency, memory and budgets."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from edgepeft.artifacts.schema import Record


class TensorRecord(Record):
    """An input or output of the exported model."""

    name: str = Field(description="The tensor's name in the model file.")
    shape: list[int | str] = Field(description='Its shape; `"batch"` marks a dynamic batch dimension.')
    dtype: str = Field("float32", description="Element type in the model file (e.g. `float32`, `int8`).")
    quantization: dict[str, float | int] | None = Field(
        None, description="`{scale, zero_point}` of an integer tensor: real value = (q - zero_point) * scale."
    )


class ThresholdsRecord(Record):
    """What the export had to meet (the precision's defaults with the device profile's `[parity]` on top)."""

    min_top1_agreement: float | None = Field(None, description="Least share of examples decided alike (0-1).")
    max_abs_diff: float | None = Field(None, description="Largest allowed output difference; none for int8.")
    max_metric_drop: float | None = Field(None, description="How much each head's main metric may worsen.")


class ParityRecord(Record):
    """The exported model against PyTorch on the same held-out inputs."""

    OMITTED_WHEN_NONE: ClassVar[frozenset[str]] = frozenset({"split"})

    precision: str = Field(description="The export's precision: `fp32`, `fp16`, `int8` or `int8-dynamic`.")
    examples: int = Field(description="Held-out examples compared.")
    top1_agreement: float = Field(
        description="Share of examples both decide alike (same top class, same side of 0), for the head that "
        "agrees least (0-1)."
    )
    max_abs_diff: float = Field(description="Largest absolute difference of any output value.")
    mean_abs_diff: float = Field(description="Mean absolute difference of the output values.")
    score: float = Field(description="The exported model's task score (a classifier's accuracy, 0-1).")
    reference_score: float = Field(description="The PyTorch model's task score on the same examples.")
    thresholds: ThresholdsRecord = Field(description="The thresholds the export was held to.")
    metrics: dict[str, float] = Field(description="Every metric of the exported model (`<head>.<metric>` keys).")
    reference_metrics: dict[str, float] = Field(description="Every metric of the PyTorch model.")
    primary: list[str] = Field(description="The main metric of each head, which the metric-drop threshold checks.")
    passed: bool = Field(description="Whether every threshold was met.")
    split: str | None = Field(None, description="The split compared (`test`); absent in export.json.")

    @model_validator(mode="before")
    @classmethod
    def _accuracy_keys_upgraded(cls, data: Any) -> Any:
        """A classifier's parity from before tasks had several heads (``accuracy``), in today's keys."""
        if not isinstance(data, dict) or "accuracy" not in data or "score" in data:
            return data
        data = dict(data)
        data["score"], data["reference_score"] = data.pop("accuracy"), data.pop("reference_accuracy")
        data.setdefault("metrics", {"accuracy": data["score"]})
        data.setdefault("reference_metrics", {"accuracy": data["reference_score"]})
        data.setdefault("primary", ["accuracy"])
        return data


class LatencyRecord(Record):
    """Wall-clock time of one call at a batch size, over many timed calls after a warm-up (no outlier trimming)."""

    batch_size: int = Field(description="Examples per call.")
    iterations: int = Field(description="Timed calls.")
    p50_ms: float = Field(description="Median call time, in milliseconds.")
    p95_ms: float = Field(description="95th percentile, in milliseconds.")
    p99_ms: float = Field(description="99th percentile, in milliseconds.")
    mean_ms: float = Field(description="Mean call time, in milliseconds.")


class DeviceLatencyRecord(LatencyRecord):
    """Latency on the device at the profile's batch size: measured there, or estimated from this host."""

    source: str = Field(description="`measured on the device` or `estimated`.")
    how: str = Field(description="How the figures were obtained (the tool, or the host figures and speed factor).")


class MemoryRecord(Record):
    """Resident memory of a fresh process that loads and runs the exported file, in MiB (2^20 bytes)."""

    process_peak_mb: float = Field(description="The process's peak resident memory.")
    before_load_mb: float = Field(description="Resident memory before the runtime and the model were loaded.")
    model_mb: float = Field(description="What the runtime and the model added: peak minus before-load.")
    how: str = Field(description="How it was measured.")
    where: str = Field(description="Where it was measured (`host`).")


class BudgetRecord(Record):
    """One budget of the device profile and the value it was judged on."""

    budget: str = Field(description="`max_size_mb`, `p95_latency_ms`, `peak_memory_mb` or `min_accuracy_retention`.")
    limit: float = Field(description="The profile's limit, in `unit`.")
    value: float = Field(description="The value judged, in `unit`.")
    unit: str = Field(description="The unit (MB = 10^6 bytes, MiB, `ms @ batch N`, `x teacher`).")
    source: str = Field(description="Where the value came from (measured, estimated, on the device).")
    status: str = Field(description="`pass` or `fail`; retention passes at or above its limit, the others at or below.")


class ExportScoreRecord(Record):
    """The exported model's quality on the held-out test split."""

    value: float = Field(description="The task's score (a classifier's accuracy, 0-1).")
    metrics: dict[str, float] = Field(description="Every metric of the task.")
    examples: int = Field(description="Test examples.")
    how: str = Field(description="What was measured.")
    where: str = Field(description="Where it was measured (`host`).")


class TeacherMetricsRecord(Record):
    """The PyTorch teacher's metrics that retention compares with."""

    value: dict[str, float] = Field(description="Every metric of the teacher on the same split.")
    how: str = Field(description="What was measured.")


class Measurements(Record):
    """Everything `edgepeft profile` measures for one export on one device profile."""

    device: str = Field(description="The device profile's name.")
    backend: str = Field(description="The backend that exported and ran the model.")
    precision: str = Field(description="The export's precision.")
    test_score: ExportScoreRecord = Field(description="The exported model on the held-out test split.")
    teacher_test_metrics: TeacherMetricsRecord = Field(description="The teacher's test metrics.")
    score_retention: float = Field(
        description="Share of the teacher's test quality the export keeps, for the main metric that keeps least."
    )
    parity: ParityRecord = Field(description="The parity check against PyTorch on the test split.")
    size_bytes: int = Field(description="Size of the exported model file(s), in bytes.")
    latency_host_ms: dict[str, LatencyRecord] = Field(
        description="Latency on this host, keyed by batch size (1 and the profile's batch)."
    )
    latency_device_ms: DeviceLatencyRecord = Field(description="Latency on the device at the profile's batch size.")
    peak_memory_mb: MemoryRecord = Field(description="Peak memory of inference.")
    budgets: list[BudgetRecord] = Field(description="Every budget of the profile and its verdict.")
    within_budget: bool = Field(description="Whether every budget passed.")

    @model_validator(mode="before")
    @classmethod
    def _accuracy_keys_upgraded(cls, data: Any) -> Any:
        """A classifier's measurements from before tasks had several heads (``test_accuracy``), in today's keys."""
        if not isinstance(data, dict) or "test_accuracy" not in data:
            return data
        data = dict(data)
        test = dict(data.pop("test_accuracy"))
        test.setdefault("metrics", {"accuracy": test.get("value")})
        teacher = dict(data.pop("teacher_test_accuracy", {}))
        teacher["value"] = {"accuracy": teacher.get("value")}
        data |= {"test_score": test, "teacher_test_metrics": teacher}
        if "accuracy_retention" in data:
            data["score_retention"] = data.pop("accuracy_retention")
        return data

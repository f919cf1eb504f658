"""``trials.json``: every trial of `edgepeft search`, rewritten after each one."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from edgepeft.artifacts.schema import Record, VersionedFile


class TrialRecord(Record):
    """One trial: its settings, what it measured, the budgets it broke and where its run is."""

    number: int = Field(description="The trial's number, from 0.")
    settings: dict[str, Any] = Field(description="The searched values, by their recipe key.")
    state: Literal["complete", "pruned", "failed"] = Field(
        description="complete: trained and measured; pruned: stopped before or during training; failed: did not "
        "train or export."
    )
    run: str | None = Field(None, description="Its run folder; none when it never trained.")
    parameters: int | None = Field(None, description="Student parameters.")
    val_score: float | None = Field(
        None, description="The exported model's score on the validation split (what the search maximizes)."
    )
    test_score: float | None = Field(None, description="The PyTorch student's test score (reported, never chosen by).")
    size_mb: float | None = Field(None, description="Exported file size, in MB (10^6 bytes).")
    p95_ms: float | None = Field(None, description="p95 latency on the device at the profile's batch, in ms.")
    peak_memory_mb: float | None = Field(None, description="Peak inference memory, in MiB.")
    precision: str | None = Field(None, description="The export's precision.")
    broke: list[str] = Field(default_factory=list, description="The budgets the trial broke.")
    note: str = Field("", description="Why it was pruned or failed.")
    metric: str = Field(
        "accuracy", description="What the scores are: a classifier's `accuracy`, or the task's `score`."
    )
    pareto: bool = Field(False, description="Whether it is on the Pareto front (score up, size and latency down).")


class Trials(VersionedFile):
    """``<out>/trials.json``, written by `edgepeft search` after every trial."""

    FILE: ClassVar[str] = "trials.json"
    FIX: ClassVar[str] = "Run `edgepeft search --resume` to write it again"

    search: str = Field(description="The search plan's name.")
    device: str = Field(description="The device profile searched for.")
    objectives: dict[str, Literal["maximize", "minimize"]] = Field(
        description="Each objective and its direction: `val_score`, `size_mb`, `p95_ms`."
    )
    best: int | None = Field(description="The number of the best trial within every budget; none without one.")
    trials: list[TrialRecord] = Field(description="Every trial so far, by number.")

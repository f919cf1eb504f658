"""One finished trial as edgepeft records it, and how trials compare: the Pareto front and the best within budget."""

from __future__ import annotations

import dataclasses
from typing import Any

from edgepeft.api.tasks import format_metric

OBJECTIVES = ("val_score", "size_mb", "p95_ms")
DIRECTIONS = ("maximize", "minimize", "minimize")


@dataclasses.dataclass
class TrialResult:
    """One finished trial: its settings, what it measured, the budgets it broke, and where its run is."""

    number: int
    settings: dict[str, Any]
    state: str
    run: str | None = None
    parameters: int | None = None
    val_score: float | None = None
    test_score: float | None = None
    size_mb: float | None = None
    p95_ms: float | None = None
    peak_memory_mb: float | None = None
    precision: str | None = None
    """The export's precision (the searched one, or the profile's first that the backend supports)."""
    broke: list[str] = dataclasses.field(default_factory=list)
    note: str = ""
    metric: str = "accuracy"
    """What the scores are: a classifier's accuracy, or the multi-head task's score."""

    def shown(self, value: float | None) -> str:
        """A score as the trial's metric is written (a percentage for accuracy)."""
        return "-" if value is None else format_metric(self.metric, value)

    @property
    def objectives(self) -> tuple[float, float, float] | None:
        if self.state != "complete":
            return None
        return (self.val_score, self.size_mb, self.p95_ms)  # type: ignore[return-value]

    @property
    def feasible(self) -> bool:
        return self.state == "complete" and not self.broke


def describe(settings: dict[str, Any]) -> str:
    """Settings as short ``name=value`` pairs: the last part of each key, floats to 3 significant digits,
    a switched technique as on/off."""
    parts = []
    for key, value in settings.items():
        if isinstance(value, bool):
            value = "on" if value else "off"
        elif isinstance(value, float):
            value = f"{value:.3g}"
        parts.append(f"{key.split('.')[-1]}={value}")
    return " ".join(parts).replace(", ", ",")


def pareto(results: list[TrialResult]) -> list[TrialResult]:
    """Completed trials no other completed trial beats on every objective (accuracy up, size and
    latency down), ordered by size."""
    done = [r for r in results if r.objectives is not None]

    def dominates(a: TrialResult, b: TrialResult) -> bool:
        (aa, asz, al), (ba, bsz, bl) = a.objectives, b.objectives  # type: ignore[misc]
        return aa >= ba and asz <= bsz and al <= bl and (aa, asz, al) != (ba, bsz, bl)

    return sorted((r for r in done if not any(dominates(o, r) for o in done)), key=lambda r: r.size_mb or 0)


def best(results: list[TrialResult]) -> TrialResult | None:
    """The most accurate (on validation) trial that meets every budget; smaller wins a tie."""
    feasible = [r for r in results if r.feasible]
    return max(feasible, key=lambda r: (r.val_score, -(r.size_mb or 0)), default=None)

"""The parity gate: does an exported model answer like the PyTorch one on real held-out data? And when
it does not, which layer broke?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from edgepeft.api import tasks
from edgepeft.api.device import ParityThresholds

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass(frozen=True)
class ParityReport:
    """Exported vs PyTorch outputs on ``examples`` held-out inputs, against ``thresholds``.

    ``top1_agreement`` is the share of examples where both decide alike (the head that agrees least);
    ``metrics`` and ``reference_metrics`` hold every metric of the task (:func:`edgepeft.api.tasks.evaluate`),
    ``score`` and ``reference_score`` the task's score (the accuracy of a classifier).
    """

    precision: str
    examples: int
    top1_agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    score: float
    reference_score: float
    thresholds: ParityThresholds
    metrics: dict[str, float]
    reference_metrics: dict[str, float]
    primary: tuple[str, ...] = ("accuracy",)

    @property
    def failures(self) -> list[str]:
        """Each threshold the export misses, as text; empty when it passes."""
        t, out = self.thresholds, []
        if t.min_top1_agreement is not None and self.top1_agreement < t.min_top1_agreement:
            out.append(f"top-1 agreement {self.top1_agreement:.4f} < {t.min_top1_agreement}")
        if t.max_abs_diff is not None and self.max_abs_diff > t.max_abs_diff:
            out.append(f"max abs difference {self.max_abs_diff:.3g} > {t.max_abs_diff:g}")
        if t.max_metric_drop is not None:
            for key in self.primary:
                before, after = self.reference_metrics[key], self.metrics[key]
                worse = after - before if key.rsplit(".", 1)[-1] in tasks.LOWER_IS_BETTER else before - after
                if worse > t.max_metric_drop:
                    out.append(f"{key} drop {worse:.4f} ({before:.4f} -> {after:.4f}) > {t.max_metric_drop:g}")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "thresholds": self.thresholds.model_dump(), "passed": self.passed}


def compare(
    reference: np.ndarray,
    exported: np.ndarray,
    labels: np.ndarray,
    precision: str,
    thresholds: ParityThresholds,
    heads: Sequence[tasks.Head] | None = None,
) -> ParityReport:
    """PyTorch's ``reference`` outputs vs the ``exported`` model's on the same inputs with ``labels``;
    ``heads`` default to one classification head over every output column."""
    import numpy as np

    heads = tuple(heads) if heads else tasks.classification([str(i) for i in range(reference.shape[1])])
    diff = np.abs(reference.astype(np.float64) - exported.astype(np.float64))
    metrics = tasks.evaluate(heads, exported, labels)
    reference_metrics = tasks.evaluate(heads, reference, labels)
    return ParityReport(
        precision=precision,
        examples=len(reference),
        top1_agreement=tasks.decision_agreement(heads, reference, exported),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        score=tasks.score(heads, metrics),
        reference_score=tasks.score(heads, reference_metrics),
        thresholds=thresholds,
        metrics=metrics,
        reference_metrics=reference_metrics,
        primary=tuple(tasks.primary_metrics(heads)),
    )


# -- culprit search ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerDivergence:
    """How far one module's output in the exported model is from PyTorch's (relative L2 error)."""

    module: str
    kind: str
    relative_error: float


@dataclass(frozen=True)
class CulpritReport:
    """Per-layer divergence in execution order, and the first layer where it jumps (None: no clear jump)."""

    layers: list[LayerDivergence]
    culprit: LayerDivergence | None

    def describe(self) -> str:
        if self.culprit is None:
            return "no single layer stands out; the error grows gradually through the network"
        before = max((lay.relative_error for lay in self._before_culprit()), default=0.0)
        layer = f"{self.culprit.module!r} ({self.culprit.kind})" if self.culprit.module else "the model's output"
        after = self._before_culprit()[-1].module if self._before_culprit() else None
        if not self.culprit.module and after:
            layer += f" (the layers after {after!r})"
        return (
            f"the first layer whose output diverges is {layer}: relative "
            f"error {self.culprit.relative_error:.3g}, against at most {before:.3g} in the layers before it"
        )

    def _before_culprit(self) -> list[LayerDivergence]:
        assert self.culprit is not None
        return self.layers[: self.layers.index(self.culprit)]


def torch_module_outputs(model: torch.nn.Module, x: np.ndarray) -> dict[str, tuple[str, np.ndarray]]:
    """Every named module's output on ``x``, in the order the modules finish, with its class name."""
    import numpy as np
    import torch

    outputs: dict[str, tuple[str, np.ndarray]] = {}
    handles = []
    for name, module in model.named_modules():  # the root ("") is the model's output

        def hook(mod: torch.nn.Module, _args: Any, out: Any, name: str = name) -> None:
            if isinstance(out, torch.Tensor):
                outputs[name] = (type(mod).__name__, out.detach().float().cpu().numpy())

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            model.eval()(torch.from_numpy(np.ascontiguousarray(x)))
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def _alignments(exported: np.ndarray, reference: np.ndarray) -> list[np.ndarray]:
    """Ways to read ``exported`` in ``reference``'s layout: as is, channels-last moved back, or flattened."""
    out = []
    if exported.shape == reference.shape:
        out.append(exported)
    if exported.ndim == 4 and exported.transpose(0, 3, 1, 2).shape == reference.shape:
        out.append(exported.transpose(0, 3, 1, 2))
    if not out and exported.size == reference.size and exported.shape[0] == reference.shape[0]:
        out.append(exported.reshape(reference.shape))
    return out


def _relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    import numpy as np

    return float(np.linalg.norm(got.astype(np.float64) - ref) / (np.linalg.norm(ref) + 1e-12))


def find_culprit(
    reference: dict[str, tuple[str, np.ndarray]],
    exported: dict[str, np.ndarray],
    *,
    jump: float = 10.0,
    floor: float = 0.05,
) -> CulpritReport:
    """Compare module outputs in execution order; the culprit is the first module whose relative error
    exceeds ``floor`` and is ``jump`` times the largest error of the modules before it."""
    import numpy as np

    layers: list[LayerDivergence] = []
    culprit = None
    worst = 0.0
    for name, (kind, ref) in reference.items():
        if name not in exported:
            continue
        candidates = _alignments(exported[name], ref)
        if not candidates:
            continue
        # (N, 4, 4, 4) may be either layout; a runtime may fuse the next ReLU/ReLU6 into this layer's op.
        references = (ref, np.maximum(ref, 0), np.clip(ref, 0, 6))
        error = min(_relative_error(got, r) for got in candidates for r in references)
        layer = LayerDivergence(name, kind, error)
        layers.append(layer)
        if culprit is None and error > floor and error > jump * worst:
            culprit = layer
        worst = max(worst, error)
    return CulpritReport(layers=layers, culprit=culprit)

"""Technique ``distill``: distillation (Hinton et al., 2015) from the recipe's teacher, per head.

A classification head matches the teacher's softened class distribution (KL at temperature T, scaled by
T²); a binary head its softened probability (binary cross-entropy at temperature T, scaled by T²); a
regression head its predicted value (mean squared error). The teacher's outputs for every training example
are computed once, before the first step, and looked up by example index afterwards (those for the data set's
unlabelled inputs once a batch draws one); on a batch with augmented rows (a technique's ``augment``, e.g.
``augment-text``), the teacher labels those rows as the student sees them.

With ``hidden`` or ``attention`` above zero, the student also learns the teacher's insides (TinyBERT, Jiao et
al., 2020; MiniLM, Wang et al., 2020): each mapped student layer's hidden states match a teacher layer's
(mean squared error over the real tokens, through a learned linear projection when the widths differ) and its
attention probabilities the teacher layer's (KL divergence per query token, heads averaged when their counts
differ). The teacher then runs (without gradients) on every batch. Both models must expose their
intermediate outputs: ``capture_intermediates(on)``, ``intermediates`` (``hidden``: embeddings then each
layer; ``attention``: each layer's; ``mask``: 1 on real tokens), ``layer_count()`` and ``width()``, as
``hf-classifier`` models do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field, NonNegativeInt

import edgepeft
from edgepeft import Head, Signature, StrictModel, Technique

if TYPE_CHECKING:
    import torch


class DistillOptions(StrictModel):
    temperature: float = Field(4.0, gt=0, description="Softens both distributions; the term is scaled by T².")
    alpha: float = Field(0.7, ge=0, le=1, description="Weight of the distillation term; the task loss gets 1-alpha.")
    head_alpha: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        {}, description="Per-head alpha for a multi-head task, e.g. {rating = 0.5}; other heads use alpha."
    )
    hidden: float = Field(0.0, ge=0, description="Weight of the hidden-state term (0: off).")
    attention: float = Field(0.0, ge=0, description="Weight of the attention term (0: off).")
    layer_map: dict[NonNegativeInt, NonNegativeInt] = Field(
        {},
        description="Student layer -> teacher layer, counted from 1 (0: the embeddings' output, hidden states "
        "only), e.g. {1 = 6}; default: evenly spread, embeddings to embeddings.",
    )


class Distill(Technique):
    name = "distill"
    description = "match the teacher's outputs head by head (softened KL, softened BCE, MSE), mixed by alpha"
    Options = DistillOptions
    options: DistillOptions

    def __init__(self, options: DistillOptions) -> None:
        super().__init__(options)
        self.layer_map: dict[int, int] = {}  # set by setup when hidden states or attention are distilled
        self.projections: torch.nn.ModuleDict | None = None
        self.teacher: torch.nn.Module | None = None  # on the training device once it runs on live batches

    def setup(self, ctx: edgepeft.TrainContext) -> None:
        import torch

        if ctx.teacher is None:
            raise edgepeft.ConfigError("distill needs a teacher", fix="Add a [teacher] section to the recipe")
        heads = {h.name for h in ctx.data.heads}
        unknown = sorted(set(self.options.head_alpha) - heads)
        if unknown:
            raise edgepeft.ConfigError(
                f"distill head_alpha names heads the data set lacks: {', '.join(unknown)}",
                where="[[techniques]] distill.head_alpha",
                fix=f"Use the data set's heads: {', '.join(sorted(heads))}",
            )
        logits = edgepeft.predict(ctx.teacher.to(ctx.device), ctx.data.train.x)
        ctx.teacher.cpu()
        if logits.shape[1] != ctx.data.num_classes:
            raise edgepeft.ConfigError(
                f"the teacher has {logits.shape[1]} outputs but the data set's task has {ctx.data.num_classes}",
                fix="Train the teacher on the same data set as the student",
            )
        self.heads: tuple[Head, ...] = ctx.data.heads
        self.teacher_logits = torch.from_numpy(logits).to(ctx.device)
        self.ctx = ctx
        if self.options.hidden or self.options.attention:
            self._setup_inner(ctx)

    def _setup_inner(self, ctx: edgepeft.TrainContext) -> None:
        """Check both models expose their insides, map the layers, make the projections, start capturing."""
        from torch import nn

        student, teacher = ctx.model, ctx.teacher
        for model, role in ((student, "student"), (teacher, "teacher")):
            if not hasattr(model, "capture_intermediates"):
                raise edgepeft.ConfigError(
                    f"hidden-state and attention distillation need models that expose their intermediate outputs; "
                    f"the {role} ({type(model).__name__}) does not",
                    where="[[techniques]] distill.hidden / distill.attention",
                    fix="Set hidden = 0 and attention = 0, or use models such as hf-classifier",
                )
        layers, teacher_layers = student.layer_count(), teacher.layer_count()
        first = 0 if self.options.hidden else 1
        self.layer_map = dict(self.options.layer_map) or {
            i: max(min(i, 1), round(i * teacher_layers / layers)) for i in range(first, layers + 1)
        }
        for s, t in self.layer_map.items():
            if not (s <= layers and t <= teacher_layers and (s == 0) == (t == 0)):
                raise edgepeft.ConfigError(
                    f"layer_map {s} -> {t} does not map a layer of the student (1-{layers}) to one of the teacher "
                    f"(1-{teacher_layers}), or the embeddings (0) to the embeddings",
                    where="[[techniques]] distill.layer_map",
                    fix="Map existing layers, counted from 1; 0 for the embeddings",
                )
        self.projections = nn.ModuleDict()
        if self.options.hidden and student.width() != teacher.width():
            self.projections = nn.ModuleDict(
                {str(s): nn.Linear(student.width(), teacher.width()) for s in self.layer_map}
            ).to(ctx.device)
        student.capture_intermediates(True)
        teacher.capture_intermediates(True)
        self.teacher = teacher.to(ctx.device).eval()

    def trainable(self) -> list[torch.nn.Parameter]:
        return list(self.projections.parameters()) if self.projections is not None else []

    def loss_terms(
        self, terms: dict[str, torch.Tensor], batch: edgepeft.Batch, logits: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        teacher = self._cached(batch.index)
        inner = self._inner_ready()
        if inner:  # the student trims padding columns while it trains; the teacher sees the same
            teacher = self._live_teacher(batch.x[:, : self.ctx.model.intermediates["mask"].shape[1]])
        elif batch.augmented is not None and bool(batch.augmented.any()):  # cached answers hold for the rest
            rows = batch.augmented.to(teacher.device)
            teacher = teacher.clone()
            teacher[rows] = self._live_teacher(batch.x[rows.to(batch.x.device)])
        out = dict(terms)
        for head, columns in Signature((), self.heads).columns():
            name = "" if len(self.heads) == 1 else f".{head.name}"
            alpha = self.options.head_alpha.get(head.name, self.options.alpha)
            out[f"task{name}"] = terms[f"task{name}"] * (1 - alpha)
            out[f"distill{name}"] = self._head_loss(head, logits[:, columns], teacher[:, columns]) * alpha
        if inner:
            out.update(self._inner_terms())
        return out

    def _cached(self, index: torch.Tensor) -> torch.Tensor:
        """The teacher's stored outputs for the examples at ``index``: train rows, then unlabelled rows (whose
        outputs are computed the first time a batch holds one)."""
        import torch

        unlabelled = self.ctx.data.unlabelled
        if (
            unlabelled is not None
            and len(self.teacher_logits) == len(self.ctx.data.train)
            and bool((index >= len(self.teacher_logits)).any())
        ):
            logits = edgepeft.predict(self._teacher_on_device(), unlabelled)
            self.teacher_logits = torch.cat([self.teacher_logits, torch.from_numpy(logits).to(self.ctx.device)])
        return self.teacher_logits[index]

    def _inner_ready(self) -> bool:
        """Whether this step distills hidden states or attention: layers are mapped and the student captures."""
        if not self.layer_map:
            return False
        student = self.ctx.model
        if not hasattr(student, "capture_intermediates"):  # e.g. wrapped for quantization-aware training
            return False
        if not student.capture:  # a model new to this technique (e.g. after a compression stage)
            student.capture_intermediates(True)
            return False
        return True

    def _live_teacher(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's outputs for the inputs the student saw this step (its insides captured when mapped)."""
        import torch

        with torch.no_grad():
            return self._teacher_on_device()(x).float()

    def _teacher_on_device(self) -> torch.nn.Module:
        """The teacher, moved to the training device (and kept there) the first time it runs live."""
        if self.teacher is None:
            self.teacher = self.ctx.teacher.to(self.ctx.device).eval()
        return self.teacher

    def _inner_terms(self) -> dict[str, torch.Tensor]:
        """The hidden-state and attention terms of this step (the teacher has run on the student's batch),
        averaged over the mapped layers."""
        import torch

        s, t = self.ctx.model.intermediates, self.teacher.intermediates
        mask = s["mask"].to(s["hidden"][0].dtype)
        tokens = mask.sum()
        hidden, attention = [], []
        for si, ti in self.layer_map.items():
            if self.options.hidden:
                states = s["hidden"][si]
                if str(si) in self.projections:
                    states = self.projections[str(si)](states)
                hidden.append((((states - t["hidden"][ti]) ** 2).mean(-1) * mask).sum() / tokens)
            if self.options.attention and si > 0:
                attention.append((attention_kl(s["attention"][si - 1], t["attention"][ti - 1]) * mask).sum() / tokens)
        terms = {}
        if hidden:
            terms["distill.hidden"] = torch.stack(hidden).mean() * self.options.hidden
        if attention:
            terms["distill.attention"] = torch.stack(attention).mean() * self.options.attention
        return terms

    def _head_loss(self, head: Head, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        t = self.options.temperature
        if head.kind == "classification":
            target = F.log_softmax(teacher / t, dim=1)
            return F.kl_div(F.log_softmax(student / t, dim=1), target, reduction="batchmean", log_target=True) * t * t
        if head.kind == "binary":
            return F.binary_cross_entropy_with_logits(student / t, (teacher / t).sigmoid()) * t * t
        return F.mse_loss(student, teacher)


def attention_kl(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of attention probabilities (batch, heads, queries, keys) per query token,
    averaged over the heads (each model's heads averaged first when their counts differ)."""
    import torch

    if student.shape[1] != teacher.shape[1]:
        student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
    teacher = teacher.float()
    kl = torch.xlogy(teacher, teacher) - teacher * student.float().clamp_min(1e-8).log()
    return kl.sum(-1).mean(1)

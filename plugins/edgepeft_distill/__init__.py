"""Technique plugin ``distill``: distillation (Hinton et al., 2015) from the recipe's teacher, per head.

A classification head matches the teacher's softened class distribution (KL at temperature T, scaled by
T²); a binary head its softened probability (binary cross-entropy at temperature T, scaled by T²); a
regression head its predicted value (mean squared error). The teacher's outputs for every training example
are computed once, before the first step, and looked up by example index afterwards, so the teacher never
runs again during training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field

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


class Distill(Technique):
    name = "distill"
    description = "match the teacher's outputs head by head (softened KL, softened BCE, MSE), mixed by alpha"
    Options = DistillOptions
    options: DistillOptions

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

    def loss_terms(
        self, terms: dict[str, torch.Tensor], batch: edgepeft.Batch, logits: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        teacher = self.teacher_logits[batch.index]
        out = dict(terms)
        for head, columns in Signature((), self.heads).columns():
            name = "" if len(self.heads) == 1 else f".{head.name}"
            alpha = self.options.head_alpha.get(head.name, self.options.alpha)
            out[f"task{name}"] = terms[f"task{name}"] * (1 - alpha)
            out[f"distill{name}"] = self._head_loss(head, logits[:, columns], teacher[:, columns]) * alpha
        return out

    def _head_loss(self, head: Head, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        t = self.options.temperature
        if head.kind == "classification":
            target = F.log_softmax(teacher / t, dim=1)
            return F.kl_div(F.log_softmax(student / t, dim=1), target, reduction="batchmean", log_target=True) * t * t
        if head.kind == "binary":
            return F.binary_cross_entropy_with_logits(student / t, (teacher / t).sigmoid()) * t * t
        return F.mse_loss(student, teacher)


@edgepeft.hookimpl
def edgepeft_register_techniques(register: edgepeft.Registrar) -> None:
    register(Distill)

"""Technique plugin ``distill``: logit distillation (Hinton et al., 2015) from the recipe's teacher.

The teacher's logits for every training example are computed once, before the first step, and looked
up by example index afterwards, so the teacher never runs again during training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

import edgepeft
from edgepeft import StrictModel, Technique

if TYPE_CHECKING:
    import torch


class DistillOptions(StrictModel):
    temperature: float = Field(4.0, gt=0, description="Softens both distributions; the KL term is scaled by T².")
    alpha: float = Field(0.7, ge=0, le=1, description="Weight of the distillation term; the task loss gets 1-alpha.")


class Distill(Technique):
    name = "distill"
    description = "match the teacher's softened logits (KL at temperature T), mixed with the task loss by alpha"
    Options = DistillOptions
    options: DistillOptions

    def setup(self, ctx: edgepeft.TrainContext) -> None:
        import torch

        if ctx.teacher is None:
            raise edgepeft.ConfigError("distill needs a teacher", fix="Add a [teacher] section to the recipe")
        logits = edgepeft.predict(ctx.teacher.to(ctx.device), ctx.data.train.x)
        ctx.teacher.cpu()
        if logits.shape[1] != ctx.data.num_classes:
            raise edgepeft.ConfigError(
                f"the teacher has {logits.shape[1]} outputs but the data set has {ctx.data.num_classes} classes",
                fix="Train the teacher on the same data set as the student",
            )
        self.teacher_logits = torch.from_numpy(logits).to(ctx.device)

    def loss_terms(
        self, terms: dict[str, torch.Tensor], batch: edgepeft.Batch, logits: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        import torch.nn.functional as F

        t, alpha = self.options.temperature, self.options.alpha
        target = F.log_softmax(self.teacher_logits[batch.index] / t, dim=1)
        kd = F.kl_div(F.log_softmax(logits / t, dim=1), target, reduction="batchmean", log_target=True) * t * t
        return {**terms, "task": terms["task"] * (1 - alpha), "distill": kd * alpha}


@edgepeft.hookimpl
def edgepeft_register_techniques(register: edgepeft.Registrar) -> None:
    register(Distill)

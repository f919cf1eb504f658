"""Technique plugin ``multitask``: how the heads of a multi-head task share the training loss.

Every loss term of a head (``task.<head>``, and ``distill.<head>`` when ``distill`` comes earlier in the
recipe) is multiplied by the head's weight: fixed (``weights``), or learned by uncertainty weighting
(Kendall, Gal and Cipolla, 2018): a head's terms are scaled by ``exp(-s)`` and ``s`` is added to the loss,
where ``s`` (a log variance per head) trains with the model and is never exported. The learned weights are
reported in the run's ``metrics.json`` (stage ``NN-multitask``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

import edgepeft
from edgepeft import Compressed, StrictModel, Technique

if TYPE_CHECKING:
    import torch


class MultitaskOptions(StrictModel):
    weights: dict[str, Annotated[float, Field(gt=0)]] = Field(
        {}, description="Fixed weight per head, e.g. {rating = 1.0, like = 2.0}; heads left out weigh 1."
    )
    uncertainty: bool = Field(False, description="Learn each head's weight (uncertainty weighting) instead.")


class Multitask(Technique):
    name = "multitask"
    description = "weight each head's loss terms: fixed weights, or learned uncertainty weighting"
    Options = MultitaskOptions
    options: MultitaskOptions
    example_data = "movielens-100k"

    def setup(self, ctx: edgepeft.TrainContext) -> None:
        import torch

        heads = [h.name for h in ctx.data.heads]
        if len(heads) < 2:
            raise edgepeft.ConfigError(
                f"multitask needs a task with several heads; data set {ctx.data.name!r} has one ({heads[0]})",
                where="[[techniques]] multitask",
                fix="Remove the technique, or use a data set with several heads (e.g. movielens-100k)",
            )
        unknown = sorted(set(self.options.weights) - set(heads))
        if unknown:
            raise edgepeft.ConfigError(
                f"multitask weights name heads the data set lacks: {', '.join(unknown)}",
                where="[[techniques]] multitask.weights",
                fix=f"Use the data set's heads: {', '.join(heads)}",
            )
        if self.options.uncertainty and self.options.weights:
            raise edgepeft.ConfigError(
                "multitask sets both fixed weights and uncertainty weighting",
                where="[[techniques]] multitask",
                fix="Keep one: weights = {...} or uncertainty = true",
            )
        self.heads = heads
        self.log_variance = torch.nn.Parameter(torch.zeros(len(heads), device=ctx.device))

    def trainable(self) -> list[torch.nn.Parameter]:
        return [self.log_variance] if self.options.uncertainty else []

    def loss_terms(
        self, terms: dict[str, torch.Tensor], batch: edgepeft.Batch, logits: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        out = dict(terms)
        for index, head in enumerate(self.heads):
            if self.options.uncertainty:
                s = self.log_variance[index]
                weight = (-s).exp()
                out[f"log_variance.{head}"] = s
            else:
                weight = self.options.weights.get(head, 1.0)
            for name, term in terms.items():
                if name.partition(".")[2] == head:  # task.<head>, distill.<head>
                    out[name] = term * weight
        return out

    def compress(self, model: torch.nn.Module, ctx: edgepeft.TrainContext) -> Compressed | None:
        """Changes nothing; reports each head's final weight (learned or fixed)."""
        return Compressed(model=model, report={"head_weights": self.head_weights()})

    def head_weights(self) -> dict[str, Any]:
        if self.options.uncertainty:
            return {h: round(float((-s).exp()), 4) for h, s in zip(self.heads, self.log_variance.detach(), strict=True)}
        return {h: self.options.weights.get(h, 1.0) for h in self.heads}


@edgepeft.hookimpl
def edgepeft_register_techniques(register: edgepeft.Registrar) -> None:
    register(Multitask)

"""Technique plugin ``lowrank``: truncated-SVD factorization of linear and conv layers, then recovery.

A linear layer ``W`` (out x in) becomes two, ``in -> r -> out``; a k x k convolution becomes a k x k
convolution into ``r`` channels followed by a 1x1 convolution (the weight is factorized as an
``out x (in*k*k)`` matrix). The rank ``r`` keeps a fraction of each layer's spectral energy, or one
energy threshold shared by all layers is searched so the model fits a parameter budget. A layer is left
alone where factorizing would not save parameters (and grouped or depthwise convolutions always are).
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, model_validator

import edgepeft
from edgepeft import Compressed, StrictModel, Technique

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger("edgepeft.lowrank")

BISECTION_STEPS = 30


class LowRankOptions(StrictModel):
    energy: float | None = Field(
        None, gt=0, le=1, description="Keep the smallest rank whose singular values hold this share of the energy."
    )
    keep_parameters: float | None = Field(
        None, gt=0, lt=1, description="Factorize until the model has at most this share of its parameters."
    )
    layers: list[str] = Field(["*"], min_length=1, description="Module-name patterns (fnmatch) to consider.")
    epochs: int = Field(3, ge=0, description="Recovery fine-tuning epochs (with the recipe's losses).")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate of the recovery fine-tuning.")

    @model_validator(mode="after")
    def _one_goal(self) -> LowRankOptions:
        if (self.energy is None) == (self.keep_parameters is None):
            raise ValueError("set exactly one of energy (e.g. 0.9) or keep_parameters (e.g. 0.5)")
        return self


@dataclass
class Candidate:
    """A layer that may be factorized: its singular values and what each rank would cost."""

    name: str
    module: nn.Module
    singular: torch.Tensor
    fan_in: int
    fan_out: int

    def rank_for(self, energy: float) -> int:
        import torch

        share = torch.cumsum(self.singular**2, 0) / (self.singular**2).sum()
        return int(torch.searchsorted(share, torch.tensor(energy) - 1e-9).item()) + 1

    def saves(self, rank: int) -> int:
        """Weight parameters saved by factorizing at ``rank`` (negative: it would cost more)."""
        return self.fan_in * self.fan_out - rank * (self.fan_in + self.fan_out)


class LowRank(Technique):
    name = "lowrank"
    description = "SVD factorization of linear and conv layers (rank by retained energy or a parameter budget)"
    Options = LowRankOptions
    options: LowRankOptions
    example_options: ClassVar[dict[str, Any]] = {"energy": 0.9, "epochs": 1}

    def compress(self, model: nn.Module, ctx: edgepeft.TrainContext) -> Compressed | None:
        model = model.cpu().eval()
        candidates = self._candidates(model)
        total = sum(p.numel() for p in model.parameters())
        energy = self.options.energy or self._energy_for_budget(candidates, total)
        ranks = {c.name: c.rank_for(energy) for c in candidates}
        chosen = {c.name: ranks[c.name] for c in candidates if c.saves(ranks[c.name]) > 0}
        if not chosen:
            log.warning("lowrank: no layer would save parameters at energy %.3f; the model is unchanged", energy)
            return None
        for candidate in candidates:
            if candidate.name in chosen:
                _replace(model, candidate.name, _factorize(candidate.module, chosen[candidate.name]))
        log.info("lowrank: factorized %d layers at energy %.3f: %s", len(chosen), energy, chosen)
        ctx.finetune(model, phase=self.name, epochs=self.options.epochs, lr=self.options.lr)
        record = {name: {"rank": rank} for name, rank in chosen.items()}
        return Compressed(model, record={"layers": record}, report={"energy": energy, "ranks": chosen})

    def _candidates(self, model: nn.Module) -> list[Candidate]:
        import torch
        from torch import nn

        found = []
        for name, module in model.named_modules():
            if not name or not any(fnmatch.fnmatchcase(name, pattern) for pattern in self.options.layers):
                continue
            # Exact types: subclasses (e.g. attention's output projection) are read as a weight by their parent.
            if type(module) is nn.Linear or (
                type(module) is nn.Conv2d and module.groups == 1 and module.padding_mode == "zeros"
            ):
                matrix = module.weight.detach().reshape(module.weight.shape[0], -1)
                found.append(Candidate(name, module, torch.linalg.svdvals(matrix), matrix.shape[1], matrix.shape[0]))
        return found

    def _energy_for_budget(self, candidates: list[Candidate], total: int) -> float:
        """The highest energy threshold (one for every layer) at which the model fits ``keep_parameters``."""
        budget = (self.options.keep_parameters or 0) * total

        def size(energy: float) -> int:
            return total - sum(max(0, c.saves(c.rank_for(energy))) for c in candidates)

        low, high = 1e-6, 1.0
        if size(low) > budget:
            raise edgepeft.ConfigError(
                f"low-rank factorization cannot bring the model to {budget:,.0f} parameters: even rank 1 "
                f"everywhere leaves {size(low):,}",
                where="techniques: lowrank.keep_parameters",
                fix="Raise keep_parameters, or prune the model first",
            )
        for _ in range(BISECTION_STEPS):
            middle = (low + high) / 2
            low, high = (middle, high) if size(middle) <= budget else (low, middle)
        return low

    @classmethod
    def rebuild(cls, model: nn.Module, record: dict[str, Any]) -> nn.Module:
        for name, layer in record["layers"].items():
            module = model.get_submodule(name)  # load_model reports a failure here, naming the technique
            _replace(model, name, _factorize(module, layer["rank"], copy_weights=False))
        return model


def _factorize(module: nn.Module, rank: int, *, copy_weights: bool = True) -> nn.Sequential:
    """Two layers whose product is ``module``'s weight truncated to ``rank`` (shapes only without copy)."""
    import torch
    from torch import nn

    if isinstance(module, nn.Linear):
        first = nn.Linear(module.in_features, rank, bias=False)
        second = nn.Linear(rank, module.out_features, bias=module.bias is not None)
    else:
        first = nn.Conv2d(
            module.in_channels,
            rank,
            module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            bias=False,
        )
        second = nn.Conv2d(rank, module.out_channels, 1, bias=module.bias is not None)
    if copy_weights:
        with torch.no_grad():
            matrix = module.weight.reshape(module.weight.shape[0], -1)
            u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
            root = s[:rank].sqrt()
            first.weight.copy_((root[:, None] * vh[:rank]).reshape(first.weight.shape))
            second.weight.copy_((u[:, :rank] * root).reshape(second.weight.shape))
            if module.bias is not None:
                second.bias.copy_(module.bias)
    return nn.Sequential(first, second)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


@edgepeft.hookimpl
def edgepeft_register_techniques(register: edgepeft.Registrar) -> None:
    register(LowRank)

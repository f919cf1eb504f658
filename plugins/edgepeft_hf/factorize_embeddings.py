"""Technique ``factorize-embeddings``: replaces the student's token embedding by a narrow table and a projection
to the hidden size (ALBERT, Lan et al., 2020), initialised by SVD."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, PositiveInt

import edgepeft
from edgepeft import Compressed, StrictModel, Technique

from .classifier import hf_student

if TYPE_CHECKING:
    import torch


class FactorizeOptions(StrictModel):
    rank: PositiveInt = Field(64, description="Width of the token table; a projection maps it to the hidden size.")


class FactorizeEmbeddings(Technique):
    name = "factorize-embeddings"
    description = "token embedding as a narrow table times a projection (ALBERT), initialised by truncated SVD"
    Options = FactorizeOptions
    options: FactorizeOptions
    example_data = "rotten-tomatoes"

    def adapt(self, model: torch.nn.Module, ctx: edgepeft.TrainContext) -> Compressed:
        """The student, before it trains, with a factorized token embedding (rank ``rank``) from the SVD of
        its table; reports the SVD energy kept and the parameters saved."""
        model = hf_student(model, self.name)
        width = model.width()
        if self.options.rank >= width:
            raise edgepeft.ConfigError(
                f"rank {self.options.rank} does not factorize a {width}-wide embedding",
                where="[[techniques]] factorize-embeddings.rank",
                fix=f"Set a rank below {width}",
            )
        before = edgepeft.count_parameters(model)
        energy = model.factorize_embeddings(self.options.rank, from_weights=True)
        report = {
            "rank": self.options.rank,
            "svd_energy_kept": energy,
            "parameters_removed": before - edgepeft.count_parameters(model),
        }
        return Compressed(model=model, record={"rank": self.options.rank}, report=report)

    @classmethod
    def rebuild(cls, model: torch.nn.Module, record: dict[str, Any]) -> torch.nn.Module:
        model.factorize_embeddings(record["rank"], from_weights=False)
        return model

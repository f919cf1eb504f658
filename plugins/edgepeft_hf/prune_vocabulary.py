"""Technique ``prune-vocab``: cuts the student's token embedding to the tokens of the train split (and its
position embedding to the data's length)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

import edgepeft
from edgepeft import Compressed, StrictModel, Technique

from .classifier import hf_student

if TYPE_CHECKING:
    import torch


class VocabularyOptions(StrictModel):
    keep: Literal["train"] = Field("train", description="Keep the tokens the train split uses (and the specials).")
    positions: bool = Field(True, description="Also cut the position embedding to the data's length.")


class PruneVocabulary(Technique):
    name = "prune-vocab"
    description = "keep only the embedding rows of tokens the train split uses (other ids read [UNK]'s) and positions"
    Options = VocabularyOptions
    options: VocabularyOptions
    example_data = "rotten-tomatoes"

    def adapt(self, model: torch.nn.Module, ctx: edgepeft.TrainContext) -> Compressed:
        """The student, before it trains, with its token embedding cut to the train split's tokens (and its
        position embedding to the data's length); the tokenizer is unchanged (the model maps its ids). Exact
        on every text whose tokens all occur in the train split."""
        import numpy as np

        model = hf_student(model, self.name)
        folder = ctx.data.tokenizer_folder(self.name)
        import transformers

        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        unknown = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.pad_token_id
        used = set(np.unique(ctx.data.train.x.astype(np.int64)).tolist()) | set(tokenizer.all_special_ids)
        config = model.model.config
        before, vocabulary = edgepeft.count_parameters(model), config.vocab_size
        kept = sorted(used)
        record: dict[str, Any] = {"kept": kept, "unknown": unknown}
        model.prune_vocabulary(kept, unknown)
        if self.options.positions:
            record["positions"] = int(ctx.data.input_shape[0])
            model.prune_positions(record["positions"])
        validation = ctx.data.validation.x.astype(np.int64)
        unseen = float(np.mean(~np.isin(validation[validation != config.pad_token_id], kept)))
        report = {
            "vocabulary_before": vocabulary,
            "vocabulary_after": len(kept),
            "positions_after": record.get("positions", config.max_position_embeddings),
            "parameters_removed": before - edgepeft.count_parameters(model),
            "validation_tokens_unseen": unseen,
        }
        return Compressed(model=model, record=record, report=report)

    @classmethod
    def rebuild(cls, model: torch.nn.Module, record: dict[str, Any]) -> torch.nn.Module:
        model.prune_vocabulary(record["kept"], record["unknown"])
        if "positions" in record:
            model.prune_positions(record["positions"])
        return model

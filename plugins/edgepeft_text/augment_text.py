"""Technique ``augment-text``: perturbed copies of each training text, and texts of the task's domain without
labels, join its batch (Tang et al., 2019, "Distilling Task-Specific Knowledge from BERT into Simple Neural
Networks"; TinyBERT's augmented transfer set).

Each copy has some of its tokens read ``[MASK]``, some replaced by tokens drawn from the batch's other texts,
and, sometimes, only a short span of its tokens kept; the unlabelled texts (the data set's, e.g. the plot
summaries that come with ``rotten-tomatoes``) are drawn at random. With ``distill``, the teacher labels every
added row as the student sees it, so the student learns the teacher's answers on many more inputs than the
data set holds; for the task loss a copy keeps its source text's label and an unlabelled text takes the
teacher's class.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, model_validator

import edgepeft
from edgepeft import StrictModel, Technique

from .tokenizer import load_tokenizer

if TYPE_CHECKING:
    import numpy as np
    import torch


class AugmentTextOptions(StrictModel):
    copies: int = Field(1, ge=0, le=16, description="Perturbed copies of each training text added to its batch.")
    unlabelled: float = Field(
        0.0,
        ge=0,
        le=16,
        description="Unlabelled texts of the data set drawn per text of the batch (0: none), labelled by the teacher.",
    )
    mask: float = Field(0.1, ge=0, le=1, description="Chance that a token of a copy reads [MASK].")
    replace: float = Field(
        0.1, ge=0, le=1, description="Chance that a token of a copy is replaced by a token of the batch's texts."
    )
    ngram: float = Field(
        0.25, ge=0, le=1, description="Chance that a copy keeps only a random span of 1 to ngram_max tokens."
    )
    ngram_max: int = Field(5, ge=1, description="The longest span an n-gram copy keeps.")

    @model_validator(mode="after")
    def _chances(self) -> AugmentTextOptions:
        if self.mask + self.replace > 1:
            raise ValueError(f"mask + replace is {self.mask + self.replace:g}; a token can take only one of them")
        if not self.copies and not self.unlabelled:
            raise ValueError("copies and unlabelled are both 0: nothing would be added")
        return self


class AugmentText(Technique):
    name = "augment-text"
    description = (
        "perturbed copies of each training text (masked, replaced tokens, short spans) and unlabelled texts "
        "join its batch"
    )
    Options = AugmentTextOptions
    options: AugmentTextOptions
    example_data = "rotten-tomatoes"

    def setup(self, ctx: edgepeft.TrainContext) -> None:
        tokenizer = load_tokenizer(Path(ctx.data.tokenizer_folder(self.name)))
        if self.options.mask and tokenizer.mask_token_id is None:
            raise edgepeft.ConfigError(
                "the tokenizer has no [MASK] token",
                where="[[techniques]] augment-text.mask",
                fix="Set mask = 0, or use a tokenizer with a mask token (BERT's have one)",
            )
        self.pad = int(tokenizer.pad_token_id)
        self.mask_id = tokenizer.mask_token_id
        self.specials = sorted(set(tokenizer.all_special_ids) - {self.mask_id})
        if self.options.unlabelled:
            self._label_unlabelled(ctx)

    def _label_unlabelled(self, ctx: edgepeft.TrainContext) -> None:
        """The data set's unlabelled texts and the teacher's class for each."""
        import torch

        where = "[[techniques]] augment-text.unlabelled"
        if ctx.data.unlabelled is None or not len(ctx.data.unlabelled):
            raise edgepeft.ConfigError(
                f"data set {ctx.data.name!r} holds no unlabelled texts",
                where=where,
                fix="Set unlabelled = 0, or use a data set that has them (rotten-tomatoes: its plot summaries)",
            )
        if ctx.teacher is None or not ctx.data.is_classifier:
            raise edgepeft.ConfigError(
                "unlabelled texts need a teacher to label them, on a classification task",
                where=where,
                fix="Add a [teacher] section to the recipe, or set unlabelled = 0",
            )
        logits = edgepeft.predict(ctx.teacher.to(ctx.device), ctx.data.unlabelled)
        ctx.teacher.cpu()
        self.unlabelled_x = torch.from_numpy(ctx.data.unlabelled)
        self.unlabelled_y = torch.from_numpy(logits.argmax(1)).long()
        self.unlabelled_index = len(ctx.data.train)  # where Batch.index counts the unlabelled rows from

    def augment(self, batch: edgepeft.Batch, generator: torch.Generator) -> edgepeft.Batch:
        """``batch`` followed by ``copies`` perturbed copies of its texts (marked as augmented), then
        ``unlabelled`` texts per text (indexed after the train split, as :class:`edgepeft.Batch` says)."""
        import numpy as np
        import torch

        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
        x = batch.x.cpu().numpy()
        pool = x[~np.isin(x, self.specials)]  # the batch's text tokens, to draw replacements from
        copies = [self._perturb(row, pool, rng) for _ in range(self.options.copies) for row in x]
        n = self.options.copies + 1
        rows = [batch.x, *([torch.from_numpy(np.stack(copies)).to(batch.x.device)] if copies else [])]
        ys = [batch.y.repeat(n, *([1] * (batch.y.dim() - 1)))]
        index = [batch.index.repeat(n)]
        drawn = round(self.options.unlabelled * len(x))
        if drawn:
            chosen = torch.from_numpy(rng.integers(0, len(self.unlabelled_x), drawn))
            rows.append(self.unlabelled_x[chosen].to(batch.x.device))
            ys.append(self.unlabelled_y[chosen].to(batch.y.device))
            index.append((chosen + self.unlabelled_index).to(batch.index))
        previous = batch.augmented if batch.augmented is not None else torch.zeros(len(x), dtype=torch.bool)
        flags = [previous.cpu(), torch.ones(len(copies), dtype=torch.bool), torch.zeros(drawn, dtype=torch.bool)]
        return edgepeft.Batch(x=torch.cat(rows), y=torch.cat(ys), index=torch.cat(index), augmented=torch.cat(flags))

    def _perturb(self, row: np.ndarray, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One copy of the token row ``row``: [CLS] and [SEP] kept, text tokens masked, replaced or cut."""
        import numpy as np

        real = row[row != self.pad]
        head = real[:1] if len(real) and real[0] in self.specials else real[:0]
        tail = real[-1:] if len(real) > len(head) and real[-1] in self.specials else real[:0]
        tokens = real[len(head) : len(real) - len(tail)].copy()
        chance = rng.random(len(tokens))
        if self.mask_id is not None:
            tokens[chance < self.options.mask] = self.mask_id
        replaced = (chance >= self.options.mask) & (chance < self.options.mask + self.options.replace)
        if len(pool) and replaced.any():
            tokens[replaced] = rng.choice(pool, int(replaced.sum()))
        if len(tokens) and rng.random() < self.options.ngram:
            n = int(rng.integers(1, self.options.ngram_max + 1))
            start = int(rng.integers(0, max(1, len(tokens) - n + 1)))
            tokens = tokens[start : start + n]
        out = np.full_like(row, self.pad)
        kept = np.concatenate([head, tokens, tail])
        out[: len(kept)] = kept
        return out

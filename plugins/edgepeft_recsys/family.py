"""Model family ``recsys``: a wide embedding MLP for tabular data with categorical fields, one output per head.

Each id field looks up a row of its embedding table; a multi-hot field (e.g. genres) is the mean of its rows
(a matmul of the normalised 0/1 columns with the table). The field vectors are concatenated and go through a
shared ReLU tower, then a linear map per head. Every head reads the same embeddings and tower; their maps are the
rows of one ``nn.Linear`` (each head's output columns, in order), since litert-torch's int8 quantization gave a
concatenation of per-head layers the first head's range, clipping a binary head's logits to a regression head's.

The tables are most of the parameters, so they can be compressed:

- ``rank`` / ``ranks``: a table is factorised as ``Embedding(rows, rank)`` then ``Linear(rank, dim)``, where that
  is smaller than the full table;
- ``keep_ids`` + ``hash_buckets``: ids ``0..K-1`` (unknown and the K-1 most frequent, as data sets order ids by
  training frequency) keep their rows, every id ``>= K`` shares row ``K + (id - K) % B``; :func:`collision_rate`
  states how many ids then share a row;
- ``share``: fields of a group read one table (a learned per-field vector is added so they stay distinct).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field as Option
from pydantic import PositiveInt

import edgepeft
from edgepeft import ModelFamily, Signature, StrictModel

from .plan import collision_rate

if TYPE_CHECKING:
    import torch


class RecsysOptions(StrictModel):
    dim: PositiveInt = Option(32, description="Embedding width of every field.")
    dims: dict[str, PositiveInt] = Option({}, description="Embedding width per field, overriding dim.")
    hidden: list[PositiveInt] = Option([128, 64], description="Widths of the shared tower's hidden layers.")
    dropout: float = Option(0.0, ge=0, lt=1, description="Dropout after each hidden layer.")
    rank: PositiveInt | None = Option(None, description="Factorise every table to this rank where it saves weights.")
    ranks: dict[str, PositiveInt] = Option({}, description="Rank per field, overriding rank.")
    keep_ids: dict[str, PositiveInt] = Option({}, description="Per hashed field: ids below this keep their own row.")
    hash_buckets: dict[str, PositiveInt] = Option({}, description="Per hashed field: rows shared by the other ids.")
    share: list[list[str]] = Option([], description="Groups of fields that read one table (same width needed).")
    regression_init: float = Option(3.5, description="Initial bias of regression heads (a typical target).")


class RecsysFamily(ModelFamily):
    name = "recsys"
    description = "embedding tables per categorical field (low-rank, hashed or shared), a ReLU tower, linear heads"
    Options = RecsysOptions
    example_data = "movielens-100k"
    example_options: ClassVar[dict[str, Any]] = {"dim": 8, "hidden": [32]}

    def build(self, options: RecsysOptions, input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
        raise edgepeft.ConfigError(
            "the recsys model needs a data set with categorical fields (embedding tables), "
            f"this one has plain inputs of shape {list(input_shape)}",
            fix="Use a data set with fields, e.g. movielens-100k, or another model family",
        )

    def build_for(self, options: RecsysOptions, signature: Signature) -> torch.nn.Module:
        from .network import Recsys

        return Recsys(options, signature)

    def describe(self, model: torch.nn.Module, data: edgepeft.TaskData) -> dict[str, Any]:
        """The embedding report, with each hashed field's collisions weighted by its training-split counts,
        and a note per hashed field stating its collision rate."""
        import numpy as np

        report, notes = model.embedding_report(), []
        for entry, spec in zip(report, model.fields_plan, strict=True):
            if spec.keep is None or spec.buckets is None:
                continue
            ids = data.train.x[:, spec.column].astype(np.int64)
            counts = np.bincount(ids, minlength=spec.field.cardinality).tolist()
            rate = collision_rate(spec.field.cardinality, spec.keep, spec.buckets, counts)
            entry["weighted_share"] = rate["weighted_share"]
            notes.append(
                f"{spec.field.name}: ids from {spec.keep} on ({rate['hashed_ids']:,} of {spec.field.cardinality:,}) "
                f"hashed into {spec.buckets} rows; {rate['collision_share']:.1%} of the ids share a row, "
                f"{rate['weighted_share']:.1%} of training interactions"
            )
        return {"embeddings": report, "notes": notes}

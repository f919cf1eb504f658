"""The recsys model's torch modules, built from its plan (imported when a model is built: it imports torch)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgepeft import Signature

from .family import RecsysOptions
from .plan import FieldPlan, TablePlan, collision_rate, plan


class Table(nn.Module):
    """An embedding table, factorised as ``Embedding(rows, rank)`` then ``Linear(rank, dim)`` when low rank."""

    def __init__(self, spec: TablePlan) -> None:
        super().__init__()
        self.embedding = nn.Embedding(spec.rows, spec.rank or spec.dim)
        self.project = nn.Linear(spec.rank, spec.dim, bias=False) if spec.rank else nn.Identity()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # index_select (TFLite GATHER) rather than embedding (EMBEDDING_LOOKUP, whose int8-dynamic
        # conversion LiteRT refuses to load) or weight[ids] (ONNX GatherND, which needs int64 ids)
        return self.project(torch.index_select(self.embedding.weight, 0, ids))

    def mean(self, hot: torch.Tensor) -> torch.Tensor:
        """The mean of the rows marked 1 in ``hot`` (batch, n): zero where none is."""
        weights = hot / hot.sum(dim=1, keepdim=True).clamp(min=1.0)
        return self.project(weights @ self.embedding.weight[: hot.shape[1]])


class Recsys(nn.Module):
    """Embeddings of every field, concatenated, a ReLU tower, the heads' linear maps as one layer."""

    def __init__(self, options: RecsysOptions, signature: Signature) -> None:
        super().__init__()
        self.tables_plan, self.fields_plan = plan(options, signature)
        self.tables = nn.ModuleDict({t.name: Table(t) for t in self.tables_plan})
        dims = {t.name: t.dim for t in self.tables_plan}
        self.field_bias = nn.ParameterDict(
            {f.field.name: nn.Parameter(torch.randn(dims[f.table])) for f in self.fields_plan if f.shared}
        )
        layers: list[nn.Module] = []
        width = sum(dims[f.table] for f in self.fields_plan)
        for hidden in options.hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            layers += [nn.Dropout(options.dropout)] if options.dropout else []
            width = hidden
        self.tower = nn.Sequential(*layers)
        self.heads = nn.Linear(width, signature.outputs)
        with torch.no_grad():
            for head, columns in signature.columns():
                if head.kind == "regression":
                    self.heads.bias[columns] = options.regression_init

    def _ids(self, x: torch.Tensor, spec: FieldPlan) -> torch.Tensor:
        """The field's row indices: its column as integers (which quantizers leave alone), clamped to the
        valid ids, rare ids hashed."""
        ids = x[:, spec.column].to(torch.int32).clamp(0, spec.field.cardinality - 1)
        if spec.keep is not None and spec.buckets is not None and spec.rows < spec.field.cardinality:
            ids = torch.where(ids >= spec.keep, spec.keep + torch.remainder(ids - spec.keep, spec.buckets), ids)
        return ids

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vectors = []
        for spec in self.fields_plan:
            table = self.tables[spec.table]
            if spec.field.multi_hot:
                vector = table.mean(x[:, spec.column : spec.column + spec.field.cardinality])
            else:
                vector = table(self._ids(x, spec))
            vectors.append(vector + self.field_bias[spec.field.name] if spec.shared else vector)
        hidden = self.tower(torch.cat(vectors, dim=1))
        return self.heads(hidden)

    def embedding_report(self) -> list[dict[str, Any]]:
        """Per field: its table, rows, width, rank, hashing figures (:func:`collision_rate`) and its own
        parameters (a shared table counts under its first field; the per-field vector under each)."""
        tables = {t.name: t for t in self.tables_plan}
        report = []
        for spec in self.fields_plan:
            table = tables[spec.table]
            own = table.parameters if table.fields[0] == spec.field.name else 0
            hashing = (
                collision_rate(spec.field.cardinality, spec.keep, spec.buckets)
                if spec.keep is not None and spec.buckets is not None
                else {"hashed_ids": 0, "colliding_ids": 0, "collision_share": 0.0}
            )
            report.append(
                {
                    "field": spec.field.name,
                    "table": spec.table,
                    "shared_with": [n for n in table.fields if n != spec.field.name],
                    "rows": table.rows,
                    "dim": table.dim,
                    "rank": table.rank,
                    "hashed_ids": hashing["hashed_ids"],
                    "colliding_ids": hashing["colliding_ids"],
                    "collision_share": hashing["collision_share"],
                    "parameters": own + (table.dim if spec.shared else 0),
                }
            )
        return report

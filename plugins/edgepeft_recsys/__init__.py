"""Model plugin ``recsys``: a wide embedding MLP for tabular data with categorical fields, one output per head.

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

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field as Option
from pydantic import PositiveInt

import edgepeft
from edgepeft import Field, ModelFamily, Signature, StrictModel

if TYPE_CHECKING:
    import torch
    from torch import nn


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


def collision_rate(
    cardinality: int, keep: int, buckets: int, counts: Sequence[float] | None = None
) -> dict[str, float]:
    """What hashing ids ``>= keep`` into ``buckets`` rows does to a field of ``cardinality`` ids: the ``rows``
    left, the ``hashed_ids``, the ``colliding_ids`` (ids whose row holds more than one id), the ``shared_rows``
    and ``collision_share`` (colliding ids / cardinality). With per-id training ``counts`` it adds
    ``weighted_share``: the share of training occurrences whose id collides."""
    hashed = max(0, cardinality - keep)
    full, extra = divmod(hashed, buckets)  # `extra` buckets hold full + 1 ids, the others `full`
    colliding = (extra * (full + 1) if full >= 1 else 0) + ((buckets - extra) * full if full >= 2 else 0)
    shared_rows = (extra if full >= 1 else 0) + (buckets - extra if full >= 2 else 0)
    result: dict[str, float] = {
        "rows": min(cardinality, keep + buckets),
        "hashed_ids": hashed,
        "colliding_ids": colliding,
        "shared_rows": shared_rows,
        "collision_share": colliding / cardinality,
    }
    if counts is not None:
        size = [full + 1 if b < extra else full for b in range(min(buckets, hashed))]
        hit = sum(c for i, c in enumerate(counts[keep:cardinality], start=keep) if size[(i - keep) % buckets] > 1)
        result["weighted_share"] = hit / max(sum(counts[:cardinality]), 1e-12)
    return result


@dataclass(frozen=True)
class TablePlan:
    """One embedding table: its name (its first field's), the fields reading it, rows, width, rank."""

    name: str
    fields: tuple[str, ...]
    rows: int
    dim: int
    rank: int | None

    @property
    def parameters(self) -> int:
        return self.rows * self.rank + self.rank * self.dim if self.rank else self.rows * self.dim


@dataclass(frozen=True)
class FieldPlan:
    """How one field reads its table: its first input column, hashing (``keep``, ``buckets``), shared or not."""

    field: Field
    column: int
    table: str
    keep: int | None
    buckets: int | None
    shared: bool

    @property
    def rows(self) -> int:
        """The rows this field's ids map to."""
        if self.keep is None or self.buckets is None:
            return self.field.cardinality
        return min(self.field.cardinality, self.keep + self.buckets)


def plan(options: RecsysOptions, signature: Signature) -> tuple[list[TablePlan], list[FieldPlan]]:
    """The tables and field lookups ``options`` build for ``signature``; a ConfigError for what cannot be built."""
    fields = {f.name: f for f in signature.fields}
    if not fields:
        raise edgepeft.ConfigError(
            "the recsys model needs a data set with categorical fields", fix="Use e.g. movielens-100k"
        )
    width = sum(f.width for f in signature.fields)
    if signature.input_shape != (width,):
        raise edgepeft.ConfigError(
            f"the data set's fields span {width} columns, but its inputs have shape {list(signature.input_shape)}",
            fix="The data set's fields must cover its input columns, in order",
        )
    grouped = [name for group in options.share for name in group]
    for option, names in (
        ("dims", options.dims),
        ("ranks", options.ranks),
        ("keep_ids", options.keep_ids),
        ("hash_buckets", options.hash_buckets),
        ("share", grouped),
    ):
        unknown = sorted(set(names) - set(fields))
        if unknown:
            raise edgepeft.ConfigError(
                f"recsys option {option} names unknown fields {unknown}", fix=f"The fields are {list(fields)}"
            )
    duplicates = sorted({name for name in grouped if grouped.count(name) > 1})
    if duplicates:
        raise edgepeft.ConfigError(f"recsys option share puts {duplicates} in more than one group")
    if set(options.keep_ids) != set(options.hash_buckets):
        raise edgepeft.ConfigError(
            "recsys options keep_ids and hash_buckets must name the same fields, "
            f"got {sorted(options.keep_ids)} and {sorted(options.hash_buckets)}"
        )
    multi_hot = sorted(name for name in options.keep_ids if fields[name].multi_hot)
    if multi_hot:
        raise edgepeft.ConfigError(f"multi-hot fields {multi_hot} cannot be hashed", fix="Remove them from keep_ids")

    groups = [tuple(g) for g in options.share if g] + [(n,) for n in fields if n not in grouped]
    group_of = {name: group for group in groups for name in group}
    field_plans, column = [], 0
    rows: dict[str, int] = {}
    for field in signature.fields:
        group = group_of[field.name]
        keep, buckets = options.keep_ids.get(field.name), options.hash_buckets.get(field.name)
        spec = FieldPlan(field, column, group[0], keep, buckets, shared=len(group) > 1)
        field_plans.append(spec)
        rows[spec.table] = max(rows.get(spec.table, 0), spec.rows)
        column += field.width
    tables = []
    for group in groups:
        dims = {name: options.dims.get(name, options.dim) for name in group}
        ranks = {name: options.ranks.get(name, options.rank) for name in group}
        for what, values in (("widths", dims), ("ranks", ranks)):
            if len(set(values.values())) > 1:
                raise edgepeft.ConfigError(
                    f"fields {list(group)} share a table but have different {what} {values}",
                    fix="Give the fields of a share group the same dims and ranks",
                )
        size, dim, rank = rows[group[0]], dims[group[0]], ranks[group[0]]
        if rank is not None and size * rank + rank * dim >= size * dim:
            rank = None  # factorising would not save weights
        tables.append(TablePlan(group[0], group, size, dim, rank))
    return tables, field_plans


@functools.cache
def recsys_class() -> type[nn.Module]:
    """The model class, defined on first use so that loading the plugin does not import torch."""
    import torch
    from torch import nn

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

    return Recsys


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
        return recsys_class()(options, signature)

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


@edgepeft.hookimpl
def edgepeft_register_models(register: edgepeft.Registrar) -> None:
    register(RecsysFamily)

"""The recsys model's layout, decided before any tensor exists: which embedding table each field reads, its
rows, width and rank, and what hashing rare ids costs in collisions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import edgepeft
from edgepeft import Field, Signature

if TYPE_CHECKING:
    from .family import RecsysOptions


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

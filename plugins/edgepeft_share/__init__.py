"""Technique plugin ``share``: cross-layer parameter sharing (ALBERT, Lan et al., 2020).

The student's repeated blocks (a transformer's encoder layers, or any ``ModuleList`` of same-type modules)
all use the weights of one of them, so the model keeps its depth and computation while its parameters shrink
to one block's. ``parts`` shares only some of each block's submodules (ALBERT's shared-attention or
shared-feed-forward variants). Sharing happens before the student trains; the shared block starts from the
``source`` block's weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, NonNegativeInt

import edgepeft
from edgepeft import Compressed, StrictModel, Technique

if TYPE_CHECKING:
    import torch
    from torch import nn


class ShareOptions(StrictModel):
    blocks: str | None = Field(
        None, description="Dotted name of the list of repeated blocks (default: the largest such list)."
    )
    source: NonNegativeInt = Field(0, description="The block whose weights every block uses.")
    parts: list[str] = Field(
        [], description="Submodules of each block to share, e.g. ['attention'] (default: the whole block)."
    )


def repeated_blocks(model: nn.Module) -> dict[str, nn.ModuleList]:
    """Every ``ModuleList`` of ``model`` holding at least two modules of one type, by dotted name."""
    from torch import nn

    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) > 1 and len({type(m) for m in module}) == 1
    }


class Share(Technique):
    name = "share"
    description = "cross-layer parameter sharing (ALBERT): every repeated block uses one block's weights"
    Options = ShareOptions
    options: ShareOptions
    example_data = "rotten-tomatoes"

    def adapt(self, model: torch.nn.Module, ctx: edgepeft.TrainContext) -> Compressed:
        """The student, before it trains, with its blocks sharing the ``source`` block's weights."""
        before = edgepeft.count_parameters(model)
        record = {**self.options.model_dump(mode="json"), "blocks": self._blocks_name(model)}
        shared = share(model, record)
        report = {
            "blocks": record["blocks"],
            "blocks_sharing": shared,
            "parameters_removed": before - edgepeft.count_parameters(model),
        }
        return Compressed(model=model, record=record, report=report)

    def _blocks_name(self, model: nn.Module) -> str:
        found = repeated_blocks(model)
        if self.options.blocks is not None:
            if self.options.blocks not in found:
                raise edgepeft.ConfigError(
                    f"the model has no list of repeated blocks named {self.options.blocks!r}",
                    where="[[techniques]] share.blocks",
                    fix=f"Use one of: {', '.join(found) or '(none: the model has no repeated blocks)'}",
                )
            return self.options.blocks
        if not found:
            raise edgepeft.ConfigError(
                f"{type(model).__name__} has no repeated blocks to share (a ModuleList of two or more alike)",
                where="[[techniques]] share",
                fix="Remove the technique, or give the student at least two layers",
            )
        return max(found, key=lambda name: edgepeft.count_parameters(found[name]))

    @classmethod
    def rebuild(cls, model: torch.nn.Module, record: dict[str, Any]) -> torch.nn.Module:
        share(model, record)
        return model


def share(model: nn.Module, record: dict[str, Any]) -> int:
    """Make the blocks ``record`` names use its source block's modules; returns how many blocks share."""
    blocks = model.get_submodule(record["blocks"])
    source = record["source"]
    if source >= len(blocks):
        raise edgepeft.ConfigError(
            f"source block {source} does not exist: {record['blocks']} has {len(blocks)} blocks",
            where="[[techniques]] share.source",
            fix=f"Pick a block from 0 to {len(blocks) - 1}",
        )
    missing = [part for part in record["parts"] if not hasattr(blocks[source], part)]
    if missing:
        children = ", ".join(name for name, _ in blocks[source].named_children())
        raise edgepeft.ConfigError(
            f"the blocks have no submodule {', '.join(missing)}",
            where="[[techniques]] share.parts",
            fix=f"Use the blocks' submodules: {children}",
        )
    for index in range(len(blocks)):
        if index == source:
            continue
        if not record["parts"]:
            blocks[index] = blocks[source]
        for part in record["parts"]:
            setattr(blocks[index], part, getattr(blocks[source], part))
    return len(blocks)


@edgepeft.hookimpl
def edgepeft_register_techniques(register: edgepeft.Registrar) -> None:
    register(Share)

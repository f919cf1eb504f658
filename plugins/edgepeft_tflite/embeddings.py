"""Token tables stored int8 in int8 exports (the converter's quantizer leaves embeddings float)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

VOCABULARY_ROWS = 1024
"""Embedding tables of this many rows or more are token tables, stored int8 in int8 exports."""


def int8_embeddings(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose token tables are int8 with a float scale per row (symmetric): a lookup
    gathers int8 rows and scales them, so a table takes a quarter of its float size in the file."""
    import copy

    import torch
    from torch import nn

    class Int8Lookup(nn.Module):
        def __init__(self, embedding: nn.Embedding) -> None:
            super().__init__()
            weight = embedding.weight.detach().float()
            scale = weight.abs().amax(1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny) / 127
            self.register_buffer("table", torch.round(weight / scale).to(torch.int8))
            self.register_buffer("scale", scale)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.table[ids].to(torch.float32) * self.scale[ids]

    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Embedding) and module.num_embeddings >= VOCABULARY_ROWS:
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent), attr, Int8Lookup(module))
    return model

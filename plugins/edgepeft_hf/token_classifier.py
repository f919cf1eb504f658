"""The hf-classifier's torch modules: the wrapper that takes float token ids, and the factorized token embedding.
Imported when a model is built (it imports torch)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import edgepeft


class TokenClassifier(nn.Module):
    """Float token ids in, class logits out; ``model`` is the Hugging Face module. After vocabulary
    pruning, ``token_map`` maps the tokenizer's ids to the rows the pruned embedding kept."""

    def __init__(self, model: nn.Module, pad_token_id: int, pooling: str = "cls") -> None:
        super().__init__()
        self.model = model
        self.pad_token_id = pad_token_id
        self.pooling = pooling
        self.register_buffer("token_map", None)  # set (and saved) by prune_vocabulary
        self.capture = False
        self.intermediates: dict[str, Any] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x.to(torch.int64)
        if self.training and not torch.compiler.is_compiling():  # drop the columns every row pads
            used = (ids != self.pad_token_id).any(0).nonzero()
            ids = ids[:, : int(used.max()) + 1 if len(used) else 1]
        mask = (ids != self.pad_token_id).to(torch.int64)
        if self.token_map is not None:  # index_select exports to ONNX Gather and TFLite GATHER alike
            ids = torch.index_select(self.token_map, 0, ids.reshape(-1)).reshape(ids.shape)
        inputs = {"output_hidden_states": self.capture, "output_attentions": self.capture}
        if self.pooling == "cls":  # the model's own head
            out = self.model(input_ids=ids, attention_mask=mask, **inputs)
            logits = out.logits
        else:
            out = self.model.base_model(input_ids=ids, attention_mask=mask, **inputs)
            weights = mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
            mean = (out.last_hidden_state * weights).sum(1) / weights.sum(1).clamp_min(1.0)
            pooler = self.model.base_model.pooler
            logits = self.model.classifier(self.model.dropout(pooler.activation(pooler.dense(mean))))
        if self.capture:
            self.intermediates = {"hidden": out.hidden_states, "attention": out.attentions, "mask": mask}
        return logits

    def capture_intermediates(self, on: bool) -> None:
        """Keep each forward's hidden states (embeddings, then each layer), attention probabilities and
        padding mask in ``intermediates`` (for distillation); eager attention computes them."""
        if on:
            self.model.set_attn_implementation("eager")
        self.capture = on
        self.intermediates = {}

    def layer_count(self) -> int:
        return len(self.model.base_model.encoder.layer)

    def width(self) -> int:
        return int(self.model.config.hidden_size)

    def prune_vocabulary(self, kept: list[int], unknown: int) -> None:
        """Keep the embedding rows of the token ids ``kept`` (in that order); any other id reads the row
        of ``unknown`` (which ``kept`` holds)."""
        embedding = self.model.get_input_embeddings()
        table = embedding.table if isinstance(embedding, FactorizedEmbedding) else embedding
        rows = torch.tensor(kept, dtype=torch.int64)
        pruned = nn.Embedding(len(kept), table.embedding_dim)
        with torch.no_grad():  # an already pruned table holds the rows token_map points to
            pruned.weight.copy_(table.weight[rows if self.token_map is None else self.token_map[rows]])
        vocabulary = self.token_map.numel() if self.token_map is not None else table.num_embeddings
        token_map = torch.full((vocabulary,), kept.index(unknown), dtype=torch.int64)
        token_map[rows] = torch.arange(len(kept))
        if isinstance(embedding, FactorizedEmbedding):
            embedding.table = pruned
        else:
            self.model.set_input_embeddings(pruned)
        self.model.config.vocab_size = len(kept)
        self.token_map = token_map

    def prune_positions(self, length: int) -> None:
        """Keep the first ``length`` position embeddings (the longest input the model will see)."""
        embeddings = self.model.base_model.embeddings
        positions = nn.Embedding(length, embeddings.position_embeddings.embedding_dim)
        with torch.no_grad():
            positions.weight.copy_(embeddings.position_embeddings.weight[:length])
        embeddings.position_embeddings = positions
        for name in ("position_ids", "token_type_ids"):  # buffers sized for the old limit
            if isinstance(getattr(embeddings, name, None), torch.Tensor):
                setattr(embeddings, name, getattr(embeddings, name)[:, :length].clone())
        self.model.config.max_position_embeddings = length

    def factorize_embeddings(self, rank: int, *, from_weights: bool) -> float:
        """Replace the token embedding by a ``rank``-wide table and a projection to the hidden size, from
        the truncated SVD of the current table (``from_weights``); returns the share of its energy kept."""
        embedding = self.model.get_input_embeddings()
        if isinstance(embedding, FactorizedEmbedding):
            raise edgepeft.ConfigError(
                "the token embedding is factorized already",
                where="[[techniques]] factorize-embeddings",
                fix="List factorize-embeddings once",
            )
        factorized = FactorizedEmbedding(embedding.num_embeddings, rank, embedding.embedding_dim)
        energy = 1.0
        if from_weights:
            u, s, vh = torch.linalg.svd(embedding.weight.detach(), full_matrices=False)
            with torch.no_grad():
                factorized.table.weight.copy_(u[:, :rank] * s[:rank])
                factorized.project.weight.copy_(vh[:rank].T)
            energy = float((s[:rank] ** 2).sum() / (s**2).sum())
        self.model.set_input_embeddings(factorized)
        return energy


class FactorizedEmbedding(nn.Module):
    """A token embedding as a narrow ``table`` (vocabulary x rank) and a ``project``ion to the hidden size."""

    def __init__(self, vocabulary: int, rank: int, width: int) -> None:
        super().__init__()
        self.table = nn.Embedding(vocabulary, rank)
        self.project = nn.Linear(rank, width, bias=False)

    @property
    def num_embeddings(self) -> int:
        return self.table.num_embeddings

    @property
    def embedding_dim(self) -> int:
        return self.project.out_features

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.project(self.table(ids))

"""Building an hf-classifier: the Hugging Face model in its folder, cut to the chosen encoder layers,
feed-forward neurons and attention heads, wrapped to take float token ids."""

from __future__ import annotations

from typing import TYPE_CHECKING

import edgepeft

from .model_folder import model_folder

if TYPE_CHECKING:
    import torch

    from .classifier import HFClassifierOptions


def build_classifier(options: HFClassifierOptions, num_classes: int) -> torch.nn.Module:
    """The Hugging Face classifier ``options`` describe, wrapped to take float token ids."""
    import transformers
    from torch import nn

    from .token_classifier import TokenClassifier

    transformers.utils.logging.set_verbosity_error()
    folder = model_folder(options.path)
    config = transformers.AutoConfig.from_pretrained(str(folder), num_labels=num_classes, local_files_only=True)
    encoder_layers = config.num_hidden_layers
    if options.layers is not None:
        outside = [i for i in options.layers if not 0 <= i < encoder_layers]
        if outside:
            raise edgepeft.ConfigError(
                f"layers {outside} do not exist: the model in {folder} has {encoder_layers} encoder layers",
                where="model option layers",
                fix=f"Pick layers from 0 to {encoder_layers - 1}",
            )
    if options.hidden_size is not None:
        heads = options.heads or max(1, options.hidden_size // 64)
        if options.hidden_size % heads:
            raise edgepeft.ConfigError(
                f"hidden_size {options.hidden_size} is not a multiple of {heads} heads", where="model option heads"
            )
        config.hidden_size, config.num_attention_heads = options.hidden_size, heads
        config.intermediate_size = 4 * options.hidden_size
    if options.intermediate_size is not None and not options.pretrained:
        config.intermediate_size = options.intermediate_size
    if not options.pretrained:
        if options.layers is not None:
            config.num_hidden_layers = len(options.layers)
        model = transformers.AutoModelForSequenceClassification.from_config(config)
    else:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            str(folder), config=config, local_files_only=True
        )
        if options.layers is not None:
            encoder = model.base_model.encoder
            encoder.layer = nn.ModuleList(encoder.layer[i] for i in options.layers)
            model.config.num_hidden_layers = len(options.layers)
        if options.intermediate_size is not None:
            keep_neurons(model, options.intermediate_size)
    if options.attention_heads is not None:
        keep_heads(model, options.attention_heads)
    if options.pooling == "mean" and not all(
        hasattr(part, name) for part, name in ((model, "classifier"), (model, "dropout"), (model.base_model, "pooler"))
    ):
        raise edgepeft.ConfigError(
            f"pooling = 'mean' needs a BERT-style classifier (pooler, dropout, classifier); {type(model).__name__} "
            "differs",
            where="model option pooling",
            fix='Use pooling = "cls" (the model\'s own head)',
        )
    return TokenClassifier(model, config.pad_token_id or 0, options.pooling)


def keep_neurons(model: torch.nn.Module, size: int) -> None:
    """Cut each encoder layer's feed-forward block to its ``size`` most important neurons: those whose input
    and output weights have the largest norms (product), in their original order."""
    for layer in model.base_model.encoder.layer:
        up, down = layer.intermediate.dense, layer.output.dense
        if size > up.out_features:
            raise edgepeft.ConfigError(
                f"intermediate_size {size} exceeds the pretrained layers' {up.out_features} neurons",
                where="model option intermediate_size",
                fix=f"Set it to {up.out_features} or less",
            )
        importance = up.weight.norm(dim=1) * down.weight.norm(dim=0)
        kept = importance.topk(size).indices.sort().values
        layer.intermediate.dense, layer.output.dense = kept_outputs(up, kept), kept_inputs(down, kept)
    model.config.intermediate_size = size


def kept_outputs(linear: torch.nn.Linear, kept: torch.Tensor) -> torch.nn.Linear:
    """A copy of ``linear`` computing only the outputs at ``kept``."""
    import torch
    from torch import nn

    new = nn.Linear(linear.in_features, len(kept))
    with torch.no_grad():
        new.weight.copy_(linear.weight[kept])
        new.bias.copy_(linear.bias[kept])
    return new


def kept_inputs(linear: torch.nn.Linear, kept: torch.Tensor) -> torch.nn.Linear:
    """A copy of ``linear`` reading only the inputs at ``kept``."""
    import torch
    from torch import nn

    new = nn.Linear(len(kept), linear.out_features)
    with torch.no_grad():
        new.weight.copy_(linear.weight[:, kept])
        new.bias.copy_(linear.bias)
    return new


def keep_heads(model: torch.nn.Module, heads: int) -> None:
    """Cut each encoder layer's self-attention to its ``heads`` most important heads: those whose value and
    output weights have the largest norms (product), in their original order."""
    import torch

    for layer in model.base_model.encoder.layer:
        attention, output = layer.attention.self, layer.attention.output.dense
        size = attention.attention_head_size
        count = attention.query.out_features // size
        if heads > count:
            raise edgepeft.ConfigError(
                f"attention_heads {heads} exceeds the pretrained layers' {count} heads",
                where="model option attention_heads",
                fix=f"Set it to {count} or less",
            )
        value = attention.value.weight.reshape(count, -1).norm(dim=1)
        out = output.weight.reshape(output.out_features, count, size).transpose(0, 1).reshape(count, -1).norm(dim=1)
        kept = (value * out).topk(heads).indices.sort().values
        columns = (kept[:, None] * size + torch.arange(size)).flatten()
        for name in ("query", "key", "value"):
            setattr(attention, name, kept_outputs(getattr(attention, name), columns))
        layer.attention.output.dense = kept_inputs(output, columns)
        attention.num_attention_heads, attention.all_head_size = heads, len(columns)

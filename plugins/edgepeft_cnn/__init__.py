"""Model plugin ``cnn``: a plain conv-BN-ReLU-pool stack with an MLP head, sized by its options."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, PositiveInt

import edgepeft
from edgepeft import ModelFamily, StrictModel

if TYPE_CHECKING:
    import torch


class CNNOptions(StrictModel):
    channels: list[PositiveInt] = Field([32, 64], min_length=1, description="Output channels of each conv block.")
    hidden: int = Field(128, ge=0, description="Width of the hidden linear layer (0: none).")
    dropout: float = Field(0.0, ge=0, lt=1)


class CNN(ModelFamily):
    name = "cnn"
    description = "conv3x3-BN-ReLU blocks (2x2 max-pool while the image is larger than 2x2), then an MLP head"
    Options = CNNOptions
    example_options: ClassVar[dict[str, Any]] = {"channels": [8, 16], "hidden": 16}  # about 2,500 parameters
    example_data = "digits"

    def build(self, options: CNNOptions, input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
        import torch
        from torch import nn

        if len(input_shape) != 3:
            raise edgepeft.ConfigError(
                f"the cnn model needs image inputs (channels, height, width), got shape {list(input_shape)}",
                fix="Use a model family made for this data set's inputs",
            )
        layers: list[nn.Module] = []
        in_channels, size = input_shape[0], min(input_shape[1:])
        for out_channels in options.channels:
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
            ]
            if size > 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            in_channels = out_channels
        layers.append(nn.Flatten())
        features = nn.Sequential(*layers)
        with torch.no_grad():
            flat = features(torch.zeros(1, *input_shape)).shape[1]
        head: list[nn.Module] = [nn.Dropout(options.dropout)] if options.dropout else []
        if options.hidden:
            head += [nn.Linear(flat, options.hidden), nn.ReLU(), nn.Linear(options.hidden, num_classes)]
        else:
            head.append(nn.Linear(flat, num_classes))
        return nn.Sequential(features, *head)


@edgepeft.hookimpl
def edgepeft_register_models(register: edgepeft.Registrar) -> None:
    register(CNN)

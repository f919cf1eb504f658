"""The MobileNetV2 network with torchvision's module names and initialisation (imported when a model is built: it
imports torch)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .mobilenet_v2 import INVERTED_RESIDUAL_SETTING, MobileNetV2Options

STEM_CHANNELS = 32
LAST_CHANNELS = 1280


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, never more than 10% below it (torchvision's)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn_relu6(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """A convolution (padded to keep the size at stride 1), batch norm and ReLU6."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU6(),
    )


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


def stage_strides(keep_resolution_stages: int) -> list[int]:
    """Each stage's first-block stride, with the last ``keep_resolution_stages`` stride-2 stages set to 1."""
    strides = [stride for *_, stride in INVERTED_RESIDUAL_SETTING]
    strided = [i for i, stride in enumerate(strides) if stride == 2]
    for i in strided[len(strided) - keep_resolution_stages :]:
        strides[i] = 1
    return strides


def mobilenet_v2(options: MobileNetV2Options, in_channels: int, num_classes: int) -> nn.Sequential:
    """A freshly initialised MobileNetV2 with torchvision's module names and initialisation."""
    channels = make_divisible(STEM_CHANNELS * options.width_mult)
    last_channels = make_divisible(LAST_CHANNELS * max(1.0, options.width_mult))
    features: list[nn.Module] = [conv_bn_relu6(in_channels, channels, 3, options.stem_stride)]
    strides = stage_strides(options.keep_resolution_stages)
    for (expand_ratio, width, blocks, _), stride in zip(INVERTED_RESIDUAL_SETTING, strides, strict=True):
        out_channels = make_divisible(width * options.width_mult)
        for i in range(blocks):
            features.append(InvertedResidual(channels, out_channels, stride if i == 0 else 1, expand_ratio))
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
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out")
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0, 0.01)
        nn.init.zeros_(module.bias)

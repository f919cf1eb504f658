"""Model family ``mobilenet-v2`` (:mod:`.mobilenet_v2`): MobileNetV2, optionally from ImageNet weights shipped
offline (:mod:`.imagenet_weights`); its torch modules in :mod:`.network`."""

from __future__ import annotations

import edgepeft

from .mobilenet_v2 import MobileNetV2


@edgepeft.hookimpl
def edgepeft_register_models(register: edgepeft.Registrar) -> None:
    register(MobileNetV2)

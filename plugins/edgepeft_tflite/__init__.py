"""Backend plugin ``tflite``: convert with litert-torch, run with LiteRT (see :mod:`edgepeft_tflite.backend`)."""

from __future__ import annotations

import edgepeft


@edgepeft.hookimpl
def edgepeft_register_backends(register: edgepeft.Registrar) -> None:
    from .backend import TFLiteBackend

    register(TFLiteBackend)

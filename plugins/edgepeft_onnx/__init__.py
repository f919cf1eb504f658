"""Backend plugin ``onnx``: the dynamo ONNX exporter, run by onnxruntime (see :mod:`edgepeft_onnx.backend`)."""

from __future__ import annotations

import edgepeft


@edgepeft.hookimpl
def edgepeft_register_backends(register: edgepeft.Registrar) -> None:
    from .backend import ONNXBackend

    register(ONNXBackend)

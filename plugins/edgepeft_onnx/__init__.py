"""Backend plugin ``onnx``: the dynamo ONNX exporter, run by onnxruntime's CPU execution provider."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import edgepeft
from edgepeft import Artifact, Backend, ExportOptions, Runner, TensorSpec

if TYPE_CHECKING:
    import torch


class ONNXBackend(Backend):
    name = "onnx"
    description = "ONNX (opset from torch.onnx dynamo exporter), run with onnxruntime"
    requires = ("onnx", "onnxruntime", "onnxscript")
    install_hint = "pip install 'edgepeft[onnx]'"

    def export(self, model: torch.nn.Module, example: np.ndarray, directory: Path, options: ExportOptions) -> Artifact:
        import onnx
        import torch

        path = directory / "model.onnx"
        batch = torch.export.Dim("batch", min=1, max=65536)
        # The exporter warns about optional torchvision ops and deprecated pytree APIs; neither concerns us.
        logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                torch.onnx.export(
                    model.eval(),
                    (torch.from_numpy(example),),
                    str(path),
                    dynamo=True,
                    dynamic_shapes=({0: batch},),
                    input_names=["input"],
                    output_names=["logits"],
                    external_data=False,
                    verbose=False,
                )
            onnx.checker.check_model(str(path))
        except Exception as exc:
            raise edgepeft.ExportError(
                f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}", where=type(model).__name__
            ) from exc
        graph = onnx.load(str(path), load_external_data=False).graph

        def specs(values) -> list[TensorSpec]:
            return [
                TensorSpec(
                    v.name,
                    [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim],
                    onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name,
                )
                for v in values
            ]

        return Artifact(backend=self.name, path=path, inputs=specs(graph.input), outputs=specs(graph.output))

    def load(self, artifact: Artifact, options: ExportOptions) -> Runner:
        import onnxruntime as ort

        settings = ort.SessionOptions()
        settings.intra_op_num_threads = options.threads
        settings.inter_op_num_threads = 1
        settings.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(artifact.path), settings, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise edgepeft.ExportError(
                f"onnxruntime cannot load the model: {str(exc).splitlines()[0]}",
                where=str(artifact.path),
                fix="The file is corrupt or uses operators this onnxruntime lacks; re-export it",
            ) from None
        input_name = session.get_inputs()[0].name

        def run(x: np.ndarray) -> np.ndarray:
            return session.run(None, {input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

        return run


@edgepeft.hookimpl
def edgepeft_register_backends(register: edgepeft.Registrar) -> None:
    register(ONNXBackend)

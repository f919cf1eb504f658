"""The ``onnx`` backend: the dynamo ONNX exporter, run by onnxruntime.

Precisions: ``fp32``; ``int8-dynamic`` (onnxruntime ``quantize_dynamic``: int8 weights, activations
quantized at run time); ``int8`` (``quantize_static`` in QDQ format, per-channel weights, activations
calibrated on training inputs); see :mod:`edgepeft_onnx.quantization`.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import edgepeft
from edgepeft import Artifact, Backend, BundleFacts, ExportOptions, TensorSpec

if TYPE_CHECKING:
    import numpy as np
    import torch

    from edgepeft import Runner


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter warns about optional torchvision ops and deprecated pytree APIs; neither concerns users."""
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


class ONNXBackend(Backend):
    name = "onnx"
    description = "ONNX (torch.onnx dynamo exporter), run with onnxruntime; int8 via onnxruntime quantization"
    requires = ("onnx", "onnxruntime", "onnxscript")
    install_hint = "pip install 'edgepeft[onnx]'"
    precisions = ("fp32", "int8", "int8-dynamic")
    teacher_precisions = ("fp32",)
    baseline_precisions = ("int8-dynamic",)  # quantize_dynamic, the default of Optimum and Olive
    bench_rank = 1

    def export(self, model: torch.nn.Module, example: np.ndarray, directory: Path, options: ExportOptions) -> Artifact:
        import onnx

        from .quantization import quantize

        path = directory / "model.onnx"
        if options.precision == "fp32":
            self._export_fp32(model, example, path)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                fp32 = Path(tmp) / "fp32.onnx"
                self._export_fp32(model, example, fp32)
                quantize(fp32, path, options, Path(tmp))
        graph = onnx.load(str(path), load_external_data=False).graph
        return Artifact(
            backend=self.name,
            path=path,
            inputs=_specs(graph.input),
            outputs=_specs(graph.output),
            precision=options.precision,
        )

    @staticmethod
    def _export_fp32(model: torch.nn.Module, example: np.ndarray, path: Path) -> None:
        import onnx
        import torch

        batch = torch.export.Dim("batch", min=1, max=65536)
        try:
            with _quiet_exporter():
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
                f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                where=type(model).__name__,
                fix="Run `edgepeft check` to list operators the ONNX exporter cannot convert",
            ) from exc

    # -- run -----------------------------------------------------------------------------------------

    def _session(self, model: str | bytes, where: Path, options: ExportOptions) -> Any:
        import onnxruntime as ort

        settings = ort.SessionOptions()
        settings.intra_op_num_threads = options.threads
        settings.inter_op_num_threads = 1
        settings.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if options.device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            return ort.InferenceSession(model, settings, providers=providers)
        except Exception as exc:
            raise edgepeft.ExportError(
                f"onnxruntime cannot load the model: {str(exc).splitlines()[0]}",
                where=str(where),
                fix="The file is corrupt or uses operators this onnxruntime lacks; re-export it",
            ) from None

    def load(self, artifact: Artifact, options: ExportOptions) -> Runner:
        import numpy as np

        session = self._session(str(artifact.path), artifact.path, options)
        input_name = session.get_inputs()[0].name

        def run(x: np.ndarray) -> np.ndarray:
            return session.run(None, {input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]

        return run

    def intermediates(self, artifact: Artifact, options: ExportOptions, x: np.ndarray) -> dict[str, np.ndarray]:
        import numpy as np
        import onnx

        model = onnx.load(str(artifact.path))
        owner: dict[str, str] = {}  # tensor -> PyTorch module path, the last node of a module wins
        for node in model.graph.node:
            scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), None)
            if scopes:
                parts = [s.strip(" '\"") for s in scopes.strip("[]").split(",")]
                if len(parts) >= 2 and parts[-2]:
                    for output in node.output:
                        owner[output] = parts[-2]
        last = {path: tensor for tensor, path in owner.items()}
        existing = {o.name for o in model.graph.output}
        for tensor in last.values():
            if tensor not in existing:
                model.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
        session = self._session(model.SerializeToString(), artifact.path, options)
        names = [o.name for o in session.get_outputs()]
        values = dict(zip(names, session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)}), strict=True))
        return {path: np.asarray(values[tensor], dtype=np.float32) for path, tensor in last.items()}

    def unsupported_ops(self, program: torch.export.ExportedProgram) -> list[str] | None:
        # The exporter's own registry and decomposition pass: what it cannot find here, it cannot export.
        from torch.onnx._internal.exporter import _fx_passes, _registration

        with _quiet_exporter():
            registry = _registration.ONNXRegistry.from_torchlib()
            decomposed = _fx_passes.decompose_with_registry(program, registry)
        return sorted(
            {
                str(node.target)
                for node in decomposed.graph.nodes
                if node.op == "call_function"
                and hasattr(node.target, "_schema")
                and not registry.is_registered(node.target)
            }
        )

    def app_snippet(self, facts: BundleFacts) -> str | None:
        """Running the file with onnxruntime in Python."""
        return "\n".join(
            [
                "## Load it (Python, onnxruntime)",
                "```python",
                "import numpy as np, onnxruntime as ort",
                f"session = ort.InferenceSession('{facts.model_file}')",
                f"scores = session.run(None, {{'{facts.inputs[0].name}': x.astype(np.float32)}})[0]"
                "  # x: preprocessed batch",
                "```",
            ]
        )


def _specs(values: Any) -> list[TensorSpec]:
    import onnx

    return [
        TensorSpec(
            v.name,
            [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim],
            onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name,
        )
        for v in values
    ]

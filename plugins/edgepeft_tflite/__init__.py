"""Backend plugin ``tflite``: convert with litert-torch, run with LiteRT (ai-edge-litert).

Precisions: ``fp32``; ``int8-dynamic`` (int8 weights, float input and output); ``int8`` (full integer:
weights and activations int8, calibrated on training inputs, int8 input and output). In both int8 precisions
token tables (embeddings of ``VOCABULARY_ROWS`` rows or more) are stored int8 too (symmetric, a scale per
row), which the converter's quantizer leaves float; small position and type tables stay float. The model is
built for the device profile's batch size (TFLite graphs have fixed shapes); the runner pads a short batch.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import edgepeft
from edgepeft import Artifact, Backend, ExportOptions, TensorSpec

if TYPE_CHECKING:
    import numpy as np
    import torch

    from edgepeft import Runner

VOCABULARY_ROWS = 1024
"""Embedding tables of this many rows or more are token tables, stored int8 in int8 exports."""


@contextlib.contextmanager
def _native_stderr_captured() -> Iterator[None]:
    """Hold back what the converter's and runtime's C++ code prints to stderr (INFO lines, banners);
    if the block fails, the captured lines are shown, since they often explain why."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace")[-4000:])
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _quiet_runtime_logs() -> None:
    """Keep the converter's and runtime's informational chatter off the user's terminal."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GLOG_minloglevel", "2")
    edgepeft.quiet_loggers()


def _interpreter_class() -> Any:
    """LiteRT's interpreter; tflite-runtime only as a fallback (it mis-runs some int8 models)."""
    _quiet_runtime_logs()
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter

        warnings.warn(
            "ai-edge-litert is not installed; running .tflite files with tflite-runtime, which rejects or "
            "mis-runs some int8 models. The parity gate checks every export; install ai-edge-litert to be safe.",
            stacklevel=2,
        )
    return Interpreter


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    import numpy as np

    if detail["dtype"] != np.int8:
        return x.astype(detail["dtype"])
    scale, zero = detail["quantization"]
    return np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)


def _dequantize(x: np.ndarray, detail: dict) -> np.ndarray:
    import numpy as np

    if x.dtype not in (np.int8, np.uint8, np.int16, np.int32):
        return x.astype(np.float32)
    params = detail.get("quantization_parameters", {})
    scales, zeros = params.get("scales", np.array([])), params.get("zero_points", np.array([]))
    if len(scales) == 0:
        scale, zero = detail["quantization"]
        return ((x.astype(np.float32) - zero) * scale) if scale else x.astype(np.float32)
    if len(scales) == 1:
        return (x.astype(np.float32) - zeros[0]) * scales[0]
    shape = [1] * x.ndim
    shape[params["quantized_dimension"]] = len(scales)
    return (x.astype(np.float32) - zeros.reshape(shape)) * scales.reshape(shape)


def _module_path(tensor_name: str) -> str | None:
    """The PyTorch module path a LiteRT tensor came from, from litert-torch's naming:
    ``pkg.RootClass/pkg.ChildClass_attr/pkg.GrandChild_attr;...`` -> ``attr.attr``."""
    segments = tensor_name.split(";")[0].split("/")
    if len(segments) < 2 or "." not in segments[0]:
        return None
    attrs = []
    for segment in segments[1:]:
        class_name = segment.rsplit(".", 1)[-1]
        if "_" not in class_name:
            return None
        attrs.append(class_name.split("_", 1)[1])
    if segments[0].endswith("ChannelLastIOWrapper") and attrs[:1] == ["wrapped"]:
        attrs = attrs[1:]
    return ".".join(attrs) or None


class TFLiteBackend(Backend):
    name = "tflite"
    description = "LiteRT flatbuffer (.tflite) converted by litert-torch, run by ai-edge-litert"
    requires = ("litert_torch", "torchao")
    install_hint = "pip install 'edgepeft[tflite]'"
    precisions = ("fp32", "int8", "int8-dynamic")
    layouts = ("NCHW", "NHWC")

    @classmethod
    def unavailable_reason(cls) -> str | None:
        reason = super().unavailable_reason()
        if reason is None and not any(importlib.util.find_spec(m) for m in ("ai_edge_litert", "tflite_runtime")):
            reason = f"missing ai_edge_litert; {cls.install_hint}"
        return reason

    @classmethod
    def package_versions(cls) -> dict[str, str]:
        import importlib.metadata

        found = super().package_versions()
        for dist in ("litert-torch", "ai-edge-litert", "tflite-runtime"):
            try:
                found[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
        return found

    # -- export --------------------------------------------------------------------------------------

    def export(self, model: torch.nn.Module, example: np.ndarray, directory: Path, options: ExportOptions) -> Artifact:
        _quiet_runtime_logs()
        with _native_stderr_captured():  # importing the converter prints C++ start-up banners
            import litert_torch
        import torch

        litert_torch.config.show_progress = False
        nhwc = options.input_layout == "NHWC" and example.ndim == 4
        if options.precision != "fp32":
            model = _int8_embeddings(model)
        module = litert_torch.to_channel_last_io(model.eval(), args=[0]) if nhwc else model.eval()
        batch = torch.from_numpy(self._layout(_fixed_batch(example, options.batch_size), nhwc))
        path = directory / "model.tflite"
        try:
            with warnings.catch_warnings(), _native_stderr_captured():
                warnings.simplefilter("ignore")
                if options.precision == "fp32":
                    edge = litert_torch.convert(module, (batch,))
                else:
                    edge = self._convert_int8(module, batch, options, nhwc)
                edge.export(str(path))
        except edgepeft.EdgepeftError:
            raise
        except Exception as exc:
            raise edgepeft.ExportError(
                f"litert-torch conversion failed: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                where=type(model).__name__,
                fix="Run `edgepeft check` to list operators LiteRT cannot convert",
            ) from exc
        with _native_stderr_captured():
            interpreter = _interpreter_class()(model_path=str(path))
        return Artifact(
            backend=self.name,
            path=path,
            inputs=[self._spec(d) for d in interpreter.get_input_details()],
            outputs=[self._spec(d) for d in interpreter.get_output_details()],
            precision=options.precision,
        )

    def _convert_int8(self, module: torch.nn.Module, batch: torch.Tensor, options: ExportOptions, nhwc: bool) -> Any:
        import litert_torch
        import numpy as np
        import torch
        from litert_torch.quantize import pt2e_quantizer, quant_config
        from torchao.quantization.pt2e import move_exported_model_to_eval
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        dynamic = options.precision == "int8-dynamic"
        quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
            pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic)
        )
        prepared = prepare_pt2e(torch.export.export(module, (batch,)).module(), quantizer)
        if dynamic:
            prepared(batch)  # per-channel weight observers need one pass
        else:
            if options.calibration is None:
                raise edgepeft.ConfigError(
                    "int8 (full integer) TFLite export needs calibration inputs from the training split",
                    fix="Pass ExportOptions(calibration=...) or use --precision int8-dynamic",
                )
            calibration = options.calibration
            for start in range(0, len(calibration), options.batch_size):
                # a short last chunk is filled with real training rows, never zeros (they would skew ranges)
                chunk = np.resize(
                    calibration[start : start + options.batch_size], (options.batch_size, *calibration.shape[1:])
                )
                prepared(torch.from_numpy(self._layout(chunk, nhwc)))
        converted = move_exported_model_to_eval(convert_pt2e(prepared, fold_quantize=False))
        for submodule in converted.modules():  # exported graphs refuse .eval(); the flag is what litert checks
            submodule.training = False
        config = quant_config.QuantConfig(pt2e_quantizer=quantizer)
        return litert_torch.convert(converted, (batch,), quant_config=config)

    @staticmethod
    def _layout(x: np.ndarray, nhwc: bool) -> np.ndarray:
        import numpy as np

        return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if nhwc else x, dtype=np.float32)

    @staticmethod
    def _spec(detail: dict) -> TensorSpec:
        import numpy as np

        scale, zero = detail["quantization"]
        return TensorSpec(
            name=detail["name"],
            shape=[int(d) for d in detail["shape"]],
            dtype=np.dtype(detail["dtype"]).name,
            quantization={"scale": float(scale), "zero_point": int(zero)} if scale else None,
        )

    # -- run -----------------------------------------------------------------------------------------

    def _interpreter(self, artifact: Artifact, options: ExportOptions, debug: bool = False) -> Any:
        cls = _interpreter_class()
        kwargs: dict[str, Any] = {"model_path": str(artifact.path), "num_threads": options.threads}
        if debug:  # every tensor kept, no delegate fusing ops away, so each layer's output can be read
            from ai_edge_litert.interpreter import OpResolverType

            kwargs["experimental_preserve_all_tensors"] = True
            kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            with warnings.catch_warnings(), _native_stderr_captured():
                warnings.simplefilter("ignore", UserWarning)
                interpreter = cls(**kwargs)
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise edgepeft.ExportError(
                f"LiteRT cannot load the model: {str(exc).splitlines()[0]}",
                where=str(artifact.path),
                fix="The file is corrupt or uses operators this runtime lacks; re-export it",
            ) from None
        return interpreter

    def _chunks(self, interpreter: Any, x: np.ndarray, nhwc: bool):
        """Run ``x`` in chunks of the model's fixed batch; yields (rows used, interpreter) after each invoke."""
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        size = int(inp["shape"][0])
        for start in range(0, len(x), size):
            chunk = x[start : start + size]
            interpreter.set_tensor(inp["index"], _quantize(self._layout(_fixed_batch(chunk, size), nhwc), inp))
            interpreter.invoke()
            yield len(chunk), out

    def load(self, artifact: Artifact, options: ExportOptions) -> Runner:
        import numpy as np

        interpreter = self._interpreter(artifact, options)
        nhwc = options.input_layout == "NHWC" and len(artifact.inputs[0].shape) == 4

        def run(x: np.ndarray) -> np.ndarray:
            results = []
            for rows, out in self._chunks(interpreter, x, nhwc):
                results.append(_dequantize(interpreter.get_tensor(out["index"])[:rows], out))
            return np.concatenate(results)

        return run

    def intermediates(self, artifact: Artifact, options: ExportOptions, x: np.ndarray) -> dict[str, np.ndarray]:
        import numpy as np

        interpreter = self._interpreter(artifact, options, debug=True)
        nhwc = options.input_layout == "NHWC" and len(artifact.inputs[0].shape) == 4
        tensors = interpreter.get_tensor_details()
        outputs = {d["index"] for d in interpreter.get_output_details()}
        ops = [op for op in interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]
        collected: dict[str, list[np.ndarray]] = {}
        for rows, _ in self._chunks(interpreter, x, nhwc):
            last: dict[str, np.ndarray] = {}
            for op in ops:  # execution order: a module's output is its last op's output
                for index in op["outputs"]:
                    # the graph's output tensor is the whole model's output ("" like named_modules' root)
                    path = "" if index in outputs else _module_path(tensors[index]["name"]) if index >= 0 else None
                    if path is not None:
                        last[path] = _dequantize(interpreter.get_tensor(index), tensors[index])
            for path, value in last.items():
                if value.ndim and value.shape[0] >= rows:
                    collected.setdefault(path, []).append(value[:rows])
        return {path: np.concatenate(parts) for path, parts in collected.items()}

    def unsupported_ops(self, program: torch.export.ExportedProgram) -> list[str] | None:
        # litert-torch's own decompositions and lowering table: an op without a lowering cannot convert.
        _quiet_runtime_logs()
        with _native_stderr_captured():
            import litert_torch
            from litert_torch import fx_infra
            from litert_torch.backend import lowerings

        litert_torch.config.show_progress = False
        decomposed = fx_infra.safe_run_decompositions(program, fx_infra.decomp.pre_lower_decomp())
        missing = {
            str(node.target)
            for node in decomposed.graph.nodes
            if node.op == "call_function" and hasattr(node.target, "_schema") and lowerings.lookup(node.target) is None
        }
        return sorted(missing)


def _int8_embeddings(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose token tables are int8 with a float scale per row (symmetric): a lookup
    gathers int8 rows and scales them, so a table takes a quarter of its float size in the file."""
    import copy

    import torch
    from torch import nn

    class Int8Lookup(nn.Module):
        def __init__(self, embedding: nn.Embedding) -> None:
            super().__init__()
            weight = embedding.weight.detach().float()
            scale = weight.abs().amax(1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny) / 127
            self.register_buffer("table", torch.round(weight / scale).to(torch.int8))
            self.register_buffer("scale", scale)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.table[ids].to(torch.float32) * self.scale[ids]

    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Embedding) and module.num_embeddings >= VOCABULARY_ROWS:
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent), attr, Int8Lookup(module))
    return model


def _fixed_batch(x: np.ndarray, size: int) -> np.ndarray:
    """``x`` padded with zeros (or cut) to exactly ``size`` rows."""
    import numpy as np

    if len(x) >= size:
        return x[:size]
    return np.concatenate([x, np.zeros((size - len(x), *x.shape[1:]), dtype=x.dtype)])


@edgepeft.hookimpl
def edgepeft_register_backends(register: edgepeft.Registrar) -> None:
    register(TFLiteBackend)

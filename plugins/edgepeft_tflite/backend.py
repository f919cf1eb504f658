"""The ``tflite`` backend: convert with litert-torch, run with LiteRT (ai-edge-litert).

Precisions: ``fp32``; ``int8-dynamic`` (int8 weights, float input and output); ``int8`` (full integer:
weights and activations int8, calibrated on training inputs, int8 input and output). In both int8 precisions
token tables are stored int8 too (:mod:`edgepeft_tflite.embeddings`). The model is built for the device
profile's batch size (TFLite graphs have fixed shapes); the runner pads a short batch.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import edgepeft
from edgepeft import Artifact, Backend, BundleFacts, DeviceTiming, ExportOptions, TensorSpec

from .runtime import (
    channels_last,
    dequantize,
    fixed_batch,
    interpreter_class,
    module_path,
    native_stderr_captured,
    quantize,
    quiet_runtime_logs,
)

if TYPE_CHECKING:
    import numpy as np
    import torch

    from edgepeft import Runner


class TFLiteBackend(Backend):
    name = "tflite"
    description = "LiteRT flatbuffer (.tflite) converted by litert-torch, run by ai-edge-litert"
    requires = ("litert_torch", "torchao")
    install_hint = "pip install 'edgepeft[tflite]'"
    precisions = ("fp32", "int8", "int8-dynamic")
    layouts = ("NCHW", "NHWC")
    baseline_precisions = ("int8",)  # post-training full-integer quantization

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
        quiet_runtime_logs()
        with native_stderr_captured():  # importing the converter prints C++ start-up banners
            import litert_torch
        import torch

        from .embeddings import int8_embeddings

        litert_torch.config.show_progress = False
        nhwc = options.input_layout == "NHWC" and example.ndim == 4
        if options.precision != "fp32":
            model = int8_embeddings(model)
        module = litert_torch.to_channel_last_io(model.eval(), args=[0]) if nhwc else model.eval()
        batch = torch.from_numpy(channels_last(fixed_batch(example, options.batch_size), nhwc))
        path = directory / "model.tflite"
        try:
            with warnings.catch_warnings(), native_stderr_captured():
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
        with native_stderr_captured():
            interpreter = interpreter_class()(model_path=str(path))
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
                prepared(torch.from_numpy(channels_last(chunk, nhwc)))
        converted = move_exported_model_to_eval(convert_pt2e(prepared, fold_quantize=False))
        for submodule in converted.modules():  # exported graphs refuse .eval(); the flag is what litert checks
            submodule.training = False
        config = quant_config.QuantConfig(pt2e_quantizer=quantizer)
        return litert_torch.convert(converted, (batch,), quant_config=config)

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
        cls = interpreter_class()
        kwargs: dict[str, Any] = {"model_path": str(artifact.path), "num_threads": options.threads}
        if debug:  # every tensor kept, no delegate fusing ops away, so each layer's output can be read
            from ai_edge_litert.interpreter import OpResolverType

            kwargs["experimental_preserve_all_tensors"] = True
            kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            with warnings.catch_warnings(), native_stderr_captured():
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

    @staticmethod
    def _chunks(interpreter: Any, x: np.ndarray, nhwc: bool) -> Iterator[tuple[int, dict]]:
        """Run ``x`` in chunks of the model's fixed batch; yields (rows used, output details) after each invoke."""
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        size = int(inp["shape"][0])
        for start in range(0, len(x), size):
            chunk = x[start : start + size]
            interpreter.set_tensor(inp["index"], quantize(channels_last(fixed_batch(chunk, size), nhwc), inp))
            interpreter.invoke()
            yield len(chunk), out

    def load(self, artifact: Artifact, options: ExportOptions) -> Runner:
        import numpy as np

        interpreter = self._interpreter(artifact, options)
        nhwc = options.input_layout == "NHWC" and len(artifact.inputs[0].shape) == 4

        def run(x: np.ndarray) -> np.ndarray:
            results = []
            for rows, out in self._chunks(interpreter, x, nhwc):
                results.append(dequantize(interpreter.get_tensor(out["index"])[:rows], out))
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
                    path = "" if index in outputs else module_path(tensors[index]["name"]) if index >= 0 else None
                    if path is not None:
                        last[path] = dequantize(interpreter.get_tensor(index), tensors[index])
            for path, value in last.items():
                if value.ndim and value.shape[0] >= rows:
                    collected.setdefault(path, []).append(value[:rows])
        return {path: np.concatenate(parts) for path, parts in collected.items()}

    def unsupported_ops(self, program: torch.export.ExportedProgram) -> list[str] | None:
        # litert-torch's own decompositions and lowering table: an op without a lowering cannot convert.
        quiet_runtime_logs()
        with native_stderr_captured():
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

    # -- ship ----------------------------------------------------------------------------------------

    def app_snippet(self, facts: BundleFacts) -> str | None:
        """Loading the file on Android with LiteRT, in Kotlin."""
        from .kotlin import kotlin_snippet

        return kotlin_snippet(facts)

    def device_benchmark(self, remote_model: str, threads: int, runs: int) -> list[str] | None:
        """LiteRT's ``benchmark_model``, pushed once to ``/data/local/tmp/benchmark_model``."""
        from .benchmark_tool import benchmark_command

        return benchmark_command(remote_model, threads, runs)

    def device_timing(self, output: str) -> DeviceTiming | None:
        from .benchmark_tool import parse_timings

        return parse_timings(output)

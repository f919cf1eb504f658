"""LiteRT's interpreter and the tensors it reads and writes: quiet native logs, int8 (de)quantization,
fixed batches, and the PyTorch module a tensor came from."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import edgepeft

if TYPE_CHECKING:
    import numpy as np


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[None]:
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


def quiet_runtime_logs() -> None:
    """Keep the converter's and runtime's informational chatter off the user's terminal."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GLOG_minloglevel", "2")
    edgepeft.quiet_loggers()


def interpreter_class() -> Any:
    """LiteRT's interpreter; tflite-runtime only as a fallback (it mis-runs some int8 models)."""
    quiet_runtime_logs()
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


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """``x`` in the dtype of the input tensor ``detail`` describes (int8 with its scale and zero point)."""
    import numpy as np

    if detail["dtype"] != np.int8:
        return x.astype(detail["dtype"])
    scale, zero = detail["quantization"]
    return np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)


def dequantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """The float32 values of tensor ``x`` (per-tensor or per-channel quantization parameters in ``detail``)."""
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


def module_path(tensor_name: str) -> str | None:
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


def fixed_batch(x: np.ndarray, size: int) -> np.ndarray:
    """``x`` padded with zeros (or cut) to exactly ``size`` rows."""
    import numpy as np

    if len(x) >= size:
        return x[:size]
    return np.concatenate([x, np.zeros((size - len(x), *x.shape[1:]), dtype=x.dtype)])


def channels_last(x: np.ndarray, nhwc: bool) -> np.ndarray:
    """``x`` as contiguous float32, NCHW images moved to NHWC when ``nhwc``."""
    import numpy as np

    return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if nhwc else x, dtype=np.float32)

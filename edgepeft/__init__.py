"""edgepeft: train compact students from big models and ship them to edge devices.

This module is the public API that plugins (built-in and third-party) import. It never imports
torch or a runtime at import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pluggy

from edgepeft.api.activations import Activations, capture
from edgepeft.api.backend import Artifact, Backend, BundleFacts, DeviceTiming, ExportOptions, Runner, TensorSpec
from edgepeft.api.dataset import Dataset, NoOptions, Split, TaskData, stratified_split
from edgepeft.api.model import ModelFamily, ModelSpec
from edgepeft.api.tasks import Field, Head, Signature
from edgepeft.api.technique import Compressed, Technique, count_parameters
from edgepeft.api.torch_program import TorchProgramBackend
from edgepeft.errors import (
    ArtifactError,
    BackendUnavailableError,
    ConfigError,
    DataError,
    EdgepeftError,
    ExportError,
    ParityError,
    PluginError,
    TrainingError,
    UnknownNameError,
)
from edgepeft.host.registry import Registrar
from edgepeft.util.quiet import quiet_loggers
from edgepeft.util.validation import StrictModel

if TYPE_CHECKING:
    from edgepeft.api.context import Batch, FitResult, StepState, TrainContext
    from edgepeft.api.device import DeviceProfile
    from edgepeft.train.loop import predict

_LAZY = {
    "DeviceProfile": "edgepeft.api.device",
    "Batch": "edgepeft.api.context",
    "FitResult": "edgepeft.api.context",
    "StepState": "edgepeft.api.context",
    "TrainContext": "edgepeft.api.context",
    "predict": "edgepeft.train.loop",
}
"""Public names imported on first use, so that ``import edgepeft`` (and ``edgepeft --help``) stays light:
their modules import numpy and are not needed to load plugins."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("edgepeft")
"""Decorator for hook implementations: ``@edgepeft.hookimpl def edgepeft_register_techniques(register): ...``"""

__all__ = [
    "Activations",
    "Artifact",
    "ArtifactError",
    "Backend",
    "BackendUnavailableError",
    "Batch",
    "BundleFacts",
    "Compressed",
    "ConfigError",
    "DataError",
    "Dataset",
    "DeviceProfile",
    "DeviceTiming",
    "EdgepeftError",
    "ExportError",
    "ExportOptions",
    "Field",
    "FitResult",
    "Head",
    "ModelFamily",
    "ModelSpec",
    "NoOptions",
    "ParityError",
    "PluginError",
    "Registrar",
    "Runner",
    "Signature",
    "Split",
    "StepState",
    "StrictModel",
    "TaskData",
    "Technique",
    "TensorSpec",
    "TorchProgramBackend",
    "TrainContext",
    "TrainingError",
    "UnknownNameError",
    "__version__",
    "capture",
    "count_parameters",
    "hookimpl",
    "predict",
    "quiet_loggers",
    "stratified_split",
]

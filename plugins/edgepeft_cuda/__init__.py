"""Backend plugin ``cuda``: a ``torch.export`` program run by PyTorch on an NVIDIA GPU, in fp32 or fp16.

Availability is decided without importing torch (``edgepeft plugins`` stays fast): a CUDA build of
torch must be installed and an NVIDIA driver present.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.metadata
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from edgepeft_cpu import CPUBackend

import edgepeft
from edgepeft import Artifact, ExportOptions, Runner

if TYPE_CHECKING:
    import torch


def _no_gpu_reason() -> str | None:
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "torch is not installed"
    if "+cpu" in version:
        return f"torch {version} is a CPU-only build; install a CUDA build of torch on a machine with an NVIDIA GPU"
    if not (
        Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi")
    ):
        return "no NVIDIA GPU driver found on this machine (no /dev/nvidiactl, no nvidia-smi)"
    return None


class CUDABackend(CPUBackend):
    name = "cuda"
    description = "torch.export program (.pt2) run by PyTorch on an NVIDIA GPU (fp32 or fp16)"
    precisions = ("fp32", "fp16")
    install_hint = "install a CUDA build of torch on a machine with an NVIDIA GPU"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return super().unavailable_reason() or _no_gpu_reason()

    def export(self, model: torch.nn.Module, example: np.ndarray, directory: Path, options: ExportOptions) -> Artifact:
        if options.precision == "fp16":
            import torch

            model = copy.deepcopy(model).to(torch.float16)
            example = example.astype(np.float16)
        artifact = super().export(model, example, directory, options)
        artifact.precision = options.precision
        if options.precision == "fp16":  # the saved program takes and returns float16 tensors
            artifact.inputs = [dataclasses.replace(t, dtype="float16") for t in artifact.inputs]
            artifact.outputs = [dataclasses.replace(t, dtype="float16") for t in artifact.outputs]
        return artifact

    def load(self, artifact: Artifact, options: ExportOptions) -> Runner:
        import torch

        module = torch.export.load(str(artifact.path)).module().to("cuda")
        dtype = torch.float16 if artifact.precision == "fp16" else torch.float32

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                batch = torch.from_numpy(np.ascontiguousarray(x)).to("cuda", dtype)
                return module(batch).float().cpu().numpy()  # .cpu() waits for the GPU, so timings are honest

        return run


@edgepeft.hookimpl
def edgepeft_register_backends(register: edgepeft.Registrar) -> None:
    register(CUDABackend)

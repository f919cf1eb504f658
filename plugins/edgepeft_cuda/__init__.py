"""Backend plugin ``cuda``: a ``torch.export`` program run by PyTorch on an NVIDIA GPU, in fp32 or fp16.

Availability is decided without importing torch (``edgepeft plugins`` stays fast): a CUDA build of
torch must be installed and an NVIDIA driver present.
"""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

import edgepeft
from edgepeft import TorchProgramBackend


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


class CUDABackend(TorchProgramBackend):
    name = "cuda"
    description = "torch.export program (.pt2) run by PyTorch on an NVIDIA GPU (fp32 or fp16)"
    device = "cuda"
    precisions = ("fp32", "fp16")
    install_hint = "install a CUDA build of torch on a machine with an NVIDIA GPU"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return super().unavailable_reason() or _no_gpu_reason()


@edgepeft.hookimpl
def edgepeft_register_backends(register: edgepeft.Registrar) -> None:
    register(CUDABackend)

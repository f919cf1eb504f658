"""Backend plugin ``cpu``: a ``torch.export`` program (.pt2), run by PyTorch on the CPU.

A .pt2 archive may hold pickled tensors, so only load files whose sha256 a manifest vouches for
(``edgepeft verify``), as with any model file from another party.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import edgepeft
from edgepeft import Artifact, Backend, ExportOptions, Runner, TensorSpec

if TYPE_CHECKING:
    import torch


class CPUBackend(Backend):
    name = "cpu"
    description = "torch.export program (.pt2) run by PyTorch eager on the CPU"
    requires = ("torch",)
    install_hint = "pip install torch"

    def export(self, model: torch.nn.Module, example: np.ndarray, directory: Path, options: ExportOptions) -> Artifact:
        import torch

        path = directory / "model.pt2"
        batch = torch.export.Dim("batch", min=1, max=65536)
        try:
            program = torch.export.export(model.eval(), (torch.from_numpy(example),), dynamic_shapes=({0: batch},))
            torch.export.save(program, str(path))
        except Exception as exc:
            raise edgepeft.ExportError(
                f"torch.export failed: {type(exc).__name__}: {exc}", where=type(model).__name__
            ) from exc
        out_shape = list(model(torch.from_numpy(example)).shape[1:])
        return Artifact(
            backend=self.name,
            path=path,
            inputs=[TensorSpec("input", ["batch", *example.shape[1:]])],
            outputs=[TensorSpec("logits", ["batch", *out_shape])],
        )

    def load(self, artifact: Artifact, options: ExportOptions) -> Runner:
        import torch

        torch.set_num_threads(options.threads)
        module = torch.export.load(str(artifact.path)).module()

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(np.ascontiguousarray(x))).numpy()

        return run

    def unsupported_ops(self, program: torch.export.ExportedProgram) -> list[str] | None:
        """PyTorch runs every operator a torch.export program holds."""
        return []


@edgepeft.hookimpl
def edgepeft_register_backends(register: edgepeft.Registrar) -> None:
    register(CPUBackend)

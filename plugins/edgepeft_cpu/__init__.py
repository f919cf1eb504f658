"""Backend plugin ``cpu``: a ``torch.export`` program (.pt2), run by PyTorch on the CPU.

``torch.export.load`` unpickles (with ``weights_only=False``) any weights or constants an archive marks
as pickled and sample inputs that the safe loader rejects. Before loading, this backend refuses an
archive holding either, so opening a .pt2 from someone else can never run code.
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

        refuse_pickles(artifact.path)
        torch.set_num_threads(options.threads)
        module = torch.export.load(str(artifact.path)).module()

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(np.ascontiguousarray(x))).numpy()

        return run

    def unsupported_ops(self, program: torch.export.ExportedProgram) -> list[str] | None:
        """PyTorch runs every operator a torch.export program holds."""
        return []


def refuse_pickles(path: Path) -> None:
    """Raise unless the .pt2 archive at ``path`` loads without unpickling anything."""
    import io
    import json
    import zipfile

    import torch

    def refuse(why: str) -> edgepeft.ExportError:
        return edgepeft.ExportError(
            f"the archive {why}; loading it could run code, so it is refused",
            where=str(path),
            fix="Export it again with edgepeft, or load only archives from a source you trust",
        )

    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(("_weights_config.json", "_constants_config.json")):
                    entries = json.loads(archive.read(name)).get("config", {})
                    if any(not isinstance(e, dict) or e.get("use_pickle", True) for e in entries.values()):
                        raise refuse(f"holds pickled weights or constants ({name})")
                elif "/sample_inputs/" in name:
                    try:
                        torch.load(io.BytesIO(archive.read(name)), weights_only=True)
                    except Exception:
                        raise refuse(f"holds sample inputs that are not plain tensors ({name})") from None
    except (zipfile.BadZipFile, json.JSONDecodeError, OSError) as exc:
        raise edgepeft.ExportError(f"not a readable .pt2 archive: {exc}", where=str(path)) from None


@edgepeft.hookimpl
def edgepeft_register_backends(register: edgepeft.Registrar) -> None:
    register(CPUBackend)

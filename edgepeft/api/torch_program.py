"""A base for backends whose file is a ``torch.export`` program (.pt2) that PyTorch runs (on the CPU or a GPU).

``torch.export.load`` unpickles (with ``weights_only=False``) any weights or constants an archive marks as
pickled, and sample inputs that the safe loader rejects. Before loading, an archive holding either is
refused, so opening a .pt2 from someone else can never run code.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from edgepeft.api.backend import Artifact, Backend, BundleFacts, ExportOptions, TensorSpec
from edgepeft.errors import ExportError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from edgepeft.api.backend import Runner


class TorchProgramBackend(Backend):
    """Exports with ``torch.export`` (dynamic batch) and runs the program with PyTorch on ``device``.

    Subclasses set ``name`` and, for a GPU, ``device = "cuda"`` and ``precisions = ("fp32", "fp16")``.
    """

    requires: ClassVar[tuple[str, ...]] = ("torch",)
    install_hint: ClassVar[str] = "pip install torch"
    device: ClassVar[str] = "cpu"

    def export(self, model: torch.nn.Module, example: np.ndarray, directory: Path, options: ExportOptions) -> Artifact:
        import numpy as np
        import torch

        dtype = "float16" if options.precision == "fp16" else "float32"
        if dtype == "float16":
            model, example = copy.deepcopy(model).to(torch.float16), example.astype(np.float16)
        path = directory / "model.pt2"
        batch = torch.export.Dim("batch", min=1, max=65536)
        try:
            program = torch.export.export(model.eval(), (torch.from_numpy(example),), dynamic_shapes=({0: batch},))
            torch.export.save(program, str(path))
        except Exception as exc:
            raise ExportError(f"torch.export failed: {type(exc).__name__}: {exc}", where=type(model).__name__) from exc
        with torch.no_grad():
            out_shape = list(model(torch.from_numpy(example)).shape[1:])
        return Artifact(
            backend=self.name,
            path=path,
            inputs=[TensorSpec("input", ["batch", *example.shape[1:]], dtype)],
            outputs=[TensorSpec("logits", ["batch", *out_shape], dtype)],
            precision=options.precision,
        )

    def load(self, artifact: Artifact, options: ExportOptions) -> Runner:
        import numpy as np
        import torch

        refuse_pickles(artifact.path)
        module = torch.export.load(str(artifact.path)).module().to(self.device)
        dtype = torch.float16 if artifact.precision == "fp16" else torch.float32

        def run(x: np.ndarray) -> np.ndarray:
            process_threads = torch.get_num_threads()
            if self.device == "cpu" and process_threads != options.threads:  # for this call, not the process
                torch.set_num_threads(options.threads)
            try:
                with torch.inference_mode():
                    batch = torch.from_numpy(np.ascontiguousarray(x)).to(self.device, dtype)
                    return module(batch).float().cpu().numpy()  # .cpu() waits for a GPU, so timings are honest
            finally:
                torch.set_num_threads(process_threads)

        return run

    def unsupported_ops(self, program: torch.export.ExportedProgram) -> list[str] | None:
        """PyTorch runs every operator a torch.export program holds."""
        return []

    def app_snippet(self, facts: BundleFacts) -> str | None:
        """Loading the program with PyTorch in Python."""
        return "\n".join(
            [
                "## Load it (Python, PyTorch)",
                "```python",
                "import torch",
                f"module = torch.export.load('{facts.model_file}').module()"
                "  # only a file `edgepeft verify` vouched for",
                "scores = module(torch.from_numpy(x))  # x: preprocessed float32 batch",
                "```",
            ]
        )


def refuse_pickles(path: Path) -> None:
    """Raise unless the .pt2 archive at ``path`` loads without unpickling anything."""
    import io
    import json
    import zipfile

    import torch

    def refuse(why: str) -> ExportError:
        return ExportError(
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
        raise ExportError(f"not a readable .pt2 archive: {exc}", where=str(path)) from None

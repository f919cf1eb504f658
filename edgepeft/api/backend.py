"""Backends: plugins that export a PyTorch model to a runtime's file, load it and run it."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from edgepeft.host.requirements import NeedsPackages

if TYPE_CHECKING:
    import numpy as np
    import torch


class Runner(Protocol):
    """A loaded model: a float32 batch in, a float32 batch of outputs out."""

    def __call__(self, batch: np.ndarray, /) -> np.ndarray: ...


@dataclass(frozen=True)
class ExportOptions:
    """How to export and run.

    ``batch_size`` is the batch a fixed-shape runtime (TFLite) is built for; its runner still takes any
    batch. ``calibration`` holds training-split inputs for static quantization (never test inputs).
    """

    precision: str = "fp32"
    threads: int = 1
    input_layout: str = "NCHW"
    batch_size: int = 1
    device: str = "cpu"
    calibration: np.ndarray | None = field(default=None, compare=False, repr=False)

    def portable(self) -> dict[str, Any]:
        """These options as JSON-able data (without the calibration inputs)."""
        return {k: v for k, v in asdict(self).items() if k != "calibration"}


@dataclass(frozen=True)
class TensorSpec:
    """An input or output of an exported model; ``"batch"`` marks the dynamic batch dimension."""

    name: str
    shape: list[int | str]
    dtype: str = "float32"
    quantization: dict[str, float] | None = None
    """``{"scale": s, "zero_point": z}`` for an integer tensor: real value = (q - z) * s."""


@dataclass
class Artifact:
    """An exported model: its main file, every file it needs, and its I/O signature."""

    backend: str
    path: Path
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    precision: str = "fp32"
    extra_files: list[Path] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        return [self.path, *self.extra_files]

    @property
    def fixed_batch(self) -> int | None:
        """The batch the file is built for (a fixed-shape runtime such as TFLite); None when its batch
        dimension is dynamic or it declares no inputs."""
        batch = self.inputs[0].shape[0] if self.inputs else None
        return batch if isinstance(batch, int) else None

    @property
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)

    def moved_to(self, folder: Path) -> Artifact:
        """This artifact with its files in ``folder`` (after the folder it was written in was renamed)."""
        return dataclasses.replace(
            self, path=folder / self.path.name, extra_files=[folder / p.name for p in self.extra_files]
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "path": str(self.path),
            "inputs": [asdict(t) for t in self.inputs],
            "outputs": [asdict(t) for t in self.outputs],
            "precision": self.precision,
            "extra_files": [str(p) for p in self.extra_files],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Artifact:
        return cls(
            backend=data["backend"],
            path=Path(data["path"]),
            inputs=[TensorSpec(**t) for t in data["inputs"]],
            outputs=[TensorSpec(**t) for t in data["outputs"]],
            precision=data["precision"],
            extra_files=[Path(p) for p in data["extra_files"]],
        )


class Backend(NeedsPackages, ABC):
    """Base class for backend plugins: set ``name`` and ``requires``, implement export and load."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    layouts: ClassVar[tuple[str, ...]] = ("NCHW",)
    """Input layouts the backend can build; a profile asking for another one cannot use it."""

    @abstractmethod
    def export(self, model: torch.nn.Module, example: np.ndarray, directory: Path, options: ExportOptions) -> Artifact:
        """Write the model (in eval mode) to ``directory``; the batch dimension stays dynamic."""

    @abstractmethod
    def load(self, artifact: Artifact, options: ExportOptions) -> Runner:
        """A callable that runs the exported file with this backend's runtime, on a batch of any size,
        taking and returning float32 arrays in the data set's layout (NCHW for images)."""

    def intermediates(self, artifact: Artifact, options: ExportOptions, x: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs of the exported model's layers on ``x``, keyed by the PyTorch module path
        (``model.named_modules()`` names) each layer came from; used to find the layer that broke.
        The default, an empty dict, means the backend cannot expose them."""
        return {}

    def unsupported_ops(self, program: torch.export.ExportedProgram) -> list[str] | None:
        """The operators of ``program`` (a ``torch.export`` program) this backend cannot convert or run,
        by name; None means the backend cannot tell before converting."""
        return None

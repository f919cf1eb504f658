"""Backends: plugins that export a PyTorch model to a runtime's file, load it and run it."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from edgepeft.api.tasks import Head
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

    ``batch_size`` is the batch a fixed-shape runtime is built for; its runner still takes any
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
        """The batch the file is built for (by a fixed-shape runtime); None when its batch
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


@dataclass(frozen=True)
class BundleFacts:
    """What a deployed bundle tells an app developer, for :meth:`Backend.app_snippet`: the model file, its
    inputs and outputs (with their int8 quantization), how raw inputs become the model's input
    (``preprocessing``, as the data set describes it: ``scale``/``offset`` for images, ``fields`` for
    categorical rows, ``tokenizer_folder`` for text), the task's heads and class names, and the threads of
    the device profile's runtime."""

    model_file: str
    backend: str
    precision: str
    threads: int
    input_layout: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    preprocessing: dict[str, Any]
    heads: tuple[Head, ...] = ()
    labels: tuple[str, ...] = ()

    @property
    def classifier(self) -> bool:
        """Whether the model has a single classification head (or declares none): class = argmax."""
        return len(self.heads) <= 1 and all(h.kind == "classification" for h in self.heads)


@dataclass(frozen=True)
class DeviceTiming:
    """What a runtime's own benchmark tool measured on a device (see :meth:`Backend.device_timing`)."""

    tool: str
    """The tool's name as reports show it, e.g. ``"MyRuntime bench"``."""
    iterations: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float


class Backend(NeedsPackages, ABC):
    """Base class for backend plugins: set ``name`` and ``requires``, implement export and load.

    What edgepeft does with a backend beyond exporting and running it comes from what the class declares:

    - ``precisions``: the precisions it exports (``fp32``, ``fp16``, ``int8``, ``int8-dynamic``); the first
      is its default.
    - ``layouts``: the input layouts it can build (``NCHW``, ``NHWC``); a device profile asking for another
      one cannot use it.
    - ``teacher_precisions``: precisions at which ``edgepeft bench`` also measures the teacher through this
      backend, exported plainly and ungated (e.g. fp32).
    - ``baseline_precisions``: the runtime's one-line post-training conversion of the teacher (e.g. dynamic
      int8) that ``edgepeft bench`` measures as a baseline row: what a user gets without edgepeft.
    - ``bench_rank``: the order of those rows (higher first, then by name); the first teacher row is the
      reference of every ratio, the first baseline row the baseline.
    - :meth:`app_snippet`: the README section that loads the bundle's model with this runtime; without one,
      edgepeft writes a generic section that names no runtime's API.
    - :meth:`device_benchmark` and :meth:`device_timing`: how ``edgepeft deploy --push`` times the file on
      an attached Android device with the runtime's own benchmark tool; without them the device latency
      stays estimated from this host.
    - :meth:`intermediates` and :meth:`unsupported_ops`: layer outputs to find where an export diverges,
      and the operators it cannot convert (``edgepeft check``).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    layouts: ClassVar[tuple[str, ...]] = ("NCHW",)
    teacher_precisions: ClassVar[tuple[str, ...]] = ()
    baseline_precisions: ClassVar[tuple[str, ...]] = ()
    bench_rank: ClassVar[int] = 0

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

    def app_snippet(self, facts: BundleFacts) -> str | None:
        """A Markdown section for the bundle's README (a ``## Load it ...`` heading and a code block) that
        loads ``facts.model_file`` with this runtime, feeds it a preprocessed input and reads the output.
        The default, None, lets edgepeft write a generic section."""
        return None

    def device_benchmark(self, remote_model: str, threads: int, runs: int) -> list[str] | None:
        """The command (the tool's path on the device first) that times ``remote_model`` on an attached
        Android device over ``runs`` runs; ``edgepeft deploy --push`` runs it when the tool is there (the
        user pushes it once). The default, None: the backend has no such tool."""
        return None

    def device_timing(self, output: str) -> DeviceTiming | None:
        """The timings in what the :meth:`device_benchmark` command printed; None when it printed none."""
        return None

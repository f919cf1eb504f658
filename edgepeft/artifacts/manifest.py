"""``manifest.json``: what a deployable bundle holds (every file with its sha256), how to run its model, what
was measured and where it came from; `edgepeft deploy` writes it and `edgepeft verify` checks a bundle by it."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, ClassVar

from pydantic import Field, field_validator

from edgepeft.artifacts.measurements import BudgetRecord, Measurements, TensorRecord
from edgepeft.artifacts.metrics import HeadRecord
from edgepeft.artifacts.schema import Record, VersionedFile


class BundleModel(Record):
    """The model file and how the device runs it."""

    file: str = Field(description="The model file, relative to the bundle folder.")
    backend: str = Field(description="The backend whose runtime runs it (e.g. `onnx`, `tflite`).")
    precision: str = Field(description="`fp32`, `fp16`, `int8` or `int8-dynamic`.")
    threads: int = Field(description="Runtime threads the device profile asks for.")
    host_threads: int = Field(description="Threads used when measuring on this host (capped at its cores).")
    batch_size: int = Field(description="The batch the model was built and measured for.")
    input_layout: str = Field("NCHW", description="Layout of an image input: `NCHW` or `NHWC`.")
    parameters: int = Field(description="The student's parameters.")


class SamplesRecord(Record):
    """Sample inputs with the outputs the model must reproduce (`edgepeft verify` re-runs them)."""

    file: str = Field(description="The samples file, relative to the bundle folder.")
    layout: str = Field(description="Layout of the sample inputs (`NCHW`).")
    count: int = Field(description="Number of samples.")


class DeviceRecord(Record):
    """The device profile the bundle was built for."""

    name: str = Field(description="The profile's name.")
    sha256: str = Field(description="sha256 of the resolved profile.")
    profile: dict[str, Any] = Field(description="The resolved profile: hardware, runtime, budgets, parity.")


class HostRecord(Record):
    """The machine that exported and measured the model."""

    machine: str = Field(description="CPU architecture (e.g. `x86_64`).")
    system: str = Field(description="Operating system (e.g. `Linux`).")
    processor: str = Field(description="Processor name, when the system reports one.")
    cpus: int | None = Field(description="Logical CPUs.")


class Provenance(Record):
    """Where the model came from."""

    run: str = Field(description="The run's name.")
    recipe: dict[str, Any] = Field(description="The run's resolved recipe, every default written out.")
    seed: int = Field(description="The recipe's seed.")
    dataset_fingerprint: str = Field(description="sha256 of the data set split the run trained on.")
    student_weights_sha256: str = Field(description="sha256 of the run's `student/model.safetensors`.")


class FileEntry(Record):
    """One file of the bundle."""

    path: str = Field(description="Path relative to the bundle folder, with `/` separators.")
    sha256: str = Field(description="sha256 of the file's bytes.")
    bytes: int = Field(description="Size in bytes.")

    @field_validator("path")
    @classmethod
    def _inside_the_bundle(cls, path: str) -> str:
        parts = PurePosixPath(path)
        if parts.is_absolute() or ".." in parts.parts:
            raise ValueError(f"file entry {path!r} points outside the bundle")
        return path


class Manifest(VersionedFile):
    """``dist/<run>-<device>/manifest.json``, written by `edgepeft deploy`; `edgepeft verify` checks the bundle
    by it, and the bundle's README.md and report.html are made from it."""

    FILE: ClassVar[str] = "manifest.json"
    FIX: ClassVar[str] = "Deploy the bundle again with `edgepeft deploy`"
    UNVERSIONED_AS: ClassVar[int | None] = None  # every manifest edgepeft wrote carries its schema_version
    OMITTED_WHEN_NONE: ClassVar[frozenset[str]] = frozenset({"samples"})

    name: str = Field(description="The bundle's name: `<run>-<device>`.")
    created: str = Field(description="When it was written: ISO 8601, UTC, to the second.")
    model: BundleModel = Field(description="The model file and its runtime settings.")
    inputs: list[TensorRecord] = Field(description="The model's inputs.")
    outputs: list[TensorRecord] = Field(description="The model's outputs.")
    preprocessing: dict[str, Any] = Field(
        description="How raw input becomes the model's input, as the data set describes it: `scale`/`offset` "
        "for images, `fields` for categorical rows, `tokenizer_folder`, `tokenizer_files`, `max_length` and "
        "`pad_token_id` for text (the tokenizer is bundled in `tokenizer/`)."
    )
    labels: list[str] = Field(default_factory=list, description="Class names of a classifier (also in labels.txt).")
    heads: list[HeadRecord] = Field(default_factory=list, description="The task's heads, in output-column order.")
    samples: SamplesRecord | None = Field(None, description="The sample inputs `edgepeft verify` re-runs.")
    metrics: Measurements = Field(description="What was measured: parity, score, latency, memory, budgets.")
    budgets: list[BudgetRecord] = Field(description="Every budget of the device profile and its verdict.")
    device: DeviceRecord = Field(description="The device profile.")
    host: HostRecord = Field(description="The machine that measured.")
    versions: dict[str, str] = Field(description="Versions of Python, edgepeft, torch, numpy and the runtime.")
    provenance: Provenance = Field(description="The run the model came from.")
    files: list[FileEntry] = Field(
        default_factory=list, description="Every file of the bundle except manifest.json, sorted by path."
    )

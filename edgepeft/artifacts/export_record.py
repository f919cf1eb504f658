"""``export.json``: what `edgepeft export` wrote beside the exported model file."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from edgepeft.artifacts.measurements import ParityRecord, TensorRecord
from edgepeft.artifacts.schema import Record, VersionedFile


class ArtifactRecord(Record):
    """The exported model file and its signature."""

    backend: str = Field(description="The backend that exported it.")
    path: str = Field(description="The model file, relative to the export folder.")
    inputs: list[TensorRecord] = Field(description="The model's inputs.")
    outputs: list[TensorRecord] = Field(description="The model's outputs.")
    precision: str = Field(description="`fp32`, `fp16`, `int8` or `int8-dynamic`.")
    extra_files: list[str] = Field(
        default_factory=list, description="Other files the model needs (e.g. external weights), by name."
    )


class OptionsRecord(Record):
    """How the model was exported and run for the parity check."""

    precision: str = Field(description="The export's precision.")
    threads: int = Field(description="Runtime threads.")
    input_layout: str = Field(description="Layout of an image input: `NCHW` or `NHWC`.")
    batch_size: int = Field(description="The batch a fixed-shape runtime is built for.")
    device: str = Field(description="Where it ran: `cpu` or `cuda`.")


class ExportRecord(VersionedFile):
    """``exports/<run>-<backend>-<precision>/export.json``, written by `edgepeft export` once the export passed
    the parity gate."""

    FILE: ClassVar[str] = "export.json"
    FIX: ClassVar[str] = "Export again with `edgepeft export`"

    run: str = Field(description="The run whose student was exported.")
    artifact: ArtifactRecord = Field(description="The exported file and its signature.")
    options: OptionsRecord = Field(description="The export and runtime settings.")
    parity: ParityRecord = Field(description="The parity check against PyTorch on the held-out test split.")

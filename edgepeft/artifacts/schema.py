"""The base of the JSON files that pass between the stages (metrics.json, export.json, manifest.json,
trials.json): a pydantic model with a ``schema_version``, read with one-line errors and written atomically.

Every file is written with the keys in the order its model declares them. A non-finite number (a NaN
score, an infinite ratio) is written as the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``, so each
file stays valid JSON; a number field reads those strings (and the bare ``NaN`` of older files) back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from edgepeft.errors import ArtifactError
from edgepeft.util import atomic


class Record(BaseModel):
    """A part of a file. Keys the model does not name (a plugin's own figures) are kept as they are; the
    optional keys named in ``OMITTED_WHEN_NONE`` are left out of the file when they hold nothing."""

    model_config = ConfigDict(extra="allow", ser_json_inf_nan="strings")
    OMITTED_WHEN_NONE: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_empty_optionals(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None or k not in self.OMITTED_WHEN_NONE}


class VersionedFile(Record):
    """A whole file: its name, the schema version this edgepeft writes, and what to do when it is damaged.

    A file without ``schema_version`` was written before edgepeft recorded it and is read as
    ``UNVERSIONED_AS`` (version 1), unless the file always carried one (``UNVERSIONED_AS = None``).
    """

    FILE: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int] = 1
    UNVERSIONED_AS: ClassVar[int | None] = 1
    FIX: ClassVar[str]
    """What a user does about a damaged file (e.g. retrain)."""

    schema_version: int = Field(
        1, description="Version of this file's layout; readers upgrade older versions and refuse newer ones."
    )

    @classmethod
    def current(cls, **fields: Any) -> Self:
        """A new file's content, with the schema version this edgepeft writes."""
        return cls(schema_version=cls.SCHEMA_VERSION, **fields)

    @classmethod
    def parse(cls, data: Any, where: str) -> Self:
        """Validate ``data`` (a file's decoded JSON); a newer schema version or any damage is an ArtifactError."""
        if not isinstance(data, dict):
            raise ArtifactError(f"{cls.FILE} is damaged (not a JSON object)", where=where, fix=cls.FIX)
        version = data.get("schema_version", cls.UNVERSIONED_AS)
        if type(version) is not int or not 1 <= version <= cls.SCHEMA_VERSION:
            raise ArtifactError(
                f"unsupported {cls.FILE} schema_version {version!r}",
                where=where,
                fix=f"This edgepeft reads schema_version {cls.SCHEMA_VERSION} and older; upgrade edgepeft, or "
                f"{cls.FIX[0].lower()}{cls.FIX[1:]}",
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"]) or "(file)"
            detail = first["msg"].removeprefix("Value error, ")
            raise ArtifactError(f"{cls.FILE} is damaged ({key}: {detail})", where=where, fix=cls.FIX) from None

    @classmethod
    def read(cls, path: Path) -> Self:
        """The file at ``path``, validated and upgraded to this version's model."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ArtifactError(
                f"{cls.FILE} is damaged (not valid JSON: {exc})", where=str(path), fix=cls.FIX
            ) from None
        return cls.parse(data, str(path))

    def to_json(self) -> str:
        """The file's text: indented JSON with non-finite numbers as strings."""
        return self.model_dump_json(indent=2) + "\n"

    def write(self, path: Path) -> None:
        """Write the file atomically (it replaces ``path`` whole or not at all)."""
        atomic.write_text(path, self.to_json())

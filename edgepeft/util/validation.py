"""Turn pydantic validation errors on TOML files into one-line errors naming file, line and key."""

from __future__ import annotations

import re
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from edgepeft.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every schema read from a user's file: unknown keys and wrong types (``"1"`` or ``true``
    for a number) are errors, never silently ignored or converted."""

    model_config = ConfigDict(extra="forbid", strict=True)


_TABLE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")


def _split_key(key: str) -> list[str]:
    return [part.strip().strip("\"'") for part in key.split(".")]


def toml_line(text: str, loc: Sequence[str | int]) -> int | None:
    """Line number (from 1) where the key at ``loc`` is written in TOML ``text``, if it can be found.

    ``loc`` is a pydantic location such as ``("teacher", "epochs")`` or ``("techniques", 0, "alpha")``.
    Handles tables, arrays of tables and dotted keys, which covers edgepeft's recipes and profiles.
    """
    want = [str(p) for p in loc]
    table: list[str] = []
    array_counts: dict[str, int] = {}
    best: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _TABLE.match(line)
        if header:
            parts = _split_key(header.group(2))
            if header.group(1) == "[[":
                key = ".".join(parts)
                array_counts[key] = array_counts.get(key, -1) + 1
                parts = [*parts, str(array_counts[key])]
            table = parts
            if table == want[: len(table)] and best is None and len(table) == len(want):
                best = number
            continue
        match = _KEY.match(line)
        if match:
            full = table + _split_key(match.group(1))
            if full == want[: len(full)]:
                return number
    if best is not None:
        return best
    # Fall back to the nearest enclosing table that exists (a missing key is reported there).
    return toml_line(text, loc[:-1]) if len(loc) > 1 else None


def _allowed_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The keys ``model`` accepts in the table that holds ``loc``'s last key."""
    current = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part)
        if field is None:
            return []
        candidates = (field.annotation, *typing.get_args(field.annotation))
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        nested += [
            a for c in candidates for a in typing.get_args(c) if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if not nested:
            return []
        current = nested[0]
    return list(current.model_fields)


def _describe(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    return error["msg"].removeprefix("Value error, ")


def config_error(
    exc: ValidationError,
    model: type[BaseModel],
    file: Path | str,
    text: str | None,
    prefix: Sequence[str | int] = (),
) -> ConfigError:
    """The first error of ``exc`` as a :class:`ConfigError` naming ``file:line`` and the dotted key."""
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")  # typos first
    error = errors[0]
    loc = [*prefix, *error["loc"]]
    line = toml_line(text, loc) if text else None
    where = f"{file}:{line}" if line else str(file)
    key = ".".join(str(p) for p in loc)
    what = f"{key}: {_describe(error)}" if key else _describe(error)
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, error["loc"])
        fix = "Remove or correct the key"
        if allowed:
            fix += f"; allowed here: {', '.join(allowed)}"
    elif error["type"] == "missing":
        fix = "Add the key"
    elif error["type"] == "value_error":
        fix = "Change the values it names"
    else:
        fix = f"Got {error.get('input')!r}"
    more = len(errors) - 1
    if more:
        fix += f" ({more} more problem{'s' if more > 1 else ''} after this one)"
    return ConfigError(what, where=where, fix=fix)


def parse(model: type[M], data: object, file: Path | str, text: str | None, prefix: Sequence[str | int] = ()) -> M:
    """Validate ``data`` into ``model``; errors become :class:`ConfigError` pointing into ``file``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, model, file, text, prefix) from None


def read_toml(path: Path) -> tuple[dict[str, Any], str]:
    """Parse a TOML file; a missing file or a syntax error is a :class:`ConfigError` naming it."""
    import tomllib

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", where=str(path), fix="Check the path") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror}", where=str(path)) from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", where=str(path), fix="Fix the TOML syntax") from None

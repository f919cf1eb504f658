"""One error hierarchy. Every message says what went wrong, where, and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EdgepeftError(Exception):
    """Base of every error edgepeft reports to a user; the CLI prints it as one line."""

    exit_code = 1

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text}. {self.fix}" if self.fix else text


class ConfigError(EdgepeftError):
    """A recipe, device profile or option is invalid."""

    exit_code = 2


class PluginError(EdgepeftError):
    """A plugin failed to load, registered something twice, or raised inside a hook."""

    exit_code = 3


class UnknownNameError(ConfigError):
    """A name (device, dataset, technique, backend, model) is not registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str], *, where: str | None = None) -> None:
        known = sorted(known)
        prefixed = [k for k in known if k.startswith(name) or name.startswith(k)]
        close = list(dict.fromkeys([*prefixed, *difflib.get_close_matches(name, known, n=3, cutoff=0.5)]))[:3]
        hint = f"Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = f"Known {kind}s: {', '.join(known)}." if known else f"No {kind}s are registered."
        super().__init__(f"unknown {kind} {name!r}", where=where, fix=f"{hint} {listing}".strip())
        self.suggestions = close


class DataError(EdgepeftError):
    """A data set is missing, empty or malformed."""

    exit_code = 4


class BackendUnavailableError(EdgepeftError):
    """A backend's runtime is not installed here."""

    exit_code = 5


class ExportError(EdgepeftError):
    """A model could not be exported, loaded or run by a backend."""

    exit_code = 6


class ParityError(EdgepeftError):
    """An exported model gives answers that differ from the PyTorch model beyond the thresholds."""

    exit_code = 7


class ArtifactError(EdgepeftError):
    """A run folder or bundle is missing files, or a file's checksum does not match."""

    exit_code = 8


class TrainingError(EdgepeftError):
    """Training cannot go on (a non-finite loss, a model that does not fit the data)."""

    exit_code = 9


class TrainingInterrupted(TrainingError):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint; `edgepeft train --resume` continues."""

    exit_code = 130

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        super().__init__(what, where=where, fix=fix or "Continue with `edgepeft train --resume runs/<name>`")

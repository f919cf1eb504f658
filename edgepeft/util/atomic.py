"""Atomic writes: write to a temporary name beside the target, fsync, then rename over it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgepeft.errors import EdgepeftError
from edgepeft.util import interrupts


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_failed(path: Path, exc: OSError) -> EdgepeftError:
    return EdgepeftError(
        f"could not write {path}: {exc.strerror or exc}",
        fix="Check free disk space and write permission; the previous file (if any) is unchanged",
    )


@contextlib.contextmanager
def atomic_file(path: Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; it replaces ``path`` only on success.

    ``durable=False`` skips the fsync: the swap is still atomic for a crashed or killed process, but a power
    cut may lose the newest content. Frequent writes (training checkpoints) use it: an fsync costs about
    half a second on some disks.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes files private; outputs are shared like any file
        os.close(fd)
    except OSError as exc:
        raise _write_failed(path, exc) from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        interrupts.check()
        os.replace(tmp, path)
        if durable:
            _fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _write_failed(path, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(path: Path) -> None:
    """Remove temporary folders for ``path`` left by processes that were killed (their pid is gone)."""
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        pid = leftover.name.removeprefix(f".{path.name}.").split(".", 1)[0]
        if leftover.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces ``path`` whole, else it is removed.

    The temporary folder's name carries this process's pid, so a later call can clear what a killed
    process left behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
        tmp.chmod(0o777 & ~_umask())
    except OSError as exc:
        raise _write_failed(path, exc) from exc
    try:
        yield tmp
        interrupts.check()  # an interrupt must never be followed by publishing the result
        replace_directory(tmp, path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _write_failed(path, exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_directory(source: Path, path: Path) -> None:
    """Make the finished folder ``source`` become ``path`` (replacing any previous one), files fsynced first."""
    for file in source.rglob("*"):
        if file.is_file():
            with open(file, "rb+") as handle:
                os.fsync(handle.fileno())
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(source, path)
    _fsync_dir(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

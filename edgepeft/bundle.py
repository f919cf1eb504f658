"""Deployable bundles: a folder with the model, labels and manifest.json (sha256 of every file), plus a .zip."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import zipfile
from pathlib import Path
from typing import Any

from edgepeft import atomic
from edgepeft.errors import ArtifactError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


def versions(extra: dict[str, str]) -> dict[str, str]:
    """Versions of Python, edgepeft, torch and the backend's runtime packages."""
    out = {"python": platform.python_version()}
    for dist in ("edgepeft", "torch", "numpy"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {**out, **extra}


def host() -> dict[str, Any]:
    import os

    return {
        "machine": platform.machine(),
        "system": platform.system(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
    }


def file_entries(folder: Path) -> list[dict[str, Any]]:
    """sha256 and size of every file in ``folder`` except the manifest itself."""
    return [
        {"path": p.relative_to(folder).as_posix(), "sha256": atomic.sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    ]


def finish(folder: Path, manifest: dict[str, Any]) -> None:
    """Add schema version and file hashes, then write ``manifest.json`` into ``folder``."""
    manifest = {"schema_version": SCHEMA_VERSION, **manifest, "files": file_entries(folder)}
    atomic.write_json(folder / MANIFEST, manifest)


def write_zip(folder: Path) -> Path:
    """``<folder>.zip`` holding the folder's files under ``<folder name>/``, written atomically."""
    target = folder.with_name(folder.name + ".zip")
    with atomic.atomic_file(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
    return target


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ArtifactError(
            "no manifest.json here", where=str(folder), fix="Pass a folder written by `edgepeft deploy`"
        )
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"manifest is not valid JSON: {exc}", where=str(path)) from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ArtifactError(
            f"unsupported manifest schema_version {manifest.get('schema_version')!r}",
            fix=f"This edgepeft reads schema_version {SCHEMA_VERSION}; deploy again with this version",
            where=str(path),
        )
    return manifest


def verify(folder: Path) -> list[str]:
    """Problems with a bundle: files missing, altered (sha256) or not listed in the manifest. Empty: intact."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    problems = []
    listed = set()
    for entry in manifest.get("files", []):
        path = folder / entry["path"]
        listed.add(entry["path"])
        if not path.is_file():
            problems.append(f"{entry['path']}: missing")
        elif atomic.sha256_file(path) != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 differs from the manifest (the file was changed)")
    for entry in file_entries(folder):
        if entry["path"] not in listed:
            problems.append(f"{entry['path']}: not listed in the manifest")
    return problems

"""Deployable bundles: a folder with the model, labels and manifest.json (sha256 of every file), plus a .zip."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import zipfile
from pathlib import Path, PurePosixPath
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


def write_zip(source: Path, target: Path) -> None:
    """``target`` (.zip) holding ``source``'s files under ``<target stem>/``, written atomically."""
    with atomic.atomic_file(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                archive.write(path, f"{target.stem}/{path.relative_to(source).as_posix()}")


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ArtifactError(
            "no manifest.json here", where=str(folder), fix="Pass a folder written by `edgepeft deploy`"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"manifest is not valid JSON: {exc}", where=str(path)) from None
    if not isinstance(manifest, dict):
        raise ArtifactError("manifest is not a JSON object", where=str(path))
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ArtifactError(
            f"unsupported manifest schema_version {manifest.get('schema_version')!r}",
            fix=f"This edgepeft reads schema_version {SCHEMA_VERSION}; deploy again with this version",
            where=str(path),
        )
    return manifest


def _listed_files(manifest: dict[str, Any], where: str) -> dict[str, str]:
    """path -> sha256 of the manifest's file list, refusing entries that are malformed or point outside."""
    entries = manifest.get("files")
    if not isinstance(entries, list) or not entries:
        raise ArtifactError("manifest lists no files", where=where, fix="Deploy the bundle again")
    listed = {}
    for entry in entries:
        if not (
            isinstance(entry, dict) and isinstance(entry.get("path"), str) and isinstance(entry.get("sha256"), str)
        ):
            raise ArtifactError(f"malformed file entry {entry!r}", where=where, fix="Deploy the bundle again")
        path = PurePosixPath(entry["path"])
        if path.is_absolute() or ".." in path.parts:
            raise ArtifactError(f"file entry {entry['path']!r} points outside the bundle", where=where)
        listed[entry["path"]] = entry["sha256"]
    model_file = manifest.get("model", {}).get("file") if isinstance(manifest.get("model"), dict) else None
    if model_file not in listed:
        raise ArtifactError("the model file is not among the manifest's files", where=where)
    return listed


def verify(folder: Path) -> list[str]:
    """Problems with a bundle: files missing, altered (sha256) or not listed in the manifest. Empty: intact."""
    folder = Path(folder)
    listed = _listed_files(read_manifest(folder), str(folder / MANIFEST))
    problems = []
    for name, digest in listed.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif atomic.sha256_file(path) != digest:
            problems.append(f"{name}: sha256 differs from the manifest (the file was changed)")
    problems += [f"{e['path']}: not listed in the manifest" for e in file_entries(folder) if e["path"] not in listed]
    return problems

"""Deployable bundles: a folder with the model, labels and manifest.json (sha256 of every file), plus a .zip."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from edgepeft import atomic

if TYPE_CHECKING:
    from edgepeft.plugins import PluginManager
from edgepeft.errors import ArtifactError, EdgepeftError

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


MAX_BUNDLE_BYTES = 4 * 1024**3
MAX_COMPRESSION_RATIO = 1000


def extract_zip(archive: Path, destination: Path) -> Path:
    """Unpack a bundle .zip safely and return the bundle folder inside it.

    Refuses absolute paths, ``..``, links, more than 4 GiB unpacked and compression ratios above 1000
    (zip bombs), checking every entry before writing anything.
    """
    where = str(archive)
    try:
        with zipfile.ZipFile(archive) as zf:
            entries = zf.infolist()
            total = 0
            for info in entries:
                path = PurePosixPath(info.filename)
                if path.is_absolute() or ".." in path.parts or "\\" in info.filename:
                    raise ArtifactError(f"entry {info.filename!r} points outside the bundle", where=where)
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise ArtifactError(f"entry {info.filename!r} is a link", where=where)
                total += info.file_size
                if total > MAX_BUNDLE_BYTES or info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
                    raise ArtifactError(
                        f"entry {info.filename!r} unpacks to {info.file_size:,} bytes from {info.compress_size:,}",
                        where=where,
                        fix="This is not a bundle edgepeft wrote (it looks like a zip bomb)",
                    )
            roots = {PurePosixPath(i.filename).parts[0] for i in entries if i.filename.strip("/")}
            if len(roots) != 1:
                raise ArtifactError("a bundle .zip holds exactly one folder", where=where)
            zf.extractall(destination)
    except zipfile.BadZipFile as exc:
        raise ArtifactError(f"not a valid zip file: {exc}", where=where) from None
    return destination / roots.pop()


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


@dataclass
class Verification:
    """What `verify` found: problems (none: intact) and how many sample inputs were re-run."""

    problems: list[str]
    samples_rerun: int


def verify(folder: Path, manager: PluginManager) -> Verification:
    """Check a bundle: files missing, altered (sha256) or not listed in the manifest, then the samples the
    model must still reproduce with the runtime the manifest names.

    The model is only loaded once every file matches its hash: a file nobody vouches for is never opened.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    listed = _listed_files(manifest, str(folder / MANIFEST))
    problems = []
    for name, digest in listed.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif atomic.sha256_file(path) != digest:
            problems.append(f"{name}: sha256 differs from the manifest (the file was changed)")
    problems += [f"{e['path']}: not listed in the manifest" for e in file_entries(folder) if e["path"] not in listed]
    if problems:
        return Verification(problems, 0)
    samples = manifest.get("samples", {}).get("file") if isinstance(manifest.get("samples"), dict) else None
    if samples not in listed:
        return Verification(["manifest names no sample file among its hashed files; nothing can be re-run"], 0)
    return _rerun_samples(folder, manifest, manager)


def _rerun_samples(folder: Path, manifest: dict[str, Any], manager: PluginManager) -> Verification:
    import numpy as np

    from edgepeft.backend import Artifact, ExportOptions, TensorSpec

    model = manifest["model"]
    try:
        backend = manager.backends.get(model["backend"], where=str(folder / MANIFEST))
        reason = backend.unavailable_reason()
        if reason:
            return Verification(
                [f"cannot re-run the samples: the {backend.name} runtime is not usable here ({reason})"], 0
            )
        artifact = Artifact(
            backend=backend.name,
            path=folder / model["file"],
            inputs=[TensorSpec(**t) for t in manifest["inputs"]],
            outputs=[TensorSpec(**t) for t in manifest["outputs"]],
            precision=model["precision"],
        )
        options = ExportOptions(
            precision=model["precision"], input_layout=model["input_layout"], batch_size=model["batch_size"]
        )
        samples = json.loads((folder / manifest["samples"]["file"]).read_text())["samples"]
        outputs = backend().load(artifact, options)(np.array([s["input"] for s in samples], dtype=np.float32))
    except EdgepeftError as exc:
        return Verification([f"{model.get('file')}: cannot be run: {exc.message}"], 0)
    except (OSError, KeyError, TypeError, ValueError) as exc:
        return Verification([f"{MANIFEST}: cannot re-run the samples ({type(exc).__name__}: {exc})"], 0)
    problems = []
    for i, (sample, got) in enumerate(zip(samples, outputs, strict=True)):
        expected = np.asarray(sample["expected_output"], dtype=np.float64)
        diff = float(np.abs(got - expected).max())
        top1 = sample.get("expected_top1")  # classifiers only
        if (top1 is not None and int(got.argmax()) != top1) or diff > 1e-4 + 1e-4 * float(np.abs(expected).max()):
            problems.append(f"{model['file']}: sample {i} gives a different output now (max |diff| {diff:.3g})")
    return Verification(problems, len(samples))

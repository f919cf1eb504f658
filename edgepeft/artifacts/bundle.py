"""Deployable bundles: a folder with the model, labels, the tokenizer of a text model and manifest.json (sha256
of every file), plus a .zip."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from edgepeft.artifacts.manifest import FileEntry, Manifest
from edgepeft.errors import ArtifactError, EdgepeftError
from edgepeft.util import atomic

if TYPE_CHECKING:
    from edgepeft.host.manager import PluginManager

MANIFEST = Manifest.FILE
TOKENIZER = "tokenizer"
"""The bundle folder holding a text model's tokenizer; ``preprocessing.tokenizer_folder`` names it."""
TOKENIZER_FILES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
        "added_tokens.json",
        "merges.txt",
        "vocab.json",
    }
)


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


def file_entries(folder: Path) -> list[FileEntry]:
    """sha256 and size of every file in ``folder`` except the manifest itself."""
    return [
        FileEntry(path=p.relative_to(folder).as_posix(), sha256=atomic.sha256_file(p), bytes=p.stat().st_size)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    ]


def finish(folder: Path, manifest: Manifest) -> None:
    """Write ``manifest.json`` into ``folder``, listing every file with its hash."""
    manifest.model_copy(update={"files": file_entries(folder)}).write(folder / MANIFEST)


def tokenizer_files(folder: Path) -> list[Path]:
    """The Hugging Face tokenizer files in ``folder``: the known names and sentencepiece ``*.model`` files
    (never model weights)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and (p.name in TOKENIZER_FILES or p.suffix == ".model"))


def bundle_tokenizer(preprocessing: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Copy the tokenizer ``preprocessing.tokenizer_folder`` names into ``folder/tokenizer/``, each file
    atomically, and return ``preprocessing`` naming the bundled copy and its files (no path of this machine);
    preprocessing without a tokenizer comes back as it is."""
    if "tokenizer_folder" not in preprocessing:
        return preprocessing
    source = Path(preprocessing["tokenizer_folder"])
    files = tokenizer_files(source) if source.is_dir() else []
    if not files:
        raise ArtifactError(
            f"no Hugging Face tokenizer files ({', '.join(sorted(TOKENIZER_FILES))}, *.model) in the run's "
            "tokenizer folder",
            where=str(source),
            fix=f"Save the tokenizer {preprocessing.get('tokenizer')!r} there (transformers' `save_pretrained` writes "
            "tokenizer.json), then deploy again",
        )
    for file in files:
        with atomic.atomic_file(folder / TOKENIZER / file.name) as tmp:
            shutil.copyfile(file, tmp)
    return {
        **preprocessing,
        "tokenizer": Path(str(preprocessing.get("tokenizer", source))).name,  # a local folder: its name, not its path
        "tokenizer_folder": TOKENIZER,
        "tokenizer_files": [f.name for f in files],
    }


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


def read_manifest(folder: Path) -> Manifest:
    """A bundle's manifest, validated (entries pointing outside the bundle are refused)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ArtifactError(
            "no manifest.json here", where=str(folder), fix="Pass a folder written by `edgepeft deploy`"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"manifest is not valid JSON: {exc}", where=str(path)) from None
    return Manifest.parse(data, str(path))


def _listed_files(manifest: Manifest, where: str) -> dict[str, str]:
    """path -> sha256 of the manifest's file list, which must name the model file."""
    if not manifest.files:
        raise ArtifactError("manifest lists no files", where=where, fix="Deploy the bundle again")
    listed = {entry.path: entry.sha256 for entry in manifest.files}
    if manifest.model.file not in listed:
        raise ArtifactError("the model file is not among the manifest's files", where=where)
    return listed


@dataclass
class Verification:
    """What `verify` found: problems (none: intact), how many sample inputs were re-run and, for a bundle with
    a tokenizer, what its check covered."""

    problems: list[str]
    samples_rerun: int
    tokenizer: str | None = None


def verify(folder: Path, manager: PluginManager) -> Verification:
    """Check a bundle: files missing, altered (sha256) or not listed in the manifest, a text model's tokenizer
    against the samples, then the samples the model must still reproduce with the runtime the manifest names.

    The model is only loaded once every file matches its hash: a file nobody vouches for is never opened.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    listed = _listed_files(manifest, str(folder / MANIFEST))
    preprocessing = manifest.preprocessing
    problems = _file_problems(folder, listed, preprocessing)
    if problems:
        return Verification(problems, 0)
    samples = manifest.samples.file if manifest.samples else None
    if samples not in listed:
        return Verification(["manifest names no sample file among its hashed files; nothing can be re-run"], 0)
    if "tokenizer_folder" not in preprocessing:
        return _rerun_samples(folder, manifest, manager)
    problems, covered = _tokenizer_problems(folder, preprocessing, listed, folder / samples)
    rerun = _rerun_samples(folder, manifest, manager)
    return Verification(problems + rerun.problems, rerun.samples_rerun, covered)


def _file_problems(folder: Path, listed: dict[str, str], preprocessing: dict[str, Any]) -> list[str]:
    """Listed files missing or altered, and files the manifest does not list; a tokenizer file's problem says
    how to restore it."""
    problems = []
    for name, digest in listed.items():
        path = folder / name
        if not path.is_file():
            problem = f"{name}: missing"
        elif atomic.sha256_file(path) != digest:
            problem = f"{name}: sha256 differs from the manifest (the file was changed)"
        else:
            continue
        problems.append(_with_restore(problem, name, preprocessing) if name.startswith(f"{TOKENIZER}/") else problem)
    problems += [f"{e.path}: not listed in the manifest" for e in file_entries(folder) if e.path not in listed]
    return problems


def _with_restore(problem: str, name: str, preprocessing: dict[str, Any]) -> str:
    """``problem`` of the bundled tokenizer file ``name``, with how to put it right."""
    return (
        f"{problem} - an app needs it to turn text into token ids: copy {PurePosixPath(name).name} back unchanged "
        f"from the tokenizer {preprocessing.get('tokenizer')!r}, or deploy the bundle again with `edgepeft deploy`"
    )


def _tokenizer_problems(
    folder: Path, preprocessing: dict[str, Any], listed: dict[str, str], samples: Path
) -> tuple[list[str], str]:
    """A text model's bundled tokenizer: every file ``preprocessing.tokenizer_files`` names is hashed in the
    manifest and, with the `tokenizers` package, tokenizing the samples' texts gives their ids (samples that
    keep only ids: the vocabulary covers them and the pad id is the one training used). Returns the problems
    and a line saying what was checked."""
    named = preprocessing.get("tokenizer_files")
    if preprocessing["tokenizer_folder"] != TOKENIZER or not isinstance(named, list) or not named:
        return [
            f"{MANIFEST}: preprocessing does not name a bundled tokenizer (tokenizer_folder "
            f"{preprocessing['tokenizer_folder']!r}); deploy the bundle again with this edgepeft"
        ], "not checked"
    missing = [f"{TOKENIZER}/{name}" for name in named if f"{TOKENIZER}/{name}" not in listed]
    if missing:
        return [_with_restore(f"{name}: missing", name, preprocessing) for name in missing], "not checked"
    hashed = f"{len(named)} tokenizer files match the manifest"
    if "tokenizer.json" not in named:
        return [], f"{hashed} (no tokenizer.json to run)"
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return [], f"{hashed} (not run: the `tokenizers` package is not installed)"
    name = f"{TOKENIZER}/tokenizer.json"
    try:
        tokenizer = Tokenizer.from_file(str(folder / name))
    except Exception as exc:  # tokenizers raises plain Exception on a malformed file
        return [_with_restore(f"{name}: cannot be loaded ({exc})", name, preprocessing)], "not checked"
    try:
        rows = json.loads(samples.read_text(encoding="utf-8"))["samples"]
        problems = _id_problems(tokenizer, folder / TOKENIZER, preprocessing, rows)
        texts = sum(isinstance(row.get("text"), str) for row in rows)
        if not problems and texts:
            problems = _text_problems(tokenizer, preprocessing, rows)
    except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
        return [f"{samples.name}: cannot check the tokenizer against it ({type(exc).__name__}: {exc})"], "not checked"
    covered = f"{hashed}; its vocabulary covers the sample ids, it pads with id {preprocessing['pad_token_id']}"
    covered += f" and gives the {texts} sample texts' ids" if texts else ""
    fix = " - the bundled tokenizer is not the one the model was trained with: deploy the bundle again"
    return [problem + fix for problem in problems], covered


def _text_problems(tokenizer: Any, preprocessing: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """Samples whose text the bundled tokenizer, truncating and padding as training did, turns into other ids."""
    length, pad = int(preprocessing["max_length"]), int(preprocessing["pad_token_id"])
    tokenizer.enable_truncation(max_length=length)
    tokenizer.enable_padding(length=length, pad_id=pad, pad_token=tokenizer.id_to_token(pad))
    return [
        f"{TOKENIZER}/tokenizer.json: sample {i}'s text gives other token ids than its input in samples.json"
        for i, row in enumerate(rows)
        if isinstance(row.get("text"), str) and tokenizer.encode(row["text"]).ids != [int(v) for v in row["input"]]
    ]


def _id_problems(tokenizer: Any, files: Path, preprocessing: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """Sample ids beyond the bundled tokenizer's vocabulary, or a pad id other than training's."""
    problems = []
    top, size = max(int(v) for row in rows for v in row["input"]), tokenizer.get_vocab_size(with_added_tokens=True)
    if top >= size:
        problems.append(f"{TOKENIZER}/tokenizer.json: {size:,} tokens, but the samples use token id {top}")
    pad = _pad_token_id(tokenizer, files)
    if pad != preprocessing["pad_token_id"]:
        problems.append(
            f"{TOKENIZER}/: the tokenizer pads with id {pad}, training padded with "
            f"preprocessing.pad_token_id {preprocessing['pad_token_id']}"
        )
    return problems


def _pad_token_id(tokenizer: Any, files: Path) -> int | None:
    """The pad id the tokenizer files declare: special_tokens_map.json's or tokenizer_config.json's pad token,
    else tokenizer.json's padding."""
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = files / name
        token = json.loads(path.read_text(encoding="utf-8")).get("pad_token") if path.is_file() else None
        token = token.get("content") if isinstance(token, dict) else token
        if isinstance(token, str):
            return tokenizer.token_to_id(token)
    return tokenizer.padding["pad_id"] if tokenizer.padding else None


def _rerun_samples(folder: Path, manifest: Manifest, manager: PluginManager) -> Verification:
    import numpy as np

    from edgepeft.api.backend import Artifact, ExportOptions, TensorSpec

    model = manifest.model
    try:
        backend = manager.backends.get(model.backend, where=str(folder / MANIFEST))
        reason = backend.unavailable_reason()
        if reason:
            return Verification(
                [f"cannot re-run the samples: the {backend.name} runtime is not usable here ({reason})"], 0
            )
        artifact = Artifact(
            backend=backend.name,
            path=folder / model.file,
            inputs=[TensorSpec(t.name, t.shape, t.dtype, t.quantization) for t in manifest.inputs],
            outputs=[TensorSpec(t.name, t.shape, t.dtype, t.quantization) for t in manifest.outputs],
            precision=model.precision,
        )
        options = ExportOptions(precision=model.precision, input_layout=model.input_layout, batch_size=model.batch_size)
        samples = json.loads((folder / manifest.samples.file).read_text())["samples"]  # type: ignore[union-attr]
        outputs = backend().load(artifact, options)(np.array([s["input"] for s in samples], dtype=np.float32))
    except EdgepeftError as exc:
        return Verification([f"{model.file}: cannot be run: {exc.message}"], 0)
    except (OSError, KeyError, TypeError, ValueError) as exc:
        return Verification([f"{MANIFEST}: cannot re-run the samples ({type(exc).__name__}: {exc})"], 0)
    problems = []
    for i, (sample, got) in enumerate(zip(samples, outputs, strict=True)):
        expected = np.asarray(sample["expected_output"], dtype=np.float64)
        diff = float(np.abs(got - expected).max())
        top1 = sample.get("expected_top1")  # classifiers only
        if (top1 is not None and int(got.argmax()) != top1) or diff > 1e-4 + 1e-4 * float(np.abs(expected).max()):
            problems.append(f"{model.file}: sample {i} gives a different output now (max |diff| {diff:.3g})")
    return Verification(problems, len(samples))

"""The trained teacher's cache: a teacher is trained once and reused by later attempts, reruns of its recipe
and any other recipe with the same teacher section, data section, data and seed (``runs/.teachers/<key>/``)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgepeft.artifacts.run_folder import FINGERPRINT, TEACHERS, TECHNIQUES, load_model, save_model
from edgepeft.errors import ArtifactError, TrainingError
from edgepeft.train import distributed
from edgepeft.util import atomic

if TYPE_CHECKING:
    import torch

    from edgepeft.api.model import ModelSpec
    from edgepeft.host.manager import PluginManager

log = logging.getLogger("edgepeft.run")


def teacher_key(*parts: Any) -> str:
    """The cache key of a teacher: a hash of everything that decides its weights."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class TeacherCache:
    """Where a run looks for its trained teacher, in order: this attempt's partial folder, the previous run
    of the recipe, then the shared cache. A damaged cached teacher is trained again. Under torchrun every
    process reads the same cache; rank 0 alone writes it."""

    def __init__(self, manager: PluginManager, run_dir: Path, work: Path, key: str):
        self.manager = manager
        self.key = key
        self.folder = work / "teacher"
        self.candidates = (self.folder, run_dir / "teacher")
        self.shared = run_dir.parent / TEACHERS / key[:16]

    def load(self) -> torch.nn.Module | None:
        """The cached teacher (copied into this attempt's folder and the shared cache), or None."""
        for cached in (*self.candidates, self.shared):
            key_file = cached / FINGERPRINT
            if not (key_file.is_file() and key_file.read_text().strip() == self.key):
                continue
            try:
                model, _ = load_model(cached, self.manager)
            except ArtifactError as exc:
                log.warning("the cached teacher cannot be loaded (%s); training it again", exc.message)
                return None
            distributed.on_main(self._keep, cached)
            log.info("reusing the cached teacher in %s", cached)
            return model
        return None

    def save(
        self, model: torch.nn.Module, spec: ModelSpec, reports: list[dict[str, Any]], files: dict[str, bytes]
    ) -> None:
        """Save a newly trained teacher with its techniques' reports and files, then share it."""
        save_model(model, spec, self.folder)
        atomic.write_json(self.folder / TECHNIQUES, reports)
        for name, content in files.items():
            path = self.folder / name
            if Path(name).is_absolute() or ".." in Path(name).parts or path.exists():
                raise TrainingError(
                    f"a teacher technique returned the file name {name!r}, which leaves the teacher's folder or "
                    "replaces a saved file",
                    fix="Report it to the technique's authors: names are new paths inside the folder",
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_bytes(path, content)
        atomic.write_text(self.folder / FINGERPRINT, self.key + "\n")
        self._share(self.folder)

    def _keep(self, cached: Path) -> None:
        if cached != self.folder:
            shutil.copytree(cached, self.folder, dirs_exist_ok=True)
        if not self.shared.is_dir():
            self._share(self.folder)

    def _share(self, folder: Path) -> None:
        """Copy a trained teacher to ``runs/.teachers/`` for other recipes with the same teacher and data."""
        with atomic.atomic_directory(self.shared) as tmp:
            shutil.copytree(folder, tmp, dirs_exist_ok=True)

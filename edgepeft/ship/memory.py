"""Peak memory of inference, measured in a fresh Python process that loads and runs the exported file.

The parent process holds the training stack (torch, the teacher, data), so its own peak says nothing
about the deployed model. The child imports only edgepeft, the backend's module (found on the parent's
import path, so a backend registered at run time is measured too) and its runtime.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgepeft.api.backend import Artifact, Backend, ExportOptions
from edgepeft.errors import EdgepeftError

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class MemoryReport:
    """Resident memory (MB, 2^20 bytes) of the inference process: its peak, and before the backend
    imported its runtime and loaded the model."""

    process_peak_mb: float
    before_load_mb: float

    @property
    def model_mb(self) -> float:
        """Memory the runtime and the model added on top of the bare interpreter."""
        return self.process_peak_mb - self.before_load_mb


def measure_peak_memory(
    backend: type[Backend], artifact: Artifact, options: ExportOptions, batch: np.ndarray, runs: int = 5
) -> MemoryReport:
    """Run ``batch`` through the artifact ``runs`` times in a child process and report its peak RSS."""
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "batch.npy", batch)
        request = {
            "backend": backend.name,
            "backend_class": f"{backend.__module__}:{backend.__qualname__}",
            "path": sys.path,
            "artifact": artifact.as_dict(),
            "options": options.portable(),
            "batch": str(Path(tmp) / "batch.npy"),
            "runs": runs,
        }
        proc = subprocess.run(
            [sys.executable, "-m", __name__, json.dumps(request)], capture_output=True, text=True, timeout=600
        )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise EdgepeftError(f"measuring peak memory failed in the child process: {last}", where=str(artifact.path))
    return MemoryReport(**json.loads(proc.stdout.strip().splitlines()[-1]))


def _peak_rss_mb() -> float:
    """This process's peak resident set. Linux's VmHWM starts afresh at exec, unlike ru_maxrss, which
    keeps the high-water mark of the forked parent."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 1024**2)


def _backend_class(request: dict) -> type[Backend]:
    """The backend class the parent measured: imported from its module, or, for one defined where no import
    reaches (a script, a function), the installed backend of that name."""
    module, _, qualname = request["backend_class"].partition(":")
    if module != "__main__" and "<locals>" not in qualname:
        sys.path[:0] = [p for p in request["path"] if p not in sys.path]
        value = importlib.import_module(module)
        for part in qualname.split("."):
            value = getattr(value, part)
        return value
    from edgepeft.host.manager import default_manager

    return default_manager().backends.get(request["backend"])


def _child(request: dict) -> MemoryReport:
    import numpy as np

    cls = _backend_class(request)
    batch = np.load(request["batch"])
    before = _peak_rss_mb()
    runner = cls().load(Artifact.from_dict(request["artifact"]), ExportOptions(**request["options"]))
    for _ in range(request["runs"]):
        runner(batch)
    return MemoryReport(process_peak_mb=_peak_rss_mb(), before_load_mb=before)


if __name__ == "__main__":
    print(json.dumps(asdict(_child(json.loads(sys.argv[1])))))

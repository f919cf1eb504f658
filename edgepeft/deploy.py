"""`edgepeft deploy`: export a run's student for a device, gate on parity, measure, and write the bundle."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgepeft import atomic, bundle
from edgepeft.devices import DeviceProfile, parity_thresholds
from edgepeft.export import calibration_inputs, choose_backend, export_checked, export_options
from edgepeft.memory import measure_peak_memory
from edgepeft.parity import ParityReport
from edgepeft.plugins import PluginManager
from edgepeft.profile import BudgetCheck, check_budgets, measure_latency, sample_batch
from edgepeft.run import WEIGHTS, Run


@dataclass
class Deployment:
    """What ``deploy`` produced: the bundle, its zip, and the manifest written into it."""

    folder: Path
    zip_path: Path
    manifest: dict[str, Any]
    budgets: list[BudgetCheck]
    parity: ParityReport

    @property
    def within_budget(self) -> bool:
        return all(b.passed for b in self.budgets)


def deploy(
    run: Run,
    profile: DeviceProfile,
    manager: PluginManager,
    out_dir: Path,
    *,
    backend: str | None = None,
    precision: str | None = None,
    progress: Any = None,
) -> Deployment:
    """Export, check parity on the held-out test split, measure, and write ``out_dir/<run>-<device>/``.

    Nothing is written unless parity passes; the folder appears whole or not at all.
    """
    backend_cls, precision = choose_backend(profile, manager, backend, precision)
    model, spec = run.student(manager)
    data = run.data(manager)
    options = export_options(profile, precision, calibration_inputs(data.train.x, run.resolved.recipe.seed))
    thresholds = parity_thresholds(profile.parity, precision)
    target = Path(out_dir) / f"{run.name}-{profile.name}"
    with atomic.atomic_directory(target) as tmp:
        checked = export_checked(model, backend_cls(), options, (data.test.x, data.test.y), thresholds, tmp)
        test_acc = checked.parity.accuracy
        teacher_acc = run.metrics["teacher"]["test_accuracy"]
        host_latency = {
            str(b): measure_latency(checked.runner, sample_batch(data.test.x, b), progress=progress)
            for b in sorted({1, profile.budgets.batch_size})
        }
        device_latency = host_latency[str(profile.budgets.batch_size)].scaled(profile.hardware.relative_speed)
        memory = measure_peak_memory(
            backend_cls.name, checked.artifact, options, sample_batch(data.test.x, profile.budgets.batch_size)
        )
        budgets = check_budgets(
            profile,
            size_bytes=checked.artifact.size_bytes,
            device_latency=device_latency,
            accuracy_retention=test_acc / teacher_acc,
            peak_memory_mb=memory.process_peak_mb,
        )
        atomic.write_text(tmp / "labels.txt", "\n".join(data.labels) + "\n")
        manifest = {
            "name": target.name,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "model": {
                "file": checked.artifact.path.name,
                "backend": backend_cls.name,
                "precision": precision,
                "threads": options.threads,
                "parameters": spec.parameters,
            },
            "inputs": checked.artifact.as_dict()["inputs"],
            "outputs": checked.artifact.as_dict()["outputs"],
            "preprocessing": data.preprocessing,
            "labels": data.labels,
            "metrics": {
                "test_accuracy": {
                    "value": test_acc,
                    "examples": len(data.test),
                    "how": "exported model on the held-out test split",
                    "where": "host",
                },
                "teacher_test_accuracy": {"value": teacher_acc, "how": "PyTorch teacher, same split"},
                "accuracy_retention": test_acc / teacher_acc,
                "parity": {**checked.parity.as_dict(), "split": "test"},
                "size_bytes": checked.artifact.size_bytes,
                "latency_host_ms": {k: asdict(v) for k, v in host_latency.items()},
                "peak_memory_mb": {
                    **asdict(memory),
                    "model_mb": memory.model_mb,
                    "how": f"peak RSS of a fresh Python process running {backend_cls.name} at batch "
                    f"{profile.budgets.batch_size}; before_load_mb is Python and edgepeft before the runtime loads",
                    "where": "host",
                },
                "latency_device_estimate_ms": {
                    **asdict(device_latency),
                    "how": f"host p-values / relative_speed {profile.hardware.relative_speed:g}",
                },
            },
            "budgets": [b.as_dict() for b in budgets],
            "device": {"name": profile.name, "sha256": profile.sha256(), "profile": profile.model_dump(mode="json")},
            "host": bundle.host(),
            "versions": bundle.versions(backend_cls.package_versions()),
            "provenance": {
                "run": run.name,
                "recipe": run.resolved.to_dict(),
                "seed": run.resolved.recipe.seed,
                "dataset_fingerprint": run.metrics["dataset"]["fingerprint"],
                "student_weights_sha256": atomic.sha256_file(run.path / "student" / WEIGHTS),
            },
        }
        bundle.finish(tmp, manifest)
        zip_path = target.with_name(target.name + ".zip")
        bundle.write_zip(tmp, zip_path)
    return Deployment(target, zip_path, bundle.read_manifest(target), budgets, checked.parity)

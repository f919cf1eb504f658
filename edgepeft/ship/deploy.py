"""`edgepeft profile` and `edgepeft deploy`: export a run's student as a device profile asks, gate on
parity, measure against the budgets, and (deploy) write the bundle."""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgepeft.api.backend import Backend, ExportOptions
from edgepeft.api.dataset import TaskData
from edgepeft.api.device import DeviceProfile, ParityThresholds, parity_thresholds
from edgepeft.api.model import ModelSpec
from edgepeft.artifacts import bundle
from edgepeft.artifacts.manifest import Manifest
from edgepeft.artifacts.run_folder import WEIGHTS, Run
from edgepeft.errors import ArtifactError
from edgepeft.host.manager import PluginManager
from edgepeft.ship.android import REMOTE_ROOT, AdbDevice
from edgepeft.ship.app_readme import app_readme
from edgepeft.ship.export import CheckedExport, calibration_inputs, choose_backend, export_checked, export_options
from edgepeft.ship.profile import DeviceLatency, ProfileReport, profile_export
from edgepeft.ship.report_html import report_html
from edgepeft.ship.samples import SAMPLES, samples_json
from edgepeft.util import atomic

if TYPE_CHECKING:
    import torch


@dataclass
class Prepared:
    """A run's student and data, with the backend, options and thresholds a device profile asks for."""

    run: Run
    profile: DeviceProfile
    backend: type[Backend]
    model: torch.nn.Module
    spec: ModelSpec
    data: TaskData
    options: ExportOptions
    thresholds: ParityThresholds
    manager: PluginManager

    @property
    def teacher_metrics(self) -> dict[str, float]:
        return self.run.metrics.teacher.test_metrics

    def export(self, directory: Path) -> CheckedExport:
        """Export into ``directory`` through the parity gate on the held-out test split."""
        held_out = (self.data.test.x, self.data.test.y)
        return export_checked(
            self.model, self.backend(), self.options, held_out, self.thresholds, directory, self.data.heads
        )

    def measure(
        self,
        checked: CheckedExport,
        *,
        device_latency: DeviceLatency | None = None,
        timing_seconds: float = 2.0,
        progress: Any = None,
    ) -> ProfileReport:
        """Time, size and judge ``checked`` against the profile's budgets."""
        return profile_export(
            checked,
            self.backend,
            self.options,
            self.profile,
            self.data.test.x,
            self.teacher_metrics,
            device_latency=device_latency,
            timing_seconds=timing_seconds,
            progress=progress,
        )


def prepare(
    run: Run,
    profile: DeviceProfile,
    manager: PluginManager,
    backend: str | type[Backend] | None = None,
    precision: str | None = None,
) -> Prepared:
    """Load what an export for ``profile`` needs; ``backend`` may be a class already chosen with
    :func:`choose_backend` (then ``precision`` must be given too)."""
    if isinstance(backend, type) and precision is not None:
        backend_cls = backend
    else:
        backend_cls, precision = choose_backend(profile, manager, backend, precision)  # type: ignore[arg-type]
    model, spec = run.student(manager)
    data = run.data(manager)
    options = export_options(profile, precision, calibration_inputs(data.train.x, run.resolved.recipe.seed))
    thresholds = parity_thresholds(profile.parity, precision)
    return Prepared(run, profile, backend_cls, model, spec, data, options, thresholds, manager)


def profile_run(prepared: Prepared, *, timing_seconds: float = 2.0, progress: Any = None) -> ProfileReport:
    """Export into a scratch folder, gate on parity and measure; nothing is kept."""
    with tempfile.TemporaryDirectory() as scratch:
        checked = prepared.export(Path(scratch))
        return prepared.measure(checked, timing_seconds=timing_seconds, progress=progress)


@dataclass
class Deployment:
    """What ``deploy`` produced: the bundle, its zip, the manifest written into it and the measurements."""

    folder: Path
    zip_path: Path
    manifest: Manifest
    report: ProfileReport


def deploy(
    prepared: Prepared,
    out_dir: Path,
    *,
    push: AdbDevice | None = None,
    timing_seconds: float = 2.0,
    progress: Any = None,
) -> Deployment:
    """Export, gate on parity, measure, and write ``out_dir/<run>-<device>/`` and its ``.zip``; a text model's
    tokenizer files go into the bundle's ``tokenizer/``.

    With ``push``, the bundle goes to the Android device and the backend's benchmark tool (when it declares
    one and the tool is on the device) times the model, which replaces the estimated device latency. Nothing
    is written unless parity passes, and the folder appears whole or not at all.
    """
    run, profile, data, options = prepared.run, prepared.profile, prepared.data, prepared.options
    target = Path(out_dir) / f"{run.name}-{profile.name}"
    remote = f"{REMOTE_ROOT}/.{target.name}.staging"  # swapped into place once everything is there
    with atomic.atomic_directory(target) as tmp:
        preprocessing = bundle.bundle_tokenizer(data.preprocessing, tmp)  # a text model's tokenizer, made relative
        checked = prepared.export(tmp)
        measured = None
        if push is not None:
            remote_model = f"{remote}/{checked.artifact.path.name}"
            push.push(checked.artifact.path, remote_model)
            measured = push.benchmark(prepared.backend(), remote_model, profile.runtime.threads, options.batch_size)
        report = prepared.measure(checked, device_latency=measured, timing_seconds=timing_seconds, progress=progress)
        manifest = _manifest(prepared, checked.artifact.as_dict(), report, target.name, preprocessing)
        if data.is_classifier:
            atomic.write_text(tmp / "labels.txt", "\n".join(data.labels) + "\n")
        samples = data.test.x[:SAMPLES]
        atomic.write_text(
            tmp / "samples.json",
            samples_json(samples, data.test.y, checked.runner(samples), data.heads, "NCHW"),
        )
        atomic.write_text(tmp / "README.md", app_readme(manifest, prepared.backend()))
        atomic.write_text(tmp / "report.html", report_html(manifest, report, run.metrics))
        bundle.finish(tmp, manifest)
        if push is not None:
            problems = bundle.verify(tmp, prepared.manager).problems  # only a bundle that verifies goes to a device
            if problems:
                raise ArtifactError(f"the bundle failed its own verification: {'; '.join(problems)}", where=str(tmp))
            for path in sorted(tmp.iterdir()):
                if path != checked.artifact.path:
                    push.push(path, f"{remote}/{path.name}")
        zip_path = target.with_name(target.name + ".zip")
        bundle.write_zip(tmp, zip_path)
    if push is not None:
        push.replace_folder(remote, f"{REMOTE_ROOT}/{target.name}")
    return Deployment(target, zip_path, bundle.read_manifest(target), report)


def _manifest(
    prepared: Prepared, artifact: dict[str, Any], report: ProfileReport, name: str, preprocessing: dict[str, Any]
) -> Manifest:
    """The bundle's manifest without its file list (:func:`bundle.finish` adds it)."""
    run, profile, options, data = prepared.run, prepared.profile, prepared.options, prepared.data
    fields = {
        "name": name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": {
            "file": Path(artifact["path"]).name,
            "backend": prepared.backend.name,
            "precision": options.precision,
            "threads": profile.runtime.threads,
            "host_threads": options.threads,
            "batch_size": options.batch_size,
            "input_layout": options.input_layout,
            "parameters": prepared.spec.parameters,
        },
        "inputs": artifact["inputs"],
        "outputs": artifact["outputs"],
        "preprocessing": preprocessing,
        "labels": data.labels,
        "heads": [h.to_dict() for h in data.heads],
        "samples": {"file": "samples.json", "layout": "NCHW", "count": min(SAMPLES, len(data.test))},
        "metrics": report.as_dict(),
        "budgets": [b.as_dict() for b in report.budgets],
        "device": {"name": profile.name, "sha256": profile.sha256(), "profile": profile.model_dump(mode="json")},
        "host": bundle.host(),
        "versions": bundle.versions(prepared.backend.package_versions()),
        "provenance": {
            "run": run.name,
            "recipe": run.resolved.to_dict(),
            "seed": run.resolved.recipe.seed,
            "dataset_fingerprint": run.metrics.dataset.fingerprint,
            "student_weights_sha256": atomic.sha256_file(run.path / "student" / WEIGHTS),
        },
    }
    return Manifest.current(**fields)

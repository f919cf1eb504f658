"""What the core does with a backend comes from what the backend declares: the README's loading section
(or a generic one naming no runtime), the bench's teacher and baseline rows, and the backend a
conformance check exports with, which the check names."""

from __future__ import annotations

import dataclasses

import pytest

import edgepeft
from edgepeft.api.device import load_profile
from edgepeft.artifacts.run_folder import open_run
from edgepeft.authoring.conformance import check_plugin
from edgepeft.benchmark.bench import candidates
from edgepeft.host.manager import default_manager
from edgepeft.ship.deploy import deploy, prepare

OTHER_RUNTIMES = ("onnxruntime", "Interpreter", "Kotlin", "torch.export.load")


class _Program(edgepeft.TorchProgramBackend):
    name = "inner-program"


class XmlRuntime(edgepeft.Backend):
    """A third-party runtime whose file is ``model.xml`` (here a torch.export program under that name), and
    which declares no README snippet."""

    name = "xml-runtime"
    requires = ("torch",)

    def export(self, model, example, directory, options):
        artifact = _Program().export(model, example, directory, options)
        xml = artifact.path.rename(directory / "model.xml")
        return dataclasses.replace(artifact, backend=self.name, path=xml)

    def load(self, artifact, options):
        return _Program().load(artifact, options)


class SnippetRuntime(edgepeft.TorchProgramBackend):
    """Declares its own loading section, and a teacher and a baseline row for the bench, ranked first."""

    name = "snippet-runtime"
    teacher_precisions = ("fp32",)
    baseline_precisions = ("fp32", "int4")
    bench_rank = 100

    def app_snippet(self, facts: edgepeft.BundleFacts) -> str | None:
        opened = f"snippetrt.open('{facts.model_file}', threads={facts.threads})"
        return f"## Load it (SnippetRT)\n```\n{opened}.feed('{facts.inputs[0].name}')\n```"


class _Plugin:
    @edgepeft.hookimpl
    def edgepeft_register_backends(self, register):
        register(XmlRuntime)
        register(SnippetRuntime)


@pytest.fixture(scope="module")
def run_folder(digits_run):
    return digits_run


@pytest.fixture
def plugged(manager, register_plugin):
    register_plugin(_Plugin(), "capabilities")
    return manager


def _readme(manager, run_folder, backend: str, out) -> str:
    run = open_run(run_folder, manager)
    profile = load_profile("x86-server", manager.devices)
    prepared = prepare(run, profile, manager, backend=manager.backends.get(backend), precision="fp32")
    deployment = deploy(prepared, out, timing_seconds=0.1)
    assert deployment.manifest.model.backend == backend
    return (deployment.folder / "README.md").read_text()


def test_a_declared_snippet_is_the_readme_loading_section(plugged, run_folder, tmp_path):
    readme = _readme(plugged, run_folder, "snippet-runtime", tmp_path)
    assert "## Load it (SnippetRT)" in readme
    assert "snippetrt.open('model.pt2', threads=2).feed('input')" in readme  # x86-server runs 2 threads
    assert not [word for word in OTHER_RUNTIMES if word in readme]


def test_a_backend_without_a_snippet_gets_the_generic_section_and_no_other_runtime(plugged, run_folder, tmp_path):
    readme = _readme(plugged, run_folder, "xml-runtime", tmp_path)
    assert "## Load it\n" in readme and "Open `model.xml` with the runtime of the `xml-runtime` backend" in readme
    assert "1. build `input` as described under Input" in readme and "3. read `logits`" in readme
    assert not [word for word in OTHER_RUNTIMES if word in readme], readme


def test_bench_teacher_and_baseline_rows_come_from_declared_precisions(plugged):
    found, skipped = candidates(plugged)
    roles = [(c.label, c.role) for c in found if c.role != "student"]
    teachers = [label for label, role in roles if role == "teacher"]
    baselines = [label for label, role in roles if role == "baseline"]
    assert teachers[0] == "teacher snippet-runtime fp32", "the highest bench_rank comes first: the reference"
    assert baselines[0] == "teacher snippet-runtime fp32"
    assert "teacher xml-runtime fp32" not in dict(roles), "a backend that declares no rows gets none"
    assert "teacher snippet-runtime int4: does not export int4" in skipped
    declared = {
        (entry.name, precision)
        for entry in plugged.backends
        for precision in entry.value.baseline_precisions
        if not entry.value.unavailable_reason() and precision in entry.value.precisions
    }
    assert {tuple(label.split()[1:]) for label in baselines} == declared


def test_a_conformance_check_says_which_task_and_backend_it_used(monkeypatch):
    monkeypatch.setenv("EDGEPEFT_DISABLE_PLUGINS", "onnx,tflite")
    manager = default_manager()
    manager.register(_Plugin(), "capabilities")
    results = {r.name: r for r in check_plugin("distill", manager)}
    distill = results["distill"]
    assert distill.status == "pass", distill.detail
    # the first available backend that converts for another runtime, preferred over a torch.export program
    assert distill.detail.startswith("on digits with cnn, exported with xml-runtime;"), distill.detail
    assert "xml-runtime fp32: agreement" in distill.detail

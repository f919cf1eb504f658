"""The files ``edgepeft plugin new`` writes, as :class:`string.Template` text.

Placeholders: ``$name`` (the plugin's name), ``$module`` (``name`` with ``_`` for ``-``), ``$class_name``
and ``$options_name`` (Python class names), plus, in the shared files, the per-kind text of :data:`KINDS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class KindTemplate:
    """What differs between kinds: the plugin module, its tests, and their lines in pyproject.toml and README."""

    summary: str
    """One line: the package's description, and the README's opening."""
    plugin: str
    """``src/edgepeft_<module>/__init__.py``."""
    tests: str
    """``tests/test_<module>.py``."""
    usage: str
    """README: how a user puts what the plugin registers to work."""
    test_requirement: str
    """The edgepeft requirement (with extras) the generated tests need."""
    dependencies: str = '"edgepeft"'
    """The package's run-time requirements, as TOML list items."""
    package_files: dict[str, str] = field(default_factory=dict)
    """Data files inside the package, by path relative to it; pyproject.toml ships them as package data."""


PYPROJECT = """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "edgepeft-$name"
version = "0.1.0"
description = "An edgepeft $kind plugin: $summary."
readme = "README.md"
requires-python = ">=3.11"
dependencies = [$dependencies]

[project.optional-dependencies]
test = ["$test_requirement", "pytest>=8"]

# edgepeft finds plugins through this entry-point group; the name ("$name") is what
# `edgepeft plugins check` and EDGEPEFT_DISABLE_PLUGINS refer to.
[project.entry-points.edgepeft]
$name = "edgepeft_$module"

[tool.setuptools.packages.find]
where = ["src"]
$package_data
[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.ruff]
line-length = 120
"""

PACKAGE_DATA = """
[tool.setuptools.package-data]
edgepeft_$module = [$patterns]
"""

README = """\
# edgepeft-$name

An edgepeft $kind plugin: $summary.

## Install and check

- `pip install -e .` registers the plugin `$name` through its entry point;
- `edgepeft plugins` lists it, from the distribution `edgepeft-$name`;
- `edgepeft plugins check $name` runs edgepeft's conformance checks on it (a device profile is validated;
  anything else is exercised on a tiny real task: scikit-learn's digits);
- `pip install -e '.[test]'` adds pytest and what the tests need; `pytest` runs them (`tests/`).

Switch the plugin off without uninstalling it: `EDGEPEFT_DISABLE_PLUGINS=$name edgepeft ...`.

## Use it

$usage

## Make it yours

The plugin is `src/edgepeft_$module/__init__.py`; its docstring says what to change, and
`tests/test_$module.py` uses edgepeft's plugin-testing fixtures and helpers (`edgepeft.testing`).
edgepeft's `docs/hooks.md` describes every hook a plugin can implement and what it receives.
"""

CONFTEST = '''\
"""edgepeft's plugin-testing fixtures: ``manager``, ``register_plugin``, ``tiny_data`` and ``tiny_model``."""

pytest_plugins = ["edgepeft.testing"]
'''

TECHNIQUE_PLUGIN = '''\
"""Technique plugin ``$name``: label smoothing, as a loss term.

Each training target keeps ``1 - smoothing`` on its true class and spreads ``smoothing`` evenly over all
classes, which keeps the student from growing over-confident. The total equals PyTorch's
``cross_entropy(logits, labels, label_smoothing=smoothing)``.

What to change: the options (the recipe's keys, validated by pydantic) and :meth:`loss_terms`. A
technique can also prepare before the first step (``setup(ctx)``, e.g. cache teacher outputs) or change
the trained student (``compress(model, ctx)``: prune, factorize, quantize). A ``compress`` that changes
the architecture returns ``edgepeft.Compressed(model, record=...)`` and implements the classmethod
``rebuild(model, record)``, so that a saved student is rebuilt before its weights load. See docs/hooks.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import edgepeft
from pydantic import Field

if TYPE_CHECKING:
    import torch


class $options_name(edgepeft.StrictModel):
    smoothing: float = Field(0.1, ge=0, lt=1, description="Share of each target spread evenly over all classes.")


class $class_name(edgepeft.Technique):
    name = "$name"
    description = "label smoothing: each target spreads `smoothing` evenly over all classes"
    Options = $options_name
    options: $options_name

    def loss_terms(
        self, terms: dict[str, torch.Tensor], batch: edgepeft.Batch, logits: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        import torch.nn.functional as F

        smoothing = self.options.smoothing
        uniform = -F.log_softmax(logits, dim=1).mean()
        return {**terms, "task": terms["task"] * (1 - smoothing), "smoothing": uniform * smoothing}


@edgepeft.hookimpl
def edgepeft_register_techniques(register: edgepeft.Registrar) -> None:
    register($class_name)
'''

TECHNIQUE_TESTS = '''\
"""The ``$name`` technique: its loss term, and the parity gate after training with it."""

import edgepeft
import pytest
import torch
import torch.nn.functional as F
from edgepeft.testing import technique_round_trip

from edgepeft_$module import $class_name


def test_plugin_is_found_through_its_entry_point(manager):
    assert manager.info["$name"].distribution == "edgepeft-$name"
    assert manager.techniques.entry("$name").plugin == "$name"


def _loss_terms(smoothing, logits, labels):
    technique = $class_name($class_name.Options(smoothing=smoothing))
    batch = edgepeft.Batch(x=torch.zeros(len(labels), 1), y=labels, index=torch.arange(len(labels)))
    return technique.loss_terms({"task": F.cross_entropy(logits, labels)}, batch, logits)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_loss_is_cross_entropy_with_smoothed_labels(smoothing):
    logits, labels = torch.tensor([[4.0, 1.0, -2.0], [0.5, 0.0, 3.0]]), torch.tensor([0, 1])
    terms = _loss_terms(smoothing, logits, labels)
    assert set(terms) == {"task", "smoothing"}
    expected = F.cross_entropy(logits, labels, label_smoothing=smoothing)
    assert sum(terms.values()).item() == pytest.approx(expected.item())


def test_smoothing_raises_the_loss_of_a_confident_prediction():
    logits, labels = torch.tensor([[6.0, 0.0, 0.0]]), torch.tensor([0])
    assert sum(_loss_terms(0.1, logits, labels).values()) > sum(_loss_terms(0.0, logits, labels).values())


def test_trained_student_passes_the_parity_gate(manager, tmp_path):
    trip = technique_round_trip($class_name($class_name.Options()), manager, tmp_path)
    assert trip.parity.top1_agreement >= 0.99
    assert trip.parameters_after == trip.parameters_before  # a loss term leaves the model as it is
'''

TECHNIQUE_USAGE = """\
Add it to a recipe's techniques; its options are keys beside `name`:

```toml
[[techniques]]
name = "$name"
smoothing = 0.1
```"""

BACKEND_PLUGIN = '''\
"""Backend plugin ``$name``: a ``torch.export`` program (.pt2), run by PyTorch on the CPU.

As generated it works like edgepeft's built-in ``cpu`` backend, so it passes the parity gate at once. To
target another runtime, set ``requires`` (the runtime's import names: while one is missing, the backend
is listed as unavailable with ``install_hint``) and ``precisions``, and replace the bodies of
:meth:`export` (write the runtime's file) and :meth:`load` (run it). A backend that does not start from a
torch.export program subclasses ``edgepeft.Backend`` instead. See docs/hooks.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import edgepeft

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import torch


class $class_name(edgepeft.TorchProgramBackend):
    name = "$name"
    description = "torch.export program (.pt2) run by PyTorch on the CPU"

    def export(
        self, model: torch.nn.Module, example: np.ndarray, directory: Path, options: edgepeft.ExportOptions
    ) -> edgepeft.Artifact:
        # Another runtime: convert `model` (in eval mode, batch dimension dynamic) to its file in `directory`
        # and return an edgepeft.Artifact naming the file and its inputs' and outputs' TensorSpecs.
        return super().export(model, example, directory, options)

    def load(self, artifact: edgepeft.Artifact, options: edgepeft.ExportOptions) -> edgepeft.Runner:
        # Another runtime: open `artifact.path` with it and return a function that runs a float32 numpy
        # batch (any batch size, in the data set's layout) and returns float32 outputs.
        return super().load(artifact, options)


@edgepeft.hookimpl
def edgepeft_register_backends(register: edgepeft.Registrar) -> None:
    register($class_name)
'''

BACKEND_TESTS = '''\
"""The ``$name`` backend: a trained model exported, run through the parity gate, and timed."""

from edgepeft.testing import backend_round_trip

from edgepeft_$module import $class_name


def test_plugin_is_found_through_its_entry_point(manager):
    assert manager.info["$name"].distribution == "edgepeft-$name"
    assert manager.backends.entry("$name").plugin == "$name"
    assert $class_name.unavailable_reason() is None


def test_round_trip_passes_the_parity_gate_and_is_timed(manager, tmp_path):
    trip = backend_round_trip($class_name(), manager, tmp_path)
    assert trip.artifact.backend == "$name" and trip.artifact.path.is_file()
    assert trip.parity.top1_agreement >= 0.999
    assert 0 < trip.latency.p50_ms <= trip.latency.p95_ms
'''

BACKEND_USAGE = """\
Name it in a device profile's `[runtime] backends` (most preferred first), or export a trained run
with it: `edgepeft export runs/<run> --backend $name`."""

DATASET_PLUGIN = '''\
"""Data set plugin ``$name``: scikit-learn's iris flowers (150 rows, 4 measurements, 3 species).

What to change: read your data in :meth:`load` and return float32 inputs (batch first), integer labels
``0..classes-1`` and the class names. Keep the split seeded (``edgepeft.stratified_split``) so that two
runs agree, and say in ``preprocessing`` how a raw input becomes ``x``: it travels into every deployed
bundle. The options are the recipe's ``[data.options]`` keys. See docs/hooks.md.
"""

from __future__ import annotations

import edgepeft
import numpy as np
from pydantic import Field

SCALE = 1 / 8
"""Brings the measurements (centimetres, at most 7.9) into 0..1."""


class $options_name(edgepeft.StrictModel):
    validation_fraction: float = Field(0.2, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)


class $class_name(edgepeft.Dataset):
    name = "$name"
    description = "scikit-learn's iris flowers (150 rows, 4 measurements, 3 species); stratified seeded split"
    Options = $options_name
    requires = ("sklearn",)
    install_hint = "pip install scikit-learn"

    def load(self, options: $options_name, seed: int) -> edgepeft.TaskData:
        from sklearn.datasets import load_iris

        bunch = load_iris()
        x = bunch.data.astype(np.float32) * np.float32(SCALE)
        y = bunch.target.astype(np.int64)
        train, val, test = edgepeft.stratified_split(y, (options.validation_fraction, options.test_fraction), seed)
        return edgepeft.TaskData(
            name=self.name,
            train=edgepeft.Split(x[train], y[train]),
            validation=edgepeft.Split(x[val], y[val]),
            test=edgepeft.Split(x[test], y[test]),
            labels=[str(label) for label in bunch.target_names],
            preprocessing={
                "input": "sepal length, sepal width, petal length and petal width, in centimetres",
                "scale": SCALE,
                "offset": 0.0,
                "shape": [4],
            },
        )


@edgepeft.hookimpl
def edgepeft_register_datasets(register: edgepeft.Registrar) -> None:
    register($class_name)
'''

DATASET_TESTS = '''\
"""The ``$name`` data set: consistent splits, every class in each, and seeded splitting."""

import numpy as np
from edgepeft.testing import check_dataset

from edgepeft_$module import $class_name


def test_plugin_is_found_through_its_entry_point(manager):
    assert manager.info["$name"].distribution == "edgepeft-$name"
    assert manager.datasets.entry("$name").plugin == "$name"


def test_splits_have_consistent_shapes_and_labels():
    data = check_dataset($class_name)
    assert data.input_shape == (4,) and data.num_classes == 3
    assert len(data.train) + len(data.validation) + len(data.test) == 150
    for split in (data.train, data.validation, data.test):
        assert set(np.unique(split.y)) == {0, 1, 2}  # stratified: every class in every split


def test_same_seed_same_split_other_seed_other_split():
    dataset, options = $class_name(), $class_name.Options()
    first, again, other = (dataset.load(options, seed) for seed in (0, 0, 1))
    assert first.fingerprint() == again.fingerprint() != other.fingerprint()
'''

DATASET_USAGE = """\
Name it in a recipe's `[data]` section; its options go under `[data.options]`:

```toml
[data]
dataset = "$name"

[data.options]
validation_fraction = 0.2
test_fraction = 0.2
```"""

DEVICE_PLUGIN = '''\
"""Device plugin ``$name``: registers every device profile in ``profiles/``.

What to change: ``profiles/$name.toml`` (a profile's name is its file's stem). It extends edgepeft's
built-in ``raspberry-pi-5`` profile and sets its own budgets; every key it leaves out is inherited. Add a
``.toml`` file to the folder for each further device. ``edgepeft devices show $name`` prints the resolved
profile; edgepeft's docs/devices.md describes every key.
"""

from pathlib import Path

import edgepeft

PROFILES = Path(__file__).parent / "profiles"


@edgepeft.hookimpl
def edgepeft_register_devices(register: edgepeft.Registrar) -> None:
    register(PROFILES)
'''

DEVICE_PROFILE = """\
# Inherits every key of the built-in profile named by `extends`; the keys below override it.
extends = "raspberry-pi-5"
description = "$name: a Raspberry Pi 5 with tighter budgets (say here what the device is)"

[budgets]
batch_size = 1
max_size_mb = 20
p95_latency_ms = 50
peak_memory_mb = 512
min_accuracy_retention = 0.95
"""

DEVICE_TESTS = '''\
"""The ``$name`` device profile: it validates, and carries the budgets its file writes."""

import tomllib

from edgepeft.testing import load_profile


def test_plugin_is_found_through_its_entry_point(manager):
    assert manager.info["$name"].distribution == "edgepeft-$name"
    assert manager.devices.entry("$name").plugin == "$name"


def test_profile_loads_with_the_budgets_it_writes(manager):
    profile = load_profile("$name", manager.devices)
    written = tomllib.loads(manager.devices.get("$name").read_text())
    assert profile.extends == written["extends"]
    assert profile.budgets.model_dump(include=set(written["budgets"])) == written["budgets"]
'''

DEVICE_USAGE = """\
`edgepeft devices show $name` prints the profile with everything it inherits; deploy a trained run
for it with `edgepeft deploy runs/<run> --device $name`."""

KINDS: dict[str, KindTemplate] = {
    "technique": KindTemplate(
        summary="label smoothing as a loss term",
        plugin=TECHNIQUE_PLUGIN,
        tests=TECHNIQUE_TESTS,
        usage=TECHNIQUE_USAGE,
        test_requirement="edgepeft[data,onnx]",
    ),
    "backend": KindTemplate(
        summary="a torch.export program run by PyTorch on the CPU, ready to point at another runtime",
        plugin=BACKEND_PLUGIN,
        tests=BACKEND_TESTS,
        usage=BACKEND_USAGE,
        test_requirement="edgepeft[data]",
    ),
    "dataset": KindTemplate(
        summary="scikit-learn's iris flowers, split with a seed",
        plugin=DATASET_PLUGIN,
        tests=DATASET_TESTS,
        usage=DATASET_USAGE,
        test_requirement="edgepeft[data]",
        dependencies='"edgepeft", "scikit-learn>=1.3"',
    ),
    "device": KindTemplate(
        summary="a device profile extending the built-in raspberry-pi-5 with its own budgets",
        plugin=DEVICE_PLUGIN,
        tests=DEVICE_TESTS,
        usage=DEVICE_USAGE,
        test_requirement="edgepeft",
        package_files={"profiles/$name.toml": DEVICE_PROFILE},
    ),
}

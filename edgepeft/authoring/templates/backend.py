"""The backend kind: a torch.export program run by PyTorch, ready to point at another runtime."""

from edgepeft.authoring.templates.kind import KindTemplate

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


TEMPLATE = KindTemplate(
    summary="a torch.export program run by PyTorch on the CPU, ready to point at another runtime",
    plugin=BACKEND_PLUGIN,
    tests=BACKEND_TESTS,
    usage=BACKEND_USAGE,
    test_requirement="edgepeft[data]",
)

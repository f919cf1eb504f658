"""The parity gate: an export that answers differently on held-out data fails and writes nothing."""

from __future__ import annotations

import numpy as np
import pytest

import edgepeft
from edgepeft.deploy import deploy
from edgepeft.devices import Parity, load_profile
from edgepeft.export import compare
from edgepeft.recipe import resolve
from edgepeft.run import Trainer, open_run
from edgepeft.testing import tiny_recipe


def test_compare_counts_agreement_and_difference():
    ref = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.2, 0.1]], dtype=np.float32)
    out = ref.copy()
    out[3] = [0.1, 0.2]
    report = compare(ref, out, Parity(min_top1_agreement=0.9, max_abs_diff=0.5))
    assert report.top1_agreement == 0.75 and report.max_abs_diff == pytest.approx(0.1)
    assert not report.passed
    assert compare(ref, ref, Parity()).passed


class DriftingBackend(edgepeft.Backend):
    """A runtime that silently returns wrong answers, as a broken converter or kernel would."""

    name = "drifting"

    def export(self, model, example, directory, options):
        import torch

        path = directory / "model.pt"
        torch.save(model.state_dict(), path)
        self.model = model
        return edgepeft.Artifact(self.name, path, [edgepeft.TensorSpec("input", ["batch", 1, 8, 8])], [])

    def load(self, artifact, options):
        def run(x):
            out = edgepeft.predict(self.model, x)
            return out[:, ::-1].copy()  # classes come out in the wrong order

        return run


def test_parity_failure_fails_deploy_and_leaves_no_bundle(tmp_path, manager, register_plugin):
    class Plugin:
        @edgepeft.hookimpl
        def edgepeft_register_backends(self, register):
            register(DriftingBackend)

    register_plugin(Plugin(), "drift")
    recipe = tiny_recipe(name="gate")
    recipe["teacher"]["epochs"] = recipe["student"]["epochs"] = 1
    Trainer(resolve(recipe, None, "gate", manager), manager, tmp_path / "runs").run()
    run = open_run(tmp_path / "runs" / "gate", manager)
    profile = load_profile("x86-server", manager.devices)
    with pytest.raises(edgepeft.ParityError, match=r"drifting export disagrees .* top-1 agreement 0\.\d+"):
        deploy(run, profile, manager, tmp_path / "dist", backend="drifting")
    assert not (tmp_path / "dist").exists() or list((tmp_path / "dist").iterdir()) == []

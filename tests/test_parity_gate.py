"""The parity gate: an export that answers differently on held-out data fails, writes nothing, and the
culprit search names the layer that broke."""

from __future__ import annotations

import numpy as np
import pytest

import edgepeft
from edgepeft.api.device import ParityThresholds, load_profile, parity_thresholds
from edgepeft.artifacts.run_folder import open_run
from edgepeft.host.manager import default_manager
from edgepeft.ship.deploy import deploy, prepare
from edgepeft.ship.parity import compare, find_culprit


def test_compare_reports_agreement_differences_and_accuracy():
    ref = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.2, 0.1]], dtype=np.float32)
    out = ref.copy()
    out[3] = [0.1, 0.2]
    labels = np.array([0, 1, 0, 0])
    report = compare(ref, out, labels, "fp32", ParityThresholds(min_top1_agreement=0.9, max_abs_diff=0.5))
    assert report.top1_agreement == 0.75 and report.max_abs_diff == pytest.approx(0.1)
    assert report.mean_abs_diff == pytest.approx(0.2 / 8)
    assert report.reference_score == 1.0 and report.score == 0.75
    assert report.failures == ["top-1 agreement 0.7500 < 0.9"]
    assert compare(ref, ref, labels, "fp32", parity_thresholds({}, "fp32")).passed


def test_thresholds_depend_on_precision_and_can_be_overridden():
    assert parity_thresholds({}, "fp32").min_top1_agreement == 0.999
    assert parity_thresholds({}, "int8").min_top1_agreement == 0.99
    assert parity_thresholds({}, "int8").max_abs_diff is None
    override = {"int8": ParityThresholds(min_top1_agreement=0.95)}
    merged = parity_thresholds(override, "int8")
    assert merged.min_top1_agreement == 0.95 and merged.max_metric_drop == 0.01


def test_find_culprit_names_the_first_jump_and_tolerates_layouts():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(4, 3, 5, 5)), rng.normal(size=(4, 8)), rng.normal(size=(4, 2))
    reference = {"conv": ("Conv2d", a), "fc": ("Linear", b), "out": ("Linear", c)}
    exported = {"conv": a.transpose(0, 2, 3, 1) * (1 + 1e-6), "fc": -b, "out": c + 3}
    report = find_culprit(reference, exported)
    assert [layer.module for layer in report.layers] == ["conv", "fc", "out"]
    assert report.culprit is not None and report.culprit.module == "fc"
    assert "'fc' (Linear)" in report.describe()
    gradual = find_culprit(reference, {"conv": a * 1.02, "fc": b * 1.04, "out": c * 1.06})
    assert gradual.culprit is None and "gradually" in gradual.describe()


@pytest.fixture(scope="module")
def run(digits_run):
    return open_run(digits_run, default_manager())


def _corrupt(array: np.ndarray) -> np.ndarray:
    """A wrong constant, as a faulty converter pass would leave: half the rows of a weight negated."""
    broken = array.copy()
    broken[: len(broken) // 2] *= -1
    return broken


def _broken_onnx_backend(layer: str):
    import onnx
    from edgepeft_onnx.backend import ONNXBackend

    class BrokenONNX(ONNXBackend):
        name = "broken-onnx"

        def export(self, model, example, directory, options):
            artifact = super().export(model, example, directory, options)
            graph = onnx.load(str(artifact.path))
            weight = next(i for i in graph.graph.initializer if i.name == f"{layer}.weight")
            weight.CopyFrom(onnx.numpy_helper.from_array(_corrupt(onnx.numpy_helper.to_array(weight)), weight.name))
            onnx.save(graph, str(artifact.path))
            return artifact

    return BrokenONNX


def _broken_tflite_backend(layer: str):
    from ai_edge_litert import schema_py_generated as schema
    from edgepeft_tflite.backend import TFLiteBackend
    from edgepeft_tflite.runtime import module_path

    class BrokenTFLite(TFLiteBackend):
        name = "broken-tflite"

        def export(self, model, example, directory, options):
            import flatbuffers

            artifact = super().export(model, example, directory, options)
            tree = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(artifact.path.read_bytes(), 0))
            tensor = next(
                t
                for t in tree.subgraphs[0].tensors
                if module_path(t.name.decode()) == "1"
                and len(t.shape) == 2
                and tree.buffers[t.buffer].data is not None
            )
            buffer = tree.buffers[tensor.buffer]
            values = np.frombuffer(bytes(bytearray(buffer.data)), dtype=np.float32).reshape(tuple(tensor.shape))
            buffer.data = np.frombuffer(_corrupt(values).tobytes(), dtype=np.uint8)
            builder = flatbuffers.Builder(1024)
            builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
            artifact.path.write_bytes(bytes(builder.Output()))
            return artifact

    return BrokenTFLite


@pytest.mark.parametrize(
    ("make_backend", "layer", "named"),
    [
        (_broken_onnx_backend, "1", "'1' (Linear)"),
        (_broken_tflite_backend, "1", "'1' (Linear)"),
        (_broken_onnx_backend, "3", "'3' (Linear)"),
    ],
    ids=["onnx-first-linear", "tflite-first-linear", "onnx-last-linear"],
)
def test_broken_export_fails_the_gate_and_the_culprit_is_named(
    run, tmp_path, manager, register_plugin, make_backend, layer, named
):
    backend = make_backend(layer)

    class Plugin:
        @edgepeft.hookimpl
        def edgepeft_register_backends(self, register):
            register(backend)

    register_plugin(Plugin(), "broken")
    profile = load_profile("x86-server", manager.devices)
    with pytest.raises(edgepeft.ParityError) as error:
        deploy(prepare(run, profile, manager, backend.name, "fp32"), tmp_path / "dist")
    message = error.value.message
    assert "top-1 agreement" in message
    assert f"the first layer whose output diverges is {named}" in message, message
    assert not (tmp_path / "dist").exists() or not any((tmp_path / "dist").iterdir())


class DriftingBackend(edgepeft.Backend):
    """A runtime that silently returns wrong answers and cannot show its layers."""

    name = "drifting"

    def export(self, model, example, directory, options):
        path = directory / "model.bin"
        path.write_bytes(b"weights")
        self.model = model
        return edgepeft.Artifact(self.name, path, [edgepeft.TensorSpec("input", ["batch", 1, 8, 8])], [])

    def load(self, artifact, options):
        return lambda x: edgepeft.predict(self.model, x)[:, ::-1].copy()  # classes in the wrong order


def test_a_backend_without_layer_access_still_fails_the_gate(run, tmp_path, manager, register_plugin):
    class Plugin:
        @edgepeft.hookimpl
        def edgepeft_register_backends(self, register):
            register(DriftingBackend)

    register_plugin(Plugin(), "drift")
    profile = load_profile("x86-server", manager.devices)
    with pytest.raises(edgepeft.ParityError, match=r"drifting fp32 export .* cannot expose layer outputs"):
        deploy(prepare(run, profile, manager, "drifting"), tmp_path / "dist")

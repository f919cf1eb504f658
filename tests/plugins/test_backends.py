"""cpu and onnx backends: round trip of a real CNN, parity on real digits, dynamic batch."""

from __future__ import annotations

import numpy as np
import pytest

import edgepeft
from edgepeft.devices import Parity
from edgepeft.export import compare, run_batched


@pytest.mark.parametrize("backend", ["cpu", "onnx"])
def test_round_trip_matches_pytorch_on_real_inputs(manager, tmp_path, backend):
    data_cls = manager.datasets.get("digits")
    data = data_cls().load(data_cls.Options(), 0)
    cnn = manager.models.get("cnn")
    model = cnn().build(cnn.Options(channels=[8, 16], hidden=16), data.input_shape, 10).eval()
    cls = manager.backends.get(backend)
    assert cls.unavailable_reason() is None
    options = edgepeft.ExportOptions(threads=1)
    artifact = cls().export(model, data.test.x[:2], tmp_path, options)
    assert artifact.path.is_file() and artifact.size_bytes > 0
    assert artifact.inputs[0].shape == ["batch", 1, 8, 8]
    runner = cls().load(artifact, options)
    reference = edgepeft.predict(model, data.test.x)
    outputs = run_batched(runner, data.test.x, batch_size=97)  # odd batch sizes: the batch dim is dynamic
    assert outputs.shape == (len(data.test), 10) and outputs.dtype == np.float32
    report = compare(reference, outputs, Parity())
    assert report.passed and report.top1_agreement == 1.0 and report.max_abs_diff < 1e-4


def test_onnx_rejects_a_corrupt_file(manager, tmp_path):
    cls = manager.backends.get("onnx")
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    artifact = edgepeft.Artifact("onnx", bad, [], [])
    with pytest.raises(edgepeft.ExportError, match="onnxruntime cannot load the model"):
        cls().load(artifact, edgepeft.ExportOptions())

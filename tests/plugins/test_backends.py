"""Every backend and precision on a trained digits CNN: the parity gate on the real held-out split."""

from __future__ import annotations

import numpy as np
import pytest

import edgepeft
from edgepeft.api.context import TrainContext
from edgepeft.api.device import parity_thresholds
from edgepeft.host.manager import default_manager
from edgepeft.ship.export import calibration_inputs, export_checked, run_batched
from edgepeft.train.loop import fit

CASES = [
    ("cpu", "fp32", "NCHW"),
    ("onnx", "fp32", "NCHW"),
    ("onnx", "int8-dynamic", "NCHW"),
    ("onnx", "int8", "NCHW"),
    ("tflite", "fp32", "NCHW"),
    ("tflite", "fp32", "NHWC"),
    ("tflite", "int8-dynamic", "NCHW"),
    ("tflite", "int8", "NHWC"),
]


@pytest.fixture(scope="module")
def trained():
    manager = default_manager()
    data_cls, cnn = manager.datasets.get("digits"), manager.models.get("cnn")
    data = data_cls().load(data_cls.Options(), 0)
    import torch

    torch.manual_seed(0)
    model = cnn().build(cnn.Options(channels=[8, 16], hidden=32), data.input_shape, 10)
    fit(model, TrainContext(data=data, teacher=None, batch_size=64, seed=0), phase="student", epochs=8, lr=0.01)
    return manager, data, model


@pytest.fixture(scope="module")
def exports(trained, tmp_path_factory):
    """Each case exported once, through the parity gate (which raises on failure)."""
    manager, data, model = trained
    done = {}
    for backend, precision, layout in CASES:
        options = edgepeft.ExportOptions(
            precision=precision,
            threads=1,
            input_layout=layout,
            batch_size=16,
            calibration=calibration_inputs(data.train.x, seed=0),
        )
        folder = tmp_path_factory.mktemp(f"{backend}-{precision}-{layout}")
        cls = manager.backends.get(backend)
        thresholds = parity_thresholds({}, precision)
        done[backend, precision, layout] = export_checked(
            model, cls(), options, (data.test.x, data.test.y), thresholds, folder
        )
    return done


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_export_passes_the_parity_gate_for_its_precision(exports, trained, case):
    _, data, _ = trained
    checked = exports[case]
    parity = checked.parity
    floor = 0.999 if case[1] == "fp32" else 0.99
    assert parity.passed and parity.top1_agreement >= floor and parity.examples == len(data.test)
    assert parity.score > 0.85
    if case[1] == "fp32":
        assert parity.max_abs_diff < 1e-4
    # any batch size works, including one that is not a multiple of a fixed-shape runtime's batch
    odd = run_batched(checked.runner, data.test.x[:37], batch_size=7)
    if case[1] == "int8-dynamic":  # activation ranges are taken per batch, so outputs shift a little
        assert (odd.argmax(1) == checked.outputs[:37].argmax(1)).mean() >= 0.97
    else:
        np.testing.assert_allclose(odd, checked.outputs[:37], rtol=1e-5, atol=1e-5)


def test_layouts_and_integer_io_are_recorded(exports):
    nhwc = exports["tflite", "fp32", "NHWC"]
    assert nhwc.artifact.inputs[0].shape == [16, 8, 8, 1]
    full_int = exports["tflite", "int8", "NHWC"]
    assert full_int.artifact.inputs[0].dtype == "int8" and full_int.artifact.outputs[0].dtype == "int8"
    assert full_int.artifact.inputs[0].quantization["scale"] > 0
    dynamic = exports["tflite", "int8-dynamic", "NCHW"]
    assert dynamic.artifact.inputs[0].dtype == "float32"
    assert exports["onnx", "fp32", "NCHW"].artifact.inputs[0].shape == ["batch", 1, 8, 8]


@pytest.mark.parametrize("backend", ["onnx", "tflite"])
def test_int8_files_are_smaller_than_fp32(exports, backend):
    fp32 = exports[backend, "fp32", "NCHW"].artifact.size_bytes
    for precision in ("int8", "int8-dynamic"):
        layout = "NHWC" if (backend, precision) == ("tflite", "int8") else "NCHW"
        assert exports[backend, precision, layout].artifact.size_bytes < 0.75 * fp32


def test_static_int8_needs_calibration_inputs(trained, tmp_path):
    manager, data, model = trained
    for backend in ("onnx", "tflite"):
        with pytest.raises(edgepeft.ConfigError, match="needs calibration inputs from the training split"):
            manager.backends.get(backend)().export(
                model, data.test.x[:4], tmp_path, edgepeft.ExportOptions(precision="int8", batch_size=4)
            )


def test_onnx_rejects_a_corrupt_file(trained, tmp_path):
    manager, _, _ = trained
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(edgepeft.ExportError, match="onnxruntime cannot load the model"):
        manager.backends.get("onnx")().load(edgepeft.Artifact("onnx", bad, [], []), edgepeft.ExportOptions())


def test_tflite_rejects_a_truncated_file(exports, tmp_path, trained):
    manager, _, _ = trained
    good = exports["tflite", "fp32", "NCHW"].artifact
    bad = tmp_path / "model.tflite"
    bad.write_bytes(good.path.read_bytes()[:1000])
    with pytest.raises(edgepeft.ExportError, match="LiteRT cannot load the model"):
        manager.backends.get("tflite")().load(
            edgepeft.Artifact("tflite", bad, good.inputs, []), edgepeft.ExportOptions()
        )


@pytest.mark.parametrize("backend", ["cpu", "onnx"])
def test_a_batch_one_profile_still_exports_a_dynamic_batch(trained, tmp_path, backend):
    manager, data, model = trained
    options = edgepeft.ExportOptions(batch_size=1)
    checked = export_checked(
        model,
        manager.backends.get(backend)(),
        options,
        (data.test.x, data.test.y),
        parity_thresholds({}, "fp32"),
        tmp_path,
    )
    assert checked.artifact.inputs[0].shape[0] == "batch"
    assert checked.runner(data.test.x[:5]).shape == (5, 10)


def test_calibration_draws_only_from_the_training_split(trained):
    _, data, _ = trained
    sample = calibration_inputs(data.train.x, seed=0)
    train_rows = {row.tobytes() for row in data.train.x}
    assert len(sample) == 256 and all(row.tobytes() in train_rows for row in sample)
    assert np.array_equal(sample, calibration_inputs(data.train.x, seed=0))


def test_cpu_backend_refuses_archives_that_would_unpickle(trained, tmp_path):
    import json
    import pickle
    import zipfile

    manager, data, model = trained
    cls = manager.backends.get("cpu")
    checked = export_checked(
        model, cls(), edgepeft.ExportOptions(), (data.test.x, data.test.y), parity_thresholds({}, "fp32"), tmp_path
    )

    def rewrite(name: str, change) -> edgepeft.Artifact:
        target = tmp_path / name
        with zipfile.ZipFile(checked.artifact.path) as src, zipfile.ZipFile(target, "w") as dst:
            for item in src.namelist():
                dst.writestr(item, change(item, src.read(item)))
        return edgepeft.Artifact("cpu", target, checked.artifact.inputs, checked.artifact.outputs)

    def pickled_weight(item: str, content: bytes) -> bytes:
        if not item.endswith("model_weights_config.json"):
            return content
        config = json.loads(content)
        next(iter(config["config"].values()))["use_pickle"] = True
        return json.dumps(config).encode()

    def hostile_inputs(item: str, content: bytes) -> bytes:
        return pickle.dumps(print) if "/sample_inputs/" in item else content  # any callable would do

    for name, change, why in (("w.pt2", pickled_weight, "pickled weights"), ("s.pt2", hostile_inputs, "sample inputs")):
        with pytest.raises(edgepeft.ExportError, match=f"holds {why}.*refused"):
            cls().load(rewrite(name, change), edgepeft.ExportOptions())

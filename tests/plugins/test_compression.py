"""The compression techniques on tiny models: prune, lowrank and quantize change shapes and parameter counts
as stated, rebuild from their records, and the compressed students still export and pass the parity gate."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch

import edgepeft
from edgepeft.api.context import TrainContext
from edgepeft.api.device import ParityThresholds, parity_thresholds
from edgepeft.api.technique import count_parameters
from edgepeft.host.manager import default_manager
from edgepeft.ship.export import calibration_inputs, export_checked
from edgepeft.train.loop import fit, score

_exports = itertools.count()


@pytest.fixture(scope="module")
def setup():
    manager = default_manager()
    data_cls, cnn = manager.datasets.get("digits"), manager.models.get("cnn")
    data = data_cls().load(data_cls.Options(), 0)
    options = cnn.Options(channels=[16, 32], hidden=64)

    def build() -> torch.nn.Module:
        return cnn().build(options, data.input_shape, 10)

    torch.manual_seed(0)
    trained = build()
    ctx = TrainContext(data=data, teacher=None, batch_size=64, seed=0)
    fit(trained, ctx, phase="student", epochs=6, lr=0.01)
    return manager, data, ctx, build, trained


def _copy(setup) -> torch.nn.Module:
    return copy.deepcopy(setup[4])


def _technique(manager, name: str, **options):
    cls = manager.techniques.get(name)
    return cls(cls.Options(**options))


def _rebuilt(manager, name, build, compressed) -> torch.nn.Module:
    model = manager.techniques.get(name).rebuild(build(), compressed.record)
    model.load_state_dict(compressed.model.state_dict())
    return model.eval()


def _export(manager, model, data, backend: str, precision: str, tmp_path, *, min_agreement: float | None = None):
    options = edgepeft.ExportOptions(
        precision=precision,
        threads=1,
        input_layout="NCHW",
        batch_size=16,
        calibration=calibration_inputs(data.train.x, seed=0),
    )
    folder = tmp_path / f"{backend}-{precision}-{next(_exports)}"
    folder.mkdir()
    thresholds = parity_thresholds({}, precision)
    if min_agreement is not None:  # measure rather than gate
        thresholds = ParityThresholds(min_top1_agreement=min_agreement, max_metric_drop=1.0)
    return export_checked(
        model, manager.backends.get(backend)(), options, (data.test.x, data.test.y), thresholds, folder
    )


def _channels(model) -> list[int]:
    return [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)] + [
        m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)
    ]


# -- prune ---------------------------------------------------------------------------------------------------


def test_structured_prune_halves_every_layer_but_the_output_and_rebuilds(setup):
    manager, data, ctx, build, _ = setup
    model = _copy(setup)
    result = _technique(manager, "prune", ratio=0.5, epochs=1).compress(model, ctx)
    assert _channels(result.model) == [8, 16, 32, 10]  # from [16, 32, 64, 10]: the 10 classes stay
    assert count_parameters(result.model) < 0.3 * count_parameters(setup[4])
    assert result.report["macs_after"] < 0.3 * result.report["macs_before"]
    rebuilt = _rebuilt(manager, "prune", build, result)
    x = torch.from_numpy(data.test.x[:32])
    assert torch.equal(rebuilt(x), result.model.eval()(x))
    assert score(result.model, data, data.test) > 0.85  # one epoch of recovery


@pytest.mark.parametrize(("goal", "limit"), [("target_parameters", 6000), ("target_macs", 60_000)])
def test_structured_prune_to_a_parameter_or_mac_target(setup, goal, limit):
    manager, _, ctx, _, _ = setup
    result = _technique(manager, "prune", epochs=0, **{goal: limit}).compress(_copy(setup), ctx)
    reached = count_parameters(result.model) if goal == "target_parameters" else result.report["macs_after"]
    assert limit * 0.8 < reached <= limit


def test_unreachable_prune_target_is_a_config_error(setup):
    manager, _, ctx, _, _ = setup
    with pytest.raises(edgepeft.ConfigError, match="cannot reach the target"):
        _technique(manager, "prune", target_parameters=10, epochs=0).compress(_copy(setup), ctx)


def test_structured_prune_at_half_the_channels_shrinks_onnx_and_tflite_files(setup, tmp_path):
    manager, data, ctx, _, _ = setup
    original = _copy(setup)
    pruned = _technique(manager, "prune", ratio=0.5, epochs=1).compress(_copy(setup), ctx).model
    for backend in ("onnx", "tflite"):
        before = _export(manager, original, data, backend, "fp32", tmp_path).artifact.size_bytes
        after = _export(manager, pruned, data, backend, "fp32", tmp_path).artifact.size_bytes
        assert after <= 0.6 * before, (backend, before, after)


def test_unstructured_prune_zeroes_weights_and_says_the_file_does_not_shrink(setup, tmp_path):
    manager, data, ctx, _, _ = setup
    result = _technique(manager, "prune", method="unstructured", ratio=0.6, epochs=1).compress(_copy(setup), ctx)
    assert count_parameters(result.model) == count_parameters(setup[4]) and result.record is None
    assert result.report["sparsity"] == pytest.approx(0.6, abs=0.01)
    assert "keeps its size" in result.report["note"]
    dense = _export(manager, setup[4], data, "onnx", "fp32", tmp_path).artifact.size_bytes
    sparse = _export(manager, result.model, data, "onnx", "fp32", tmp_path).artifact.size_bytes
    assert sparse >= 0.98 * dense  # the note is true: zeros are stored like any weight


def test_prune_keeps_depthwise_and_residual_layers_consistent(manager):
    mobilenet = manager.models.get("mobilenet-v2")
    options = mobilenet.Options(pretrained=False, width_mult=0.35)
    model = mobilenet().build(options, (1, 28, 28), 10).eval()
    x = torch.randn(4, 1, 28, 28)
    prune = _technique(manager, "prune", ratio=0.4, epochs=0)
    ctx = TrainContext(data=_images(x), teacher=None, batch_size=4, seed=0)
    result = prune.compress(model, ctx)
    assert result.model(x).shape == (4, 10)
    for module in result.model.modules():
        if isinstance(module, torch.nn.Conv2d) and module.groups > 1:
            assert module.groups == module.in_channels == module.out_channels  # depthwise stays depthwise
    rebuilt = manager.techniques.get("prune").rebuild(mobilenet().build(options, (1, 28, 28), 10), result.record)
    rebuilt.load_state_dict(result.model.state_dict())
    assert torch.allclose(rebuilt.eval()(x), result.model(x))


def _images(x: torch.Tensor) -> edgepeft.TaskData:
    split = edgepeft.Split(x.numpy(), np.arange(len(x)) % 2)
    return edgepeft.TaskData(name="random", train=split, validation=split, test=split, labels=["a", "b"])


# -- lowrank -------------------------------------------------------------------------------------------------


def test_lowrank_by_energy_factorizes_layers_that_save_and_rebuilds(setup):
    manager, data, ctx, build, trained = setup
    result = _technique(manager, "lowrank", energy=0.8, epochs=0).compress(_copy(setup), ctx)
    ranks = result.report["ranks"]
    assert ranks and count_parameters(result.model) < count_parameters(trained)
    for name, rank in ranks.items():
        first, second = result.model.get_submodule(name)
        original = trained.get_submodule(name)
        assert first.weight.shape[0] == rank and second.weight.shape[1] == rank
        fan_in = original.weight[0].numel()
        assert rank * (fan_in + original.weight.shape[0]) < original.weight.numel()  # it saves parameters
        # The two factors multiply back to the weight minus at most the discarded 20% of its energy.
        product = second.weight.reshape(second.weight.shape[0], rank) @ first.weight.reshape(rank, -1)
        weight = original.weight.reshape(original.weight.shape[0], -1)
        lost = ((weight - product) ** 2).sum() / (weight**2).sum()
        assert lost <= 0.2 + 1e-5
    rebuilt = _rebuilt(manager, "lowrank", build, result)
    x = torch.from_numpy(data.test.x[:32])
    assert torch.equal(rebuilt(x), result.model.eval()(x))


def test_lowrank_at_full_energy_skips_layers_where_it_would_not_save(setup):
    manager, _, ctx, _, _ = setup
    assert _technique(manager, "lowrank", energy=1.0, epochs=0).compress(_copy(setup), ctx) is None


def test_lowrank_to_a_parameter_budget(setup):
    manager, _, ctx, _, trained = setup
    result = _technique(manager, "lowrank", keep_parameters=0.5, epochs=0).compress(_copy(setup), ctx)
    assert 0.4 * count_parameters(trained) < count_parameters(result.model) <= 0.5 * count_parameters(trained)


def test_lowrank_factorized_student_exports_and_passes_parity(setup, tmp_path):
    manager, data, ctx, _, _ = setup
    model = _technique(manager, "lowrank", energy=0.9, epochs=1).compress(_copy(setup), ctx).model
    for backend in ("onnx", "tflite"):
        report = _export(manager, model, data, backend, "fp32", tmp_path).parity
        assert report.top1_agreement == 1.0


# -- quantize ------------------------------------------------------------------------------------------------


def test_quantization_aware_training_keeps_the_architecture_and_beats_post_training_int8(setup, tmp_path):
    manager, data, ctx, _, trained = setup
    result = _technique(manager, "quantize", epochs=2).compress(_copy(setup), ctx)
    assert result.record is None and result.model.state_dict().keys() == trained.state_dict().keys()
    assert 0 < result.report["fake_quantized_val_accuracy"] <= 1
    for backend in ("onnx", "tflite"):
        ptq = _export(manager, trained, data, backend, "int8", tmp_path, min_agreement=0.5).parity
        qat = _export(manager, result.model, data, backend, "int8", tmp_path, min_agreement=0.5).parity
        # Weights trained through int8 rounding lose less when the exporter quantizes them.
        assert qat.top1_agreement >= ptq.top1_agreement, (backend, qat, ptq)
        assert qat.score >= ptq.score - 1 / len(data.test), (backend, qat, ptq)


# -- options -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("prune", {}, "exactly one of ratio, target_parameters, target_macs"),
        ("prune", {"ratio": 0.5, "target_parameters": 10}, "exactly one of"),
        ("prune", {"method": "unstructured", "target_macs": 10}, "unstructured pruning takes a ratio"),
        ("lowrank", {}, "exactly one of energy"),
        ("lowrank", {"energy": 1.5}, "less than or equal to 1"),
    ],
)
def test_invalid_options_are_config_errors_with_the_recipe_line(manager, tmp_path, name, options, message):
    from edgepeft.artifacts.recipe import load_recipe
    from edgepeft.testing import tiny_recipe, write_recipe

    recipe = tiny_recipe(techniques=[{"name": "distill"}, {"name": name, **options}])
    path = write_recipe(tmp_path / "r.toml", recipe)
    with pytest.raises(edgepeft.ConfigError, match=message) as caught:
        load_recipe(path, manager)
    assert str(path) in str(caught.value)


# -- models torch-pruning sees differently ---------------------------------------------------------------


def _ctx(manager):
    data_cls = manager.datasets.get("digits")
    return TrainContext(data=data_cls().load(data_cls.Options(), 0), teacher=None, batch_size=64, seed=0)


def test_prune_rebuilds_layer_norm_group_norm_and_prelu_layers(manager, register_plugin, tmp_path):
    from torch import nn

    from edgepeft.api.model import ModelSpec
    from edgepeft.artifacts.run_folder import load_model, save_model

    class Norms(edgepeft.ModelFamily):
        name = "norms"

        def build(self, options, input_shape, num_classes):
            return nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1),
                nn.GroupNorm(4, 16),
                nn.PReLU(16),
                nn.Flatten(),
                nn.Linear(16 * 64, 32),
                nn.LayerNorm(32),
                nn.ReLU(),
                nn.Linear(32, num_classes),
            )

    class Plugin:
        @edgepeft.hookimpl
        def edgepeft_register_models(self, register):
            register(Norms)

    register_plugin(Plugin())
    torch.manual_seed(0)
    result = _technique(manager, "prune", ratio=0.5, epochs=0).compress(
        Norms().build(None, (1, 8, 8), 10), _ctx(manager)
    )
    spec = ModelSpec(
        family="norms",
        options={},
        input_shape=[1, 8, 8],
        num_classes=10,
        parameters=count_parameters(result.model),
        edits=[{"technique": "prune", "record": result.record}],
    )
    save_model(result.model, spec, tmp_path)
    reloaded, _ = load_model(tmp_path, manager)
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(reloaded(x), result.model.eval()(x))
    assert reloaded[1].num_channels == 8 and reloaded[5].normalized_shape == (16,)


def test_prune_refuses_to_change_the_number_of_classes(manager):
    from torch import nn

    fully_convolutional = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 10, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    with pytest.raises(edgepeft.ConfigError, match="changed the model's output from 10 classes"):
        _technique(manager, "prune", ratio=0.5, epochs=0).compress(fully_convolutional, _ctx(manager))


def test_prune_options_that_cannot_apply_are_config_errors(setup, manager):
    from torch import nn

    _, _, ctx, _, _ = setup
    no_batch_norm = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    with pytest.raises(edgepeft.ConfigError, match="no batch norm"):
        _technique(manager, "prune", ratio=0.5, importance="bn-scale", epochs=0).compress(no_batch_norm, ctx)
    output_only = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(edgepeft.ConfigError, match="no conv or linear layer to prune"):
        _technique(manager, "prune", method="unstructured", ratio=0.5, epochs=0).compress(output_only, ctx)


def test_a_prune_target_the_model_already_meets_changes_nothing(setup):
    manager, _, ctx, _, trained = setup
    result = _technique(manager, "prune", target_parameters=10**6, epochs=0).compress(_copy(setup), ctx)
    assert count_parameters(result.model) == count_parameters(trained) and result.record["tensors"] == {}


@pytest.mark.parametrize("name", ["distill", "prune", "lowrank", "quantize"])
def test_every_builtin_technique_passes_the_plugin_author_round_trip(manager, tmp_path, name):
    from edgepeft.authoring.example_task import options_for
    from edgepeft.testing import technique_round_trip

    cls = manager.techniques.get(name)
    trip = technique_round_trip(cls(options_for(cls)), manager, tmp_path)
    assert trip.parity.passed and trip.parity.top1_agreement == 1.0
    assert trip.parameters_after <= trip.parameters_before

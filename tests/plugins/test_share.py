"""Technique ``share`` (cross-layer sharing, ALBERT) and distillation of hidden states and attention."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import edgepeft
from edgepeft.api.context import Batch, TrainContext
from edgepeft.api.technique import count_parameters
from edgepeft.host.manager import default_manager
from edgepeft.train.loop import fit, predict

pytest.importorskip("transformers")

TEXTS = ["a gorgeous, witty, seductive movie.", "the film is a mess from start to finish", "dull", "a triumph"]


@pytest.fixture(scope="module")
def manager():
    return default_manager()


@pytest.fixture(scope="module")
def task() -> edgepeft.TaskData:
    from edgepeft_hf.model_folder import model_folder
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_folder("all-minilm-l6-v2")), local_files_only=True)
    encoded = tokenizer(TEXTS, padding="max_length", max_length=16, truncation=True, return_tensors="np")
    x, y = np.repeat(encoded["input_ids"].astype(np.float32), 8, axis=0), np.tile(np.array([1, 0, 0, 1]), 8)
    split = edgepeft.Split(x, y)
    return edgepeft.TaskData("tiny-text", split, split, split, labels=["rotten", "fresh"])


def _build(manager, **options):
    family = manager.models.get("hf-classifier")
    torch.manual_seed(0)
    return family().build(family.Options(**options), (16,), 2).eval()


def test_shared_blocks_keep_the_depth_with_one_blocks_parameters(manager, task, tmp_path):
    from edgepeft.api.model import ModelSpec
    from edgepeft.artifacts.run_folder import load_model, save_model

    model = _build(manager, layers=[0, 1, 2])
    layer = count_parameters(model.model.base_model.encoder.layer[0])
    reference = copy.deepcopy(model)
    for index in (1, 2):  # what sharing means: every block computes with block 0's weights
        reference.model.base_model.encoder.layer[index].load_state_dict(
            model.model.base_model.encoder.layer[0].state_dict()
        )
    share = manager.techniques.get("share")
    ctx = TrainContext(data=task, teacher=None, batch_size=8, seed=0)
    result = share(share.Options()).adapt(model, ctx)
    blocks = result.model.model.base_model.encoder.layer
    assert len(blocks) == 3 and blocks[0] is blocks[1] is blocks[2]
    assert result.report == {"blocks": "model.bert.encoder.layer", "blocks_sharing": 3, "parameters_removed": 2 * layer}
    np.testing.assert_allclose(predict(result.model, task.test.x), predict(reference, task.test.x), atol=1e-5)
    fit(result.model, ctx, phase="student", epochs=1, lr=1e-3)
    spec = ModelSpec(
        family="hf-classifier",
        options={"layers": [0, 1, 2]},
        input_shape=[16],
        num_classes=2,
        parameters=count_parameters(result.model),
        edits=[{"technique": "share", "record": result.record}],
    )
    save_model(result.model, spec, tmp_path / "shared")
    loaded, _ = load_model(tmp_path / "shared", manager)
    assert count_parameters(loaded) == count_parameters(result.model)
    outputs = predict(result.model, task.test.x)
    np.testing.assert_allclose(predict(loaded, task.test.x), outputs, atol=1e-5)
    onnx = manager.backends.get("onnx")()
    options = edgepeft.ExportOptions()
    (tmp_path / "onnx").mkdir()
    artifact = onnx.export(loaded, task.test.x[:2], tmp_path / "onnx", options)
    np.testing.assert_allclose(onnx.load(artifact, options)(task.test.x), outputs, atol=1e-4)


def test_sharing_only_some_parts_and_bad_options(manager, task):
    share = manager.techniques.get("share")
    ctx = TrainContext(data=task, teacher=None, batch_size=8, seed=0)
    model = share(share.Options(parts=["attention"], source=1)).adapt(_build(manager, layers=[0, 1]), ctx).model
    first, second = model.model.base_model.encoder.layer
    assert first.attention is second.attention and first.intermediate is not second.intermediate
    with pytest.raises(edgepeft.ConfigError, match="no submodule ffn") as error:
        share(share.Options(parts=["ffn"])).adapt(_build(manager, layers=[0, 1]), ctx)
    assert "attention, intermediate, output" in error.value.fix
    with pytest.raises(edgepeft.ConfigError, match="source block 2 does not exist"):
        share(share.Options(source=2)).adapt(_build(manager, layers=[0, 1]), ctx)
    with pytest.raises(edgepeft.ConfigError, match="has no repeated blocks to share"):
        share(share.Options()).adapt(_build(manager, layers=[0]), ctx)


def _distill(manager, task, student, teacher, **options):
    distill = manager.techniques.get("distill")
    technique = distill(distill.Options(**options))
    ctx = TrainContext(data=task, teacher=teacher, batch_size=8, seed=0, model=student)
    technique.setup(ctx)
    return technique, ctx


def _terms(technique, student, task):
    x = torch.from_numpy(task.train.x[:8])
    logits = student(x)  # eval mode: no dropout
    batch = Batch(x=x, y=torch.from_numpy(task.train.y[:8]), index=torch.arange(8))
    return technique.loss_terms({"task": torch.tensor(0.0)}, batch, logits)


def test_hidden_and_attention_terms_vanish_for_the_teachers_own_layers(manager, task):
    teacher = _build(manager, layers=[0, 1])
    student = _build(manager, layers=[0, 1])  # the same layers: a perfect copy of the teacher's insides
    technique, _ = _distill(manager, task, student, teacher, hidden=1.0, attention=1.0)
    assert technique.layer_map == {0: 0, 1: 1, 2: 2} and technique.trainable() == []
    terms = _terms(technique, student, task)
    assert terms["distill.hidden"].item() == pytest.approx(0.0, abs=1e-8)
    assert terms["distill.attention"].item() == pytest.approx(0.0, abs=1e-6)
    other = _build(manager, layers=[3, 4])
    technique, _ = _distill(manager, task, other, teacher, hidden=1.0, attention=1.0)
    terms = _terms(technique, other, task)
    assert terms["distill.hidden"].item() > 0.01 and terms["distill.attention"].item() > 0.01


def test_a_narrower_student_learns_the_teachers_hidden_states_through_projections(manager, task):
    teacher = _build(manager, layers=[0, 1])
    student = _build(manager, pretrained=False, layers=[0], hidden_size=128)
    technique, ctx = _distill(manager, task, student, teacher, hidden=1.0, attention=1.0, layer_map={1: 2})
    projection = technique.projections["1"]
    assert (projection.in_features, projection.out_features) == (128, 384)
    assert {id(p) for p in technique.trainable()} == {id(p) for p in projection.parameters()}
    before = _terms(technique, student, task)
    fit(student, ctx, phase="student", epochs=6, lr=3e-3, techniques=[technique])
    after = _terms(technique, student, task)
    assert after["distill.hidden"] < 0.5 * before["distill.hidden"]
    assert after["distill.attention"] < before["distill.attention"]


def test_layer_maps_and_models_without_insides_are_refused(manager, task):
    teacher = _build(manager, layers=[0, 1])
    with pytest.raises(edgepeft.ConfigError, match="layer_map 1 -> 3 does not map a layer"):
        _distill(manager, task, _build(manager, layers=[0]), teacher, hidden=1.0, layer_map={1: 3})
    cnn = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    with pytest.raises(edgepeft.ConfigError, match=r"the student \(Sequential\) does not"):
        _distill(manager, task, cnn, teacher, attention=1.0)


def test_a_student_starts_from_the_trained_teachers_tensors_that_fit(manager, task):
    teacher = _build(manager, layers=[0, 1])
    with torch.no_grad():
        for parameter in teacher.parameters():  # a "trained" teacher: unlike the pretrained weights
            parameter.add_(torch.randn_like(parameter) * 0.01)
    init = manager.techniques.get("init-from-teacher")
    ctx = TrainContext(data=task, teacher=teacher, batch_size=8, seed=0)
    student = _build(manager, layers=[0], intermediate_size=512)
    result = init(init.Options(layers={"0": 1})).adapt(student, ctx)
    layer, source = student.model.base_model.encoder.layer[0], teacher.model.base_model.encoder.layer[1]
    assert torch.equal(layer.attention.self.query.weight, source.attention.self.query.weight)
    assert torch.equal(student.model.classifier.weight, teacher.model.classifier.weight)
    assert not torch.equal(layer.intermediate.dense.weight, source.intermediate.dense.weight[:512])  # other shape
    assert result.record is None and result.report["tensors_not_copied"] == 3  # FFN weights, first bias
    assert "model.bert.encoder.layer.0.intermediate.dense.weight" in result.report["examples_not_copied"]
    with pytest.raises(edgepeft.ConfigError, match="init-from-teacher needs a teacher"):
        init(init.Options()).adapt(student, TrainContext(data=task, teacher=None, batch_size=8, seed=0))

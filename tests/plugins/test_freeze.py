"""Technique ``freeze``: the named parameters keep their values while the student trains."""

from __future__ import annotations

import pytest
import torch

import edgepeft
from edgepeft.api.context import TrainContext
from edgepeft.train.loop import fit


@pytest.fixture
def task(manager):
    data_cls, cnn = manager.datasets.get("digits"), manager.models.get("cnn")
    data = data_cls().load(data_cls.Options(), 0)
    torch.manual_seed(0)
    return data, cnn().build(cnn.Options(channels=[4, 4], hidden=16), data.input_shape, 10)


def test_frozen_parameters_keep_their_values_and_the_rest_trains(manager, task):
    data, model = task
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    freeze = manager.techniques.get("freeze")
    technique = freeze(freeze.Options(parameters=["0.0.*", "1.*"]))
    ctx = TrainContext(data=data, teacher=None, batch_size=64, seed=0, model=model)
    technique.setup(ctx)
    fit(model, ctx, phase="student", epochs=1, lr=0.01, weight_decay=0.1, techniques=[technique])
    frozen = {"0.0.weight", "1.weight", "1.bias"}
    assert set(technique.frozen) == frozen
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) == (name in frozen), name  # weight decay spares frozen ones too


def test_a_pattern_that_matches_nothing_is_refused_with_the_names_there_are(manager, task):
    data, model = task
    freeze = manager.techniques.get("freeze")
    technique = freeze(freeze.Options(parameters=["0.*", "*embeddings*"]))
    with pytest.raises(edgepeft.ConfigError, match=r"'\*embeddings\*' matches none") as error:
        technique.setup(TrainContext(data=data, teacher=None, batch_size=64, seed=0, model=model))
    assert "0.0.weight" in error.value.fix
    with pytest.raises(ValueError, match="at least 1 item"):
        freeze.Options(parameters=[])

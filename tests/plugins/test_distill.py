"""The distill technique: loss terms, and teacher outputs computed once rather than every epoch."""

from __future__ import annotations

import pytest
import torch

import edgepeft
from edgepeft.api.context import TrainContext
from edgepeft.train.loop import batches, fit


class CountingTeacher(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.rows_seen = 0

    def forward(self, x):
        self.rows_seen += len(x)
        return self.inner(x)


@pytest.fixture
def setup(manager):
    data_cls = manager.datasets.get("digits")
    data = data_cls().load(data_cls.Options(), 0)
    cnn = manager.models.get("cnn")
    build = lambda channels: cnn().build(cnn.Options(channels=channels, hidden=16), data.input_shape, 10)  # noqa: E731
    return data, build


def test_teacher_runs_once_per_training_example_whatever_the_epochs(manager, setup):
    data, build = setup
    teacher = CountingTeacher(build([8, 8]))
    distill = manager.techniques.get("distill")
    technique = distill(distill.Options(temperature=2.0, alpha=0.5))
    ctx = TrainContext(data=data, teacher=teacher, batch_size=128, seed=0)
    technique.setup(ctx)
    fit(build([4, 4]), ctx, phase="student", epochs=3, lr=0.01, techniques=[technique])
    assert teacher.rows_seen == len(data.train)


def test_loss_terms_mix_task_and_distillation(manager, setup):
    data, build = setup
    distill = manager.techniques.get("distill")
    technique = distill(distill.Options(temperature=3.0, alpha=0.25))
    teacher = build([8, 8])
    technique.setup(TrainContext(data=data, teacher=teacher, batch_size=64, seed=0))
    batch = next(batches(data.train, 16))
    task = torch.tensor(2.0)
    terms = technique.loss_terms({"task": task}, batch, technique.teacher_logits[batch.index].clone())
    assert terms["task"].item() == pytest.approx(1.5)
    assert terms["distill"].item() == pytest.approx(0.0, abs=1e-5)  # student == teacher: no KL
    other = technique.loss_terms({"task": task}, batch, torch.zeros(16, 10))
    assert other["distill"].item() > 0


def test_distill_needs_a_teacher_with_the_same_classes(manager, setup):
    data, _build = setup
    distill = manager.techniques.get("distill")
    technique = distill(distill.Options())
    wrong = manager.models.get("cnn")().build(manager.models.get("cnn").Options(), data.input_shape, 7)
    with pytest.raises(edgepeft.ConfigError, match=r"teacher has 7 outputs but the data set's task has 10"):
        technique.setup(TrainContext(data=data, teacher=wrong, batch_size=64, seed=0))
    with pytest.raises(edgepeft.ConfigError, match="distill needs a teacher"):
        technique.setup(TrainContext(data=data, teacher=None, batch_size=64, seed=0))

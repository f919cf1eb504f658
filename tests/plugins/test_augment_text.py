"""Technique ``augment-text``: perturbed copies of the training texts and unlabelled texts, and distillation
on them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import edgepeft
from edgepeft.api.context import TrainContext
from edgepeft.host.manager import default_manager
from edgepeft.train.loop import batches, fit

pytest.importorskip("transformers")

TEXTS = [
    "a gorgeous, witty, seductive movie.",
    "the film is a mess from start to finish, and nobody in it seems to care",
    "dull",
    "a triumph of style over substance that still manages to move you",
]
PLOT = [
    "a bank manager plans to rob his own bank",
    "three friends travel across the country",
    "a detective returns to the town where she grew up",
]


@pytest.fixture(scope="module")
def manager():
    return default_manager()


@pytest.fixture(scope="module")
def task() -> edgepeft.TaskData:
    from edgepeft_text.tokenizer import encode, load_tokenizer, tokenizer_folder

    folder = tokenizer_folder("all-minilm-l6-v2")
    x, y = np.repeat(encode(TEXTS, folder, 24), 4, axis=0), np.tile(np.array([1, 0, 0, 1]), 4)
    split = edgepeft.Split(x, y)
    preprocessing = {"tokenizer_folder": str(folder), "pad_token_id": load_tokenizer(folder).pad_token_id}
    return edgepeft.TaskData("tiny-text", split, split, split, labels=["rotten", "fresh"], preprocessing=preprocessing)


@pytest.fixture(scope="module")
def tokenizer(task):
    from edgepeft_text.tokenizer import load_tokenizer

    return load_tokenizer(Path(task.preprocessing["tokenizer_folder"]))


def _augmenter(manager, task, **options):
    augment = manager.techniques.get("augment-text")
    technique = augment(augment.Options(**options))
    technique.setup(TrainContext(data=task, teacher=None, batch_size=16, seed=0))
    return technique


def _texts(row: torch.Tensor, pad: int) -> list[int]:
    """The row's text tokens: no padding, no [CLS] / [SEP]."""
    ids = [int(i) for i in row if int(i) != pad]
    return ids[1:-1]


def test_copies_follow_the_batch_keep_labels_and_are_marked(manager, task, tokenizer):
    technique = _augmenter(manager, task, copies=2)
    batch = next(batches(task.train, 16))
    out = technique.augment(batch, torch.Generator().manual_seed(0))
    assert out.x.shape == (48, 24) and torch.equal(out.x[:16], batch.x)
    assert torch.equal(out.y, batch.y.repeat(3)) and torch.equal(out.index, batch.index.repeat(3))
    assert out.augmented.tolist() == [False] * 16 + [True] * 32
    for row in out.x[16:]:
        real = row[row != tokenizer.pad_token_id]
        assert int(real[0]) == tokenizer.cls_token_id and int(real[-1]) == tokenizer.sep_token_id
        assert torch.all(row[len(real) :] == tokenizer.pad_token_id)  # right-padded as the data set is
    assert not torch.equal(out.x[16:32], batch.x)  # 10% masked, 10% replaced, 25% cut: something changed
    again = technique.augment(batch, torch.Generator().manual_seed(0))
    other = technique.augment(batch, torch.Generator().manual_seed(1))
    assert torch.equal(again.x, out.x) and not torch.equal(other.x, out.x)


def test_each_perturbation_does_what_it_says(manager, task, tokenizer):
    batch = next(batches(task.train, 16))
    pad, generator = tokenizer.pad_token_id, torch.Generator().manual_seed(0)
    masked = _augmenter(manager, task, mask=1.0, replace=0.0, ngram=0.0).augment(batch, generator)
    for source, copy in zip(batch.x, masked.x[16:], strict=True):
        assert _texts(copy, pad) == [tokenizer.mask_token_id] * len(_texts(source, pad))
    replaced = _augmenter(manager, task, mask=0.0, replace=1.0, ngram=0.0).augment(batch, generator)
    pool = {t for row in batch.x for t in _texts(row, pad)}
    copies = [_texts(row, pad) for row in replaced.x[16:]]
    assert all(set(c) <= pool for c in copies) and copies != [_texts(row, pad) for row in batch.x]
    spans = _augmenter(manager, task, mask=0.0, replace=0.0, ngram=1.0, ngram_max=3).augment(batch, generator)
    for source, copy in zip(batch.x, spans.x[16:], strict=True):
        text, span = _texts(source, pad), _texts(copy, pad)
        assert 1 <= len(span) <= 3
        assert any(text[i : i + len(span)] == span for i in range(len(text)))  # a contiguous piece of the text


def _with_unlabelled(task: edgepeft.TaskData) -> edgepeft.TaskData:
    from edgepeft_text.tokenizer import encode

    return dataclasses.replace(task, unlabelled=encode(PLOT, Path(task.preprocessing["tokenizer_folder"]), 24))


def test_unlabelled_texts_join_the_batch_with_the_teachers_class(manager, task):
    data, teacher = _with_unlabelled(task), _student(manager).eval()
    augment = manager.techniques.get("augment-text")
    technique = augment(augment.Options(copies=1, unlabelled=0.5))
    technique.setup(TrainContext(data=data, teacher=teacher, batch_size=16, seed=0))
    batch = next(batches(task.train, 16))
    out = technique.augment(batch, torch.Generator().manual_seed(0))
    assert out.x.shape == (40, 24) and out.augmented.tolist() == [False] * 16 + [True] * 16 + [False] * 8
    train = len(task.train)
    assert all(train <= i < train + len(PLOT) for i in out.index[32:].tolist())  # counted after the train rows
    assert torch.equal(out.x[32:], torch.from_numpy(data.unlabelled)[out.index[32:] - train])
    with torch.no_grad():
        assert torch.equal(out.y[32:], teacher(out.x[32:]).argmax(1))
    distill = manager.techniques.get("distill")
    technique = distill(distill.Options(alpha=1.0, temperature=1.0))
    technique.setup(TrainContext(data=data, teacher=teacher, batch_size=16, seed=0, model=_student(manager)))
    with torch.no_grad():
        answers = teacher(out.x)
    terms = technique.loss_terms({"task": torch.tensor(1.0)}, out, answers)
    assert terms["distill"].item() == pytest.approx(0.0, abs=1e-6)  # copies answered live, plots from the cache
    assert len(technique.teacher_logits) == train + len(PLOT)


def test_bad_options_and_data_are_refused(manager, task):
    augment = manager.techniques.get("augment-text")
    with pytest.raises(ValueError, match=r"mask \+ replace is 1.2"):
        augment.Options(mask=0.6, replace=0.6)
    with pytest.raises(ValueError, match="nothing would be added"):
        augment.Options(copies=0)
    unlabelled = augment(augment.Options(unlabelled=1.0))
    with pytest.raises(edgepeft.ConfigError, match="holds no unlabelled texts") as error:
        unlabelled.setup(TrainContext(data=task, teacher=_student(manager), batch_size=16, seed=0))
    assert error.value.where == "[[techniques]] augment-text.unlabelled"
    with pytest.raises(edgepeft.ConfigError, match="need a teacher to label them"):
        unlabelled.setup(TrainContext(data=_with_unlabelled(task), teacher=None, batch_size=16, seed=0))
    digits = manager.datasets.get("digits")
    data = digits().load(digits.Options(), 0)
    with pytest.raises(edgepeft.ConfigError, match="augment-text needs a text data set"):
        augment(augment.Options()).setup(TrainContext(data=data, teacher=None, batch_size=16, seed=0))


def _student(manager):
    family = manager.models.get("hf-classifier")
    torch.manual_seed(0)
    return family().build(family.Options(layers=[0]), (24,), 2)


def test_distill_asks_the_teacher_about_the_copies_the_student_sees(manager, task):
    student, teacher = _student(manager).eval(), _student(manager).eval()
    with torch.no_grad():
        teacher.model.classifier.weight.mul_(1000)  # answers unlike the student's, and far apart
    ctx = TrainContext(data=task, teacher=teacher, batch_size=16, seed=0, model=student)
    distill = manager.techniques.get("distill")
    technique = distill(distill.Options(alpha=1.0, temperature=1.0))
    technique.setup(ctx)
    batch = _augmenter(manager, task).augment(next(batches(task.train, 16)), torch.Generator().manual_seed(0))
    with torch.no_grad():
        answers = teacher(batch.x)
    terms = technique.loss_terms({"task": torch.tensor(1.0)}, batch, answers)
    assert terms["distill"].item() == pytest.approx(0.0, abs=1e-6)  # the targets are the teacher's live answers
    cached = technique.teacher_logits[batch.index]
    assert torch.allclose(cached[:16], answers[:16], rtol=1e-4, atol=1e-3)  # the source texts: the cached answers
    assert not torch.allclose(cached[16:], answers[16:], atol=1e-2)  # the copies' answers differ from the sources'


def test_fit_trains_on_the_augmented_batches_the_same_way_every_run(manager, task):
    class Recorder(edgepeft.Technique):
        name = "recorder"

        def __init__(self) -> None:
            super().__init__(edgepeft.NoOptions())
            self.seen: list[tuple[int, float]] = []

        def loss_terms(self, terms, batch, logits):
            self.seen.append((len(batch.x), float(batch.x.sum())))
            return terms

    runs = []
    for _ in range(2):
        recorder = Recorder()
        ctx = TrainContext(data=task, teacher=None, batch_size=8, seed=3)
        techniques = [_augmenter(manager, task, copies=3), recorder]
        fit(_student(manager), ctx, phase="student", epochs=2, lr=1e-4, techniques=techniques)
        runs.append(recorder.seen)
    assert [size for size, _ in runs[0]] == [32] * 4  # 2 batches of 8 texts + 3 copies each, 2 epochs
    assert runs[0] == runs[1]  # copies drawn from a generator seeded by the step: a resumed run sees the same

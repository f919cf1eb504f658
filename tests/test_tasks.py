"""Multi-head tasks: metrics against scikit-learn, losses, the parity gate on several heads, retention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score

from edgepeft.api import tasks
from edgepeft.api.device import ParityThresholds
from edgepeft.ship.parity import compare

HEADS = (tasks.Head("rating", "regression"), tasks.Head("like", "binary"))


def _outputs(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rating = rng.integers(1, 6, n).astype(np.float32)
    like = (rating >= 4).astype(np.float32)
    outputs = np.stack([rating + rng.normal(0, 0.8, n), (rating - 3.5) + rng.normal(0, 1.5, n)], axis=1)
    return outputs.astype(np.float32), np.stack([rating, like], axis=1)


def test_metrics_match_scikit_learn() -> None:
    outputs, y = _outputs()
    m = tasks.evaluate(HEADS, outputs, y)
    assert list(m) == tasks.metric_names(HEADS)
    assert m["like.auc"] == pytest.approx(roc_auc_score(y[:, 1], outputs[:, 1]))
    assert m["like.log_loss"] == pytest.approx(log_loss(y[:, 1], 1 / (1 + np.exp(-outputs[:, 1].astype(np.float64)))))
    assert m["rating.rmse"] == pytest.approx(float(np.sqrt(((outputs[:, 0] - y[:, 0]) ** 2).mean())), rel=1e-6)
    # ties share their rank, as in scikit-learn
    tied = np.round(outputs[:, 1])
    assert tasks.auc(tied, y[:, 1]) == pytest.approx(roc_auc_score(y[:, 1], tied))
    assert tasks.score(HEADS, m) == pytest.approx((m["like.auc"] - m["rating.rmse"]) / 2)


def test_a_classifier_keeps_accuracy_as_its_score() -> None:
    heads = tasks.classification(["a", "b", "c"])
    logits = np.eye(3, dtype=np.float32)[[0, 1, 2, 2]]
    m = tasks.evaluate(heads, logits, np.array([0, 1, 2, 0]))
    assert m == {"accuracy": 0.75} and tasks.score(heads, m) == 0.75


def test_head_losses_name_each_head() -> None:
    outputs, y = _outputs(32)
    terms = tasks.head_losses(HEADS, torch.from_numpy(outputs), torch.from_numpy(y))
    assert set(terms) == {"task.rating", "task.like"}
    expected = torch.nn.functional.mse_loss(torch.from_numpy(outputs[:, 0]), torch.from_numpy(y[:, 0]))
    assert terms["task.rating"].item() == pytest.approx(expected.item())


def test_parity_gate_judges_each_heads_main_metric() -> None:
    reference, y = _outputs()
    thresholds = ParityThresholds(min_top1_agreement=0.95, max_metric_drop=0.01)
    assert compare(reference, reference + 0.01, y, "int8", thresholds, HEADS).passed
    worse = reference.copy()
    worse[:, 0] += 0.5  # the rating drifts: RMSE rises, the like logit is untouched
    report = compare(reference, worse, y, "int8", thresholds, HEADS)
    assert report.top1_agreement == 1.0
    assert report.failures and report.failures[0].startswith("rating.rmse drop")
    flipped = reference.copy()
    flipped[:50, 1] *= -1
    assert compare(reference, flipped, y, "int8", thresholds, HEADS).top1_agreement == pytest.approx(0.875)


def test_retention_is_the_worst_kept_share() -> None:
    teacher = {"rating.rmse": 0.90, "like.auc": 0.80}
    student = {"rating.rmse": 1.00, "like.auc": 0.78}
    assert tasks.retention(["rating.rmse", "like.auc"], student, teacher) == pytest.approx(0.9)


def test_the_best_epoch_is_kept_when_every_score_is_below_minus_one() -> None:
    """A regression head's score is minus its RMSE: far-off targets must still select an epoch."""
    import dataclasses

    from edgepeft.api.context import TrainContext
    from edgepeft.host.manager import default_manager
    from edgepeft.train.loop import fit

    manager = default_manager()
    movielens = manager.datasets.get("movielens-100k")
    data = movielens().load(movielens.Options(heads=["rating"]), 0)
    shifted = {s: dataclasses.replace(getattr(data, s), y=getattr(data, s).y + 100) for s in ("train", "validation")}
    data = dataclasses.replace(data, **shifted)
    family = manager.models.get("recsys")
    torch.manual_seed(0)
    model = family().build_for(family.Options(dim=4, hidden=[8]), data.signature)
    result = fit(model, TrainContext(data=data, teacher=None, batch_size=1024, seed=0), phase="s", epochs=2, lr=0.01)
    assert result.best_epoch >= 1 and result.best_val_score < -1
    assert result.best_val_score == max(h["val_score"] for h in result.history)

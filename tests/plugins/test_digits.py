"""The digits data set plugin: sizes, stratification, seeding, and a held-out test split."""

from __future__ import annotations

import numpy as np
import pytest

from edgepeft.errors import DataError


def _load(manager, seed=0, **options):
    cls = manager.datasets.get("digits")
    return cls().load(cls.Options(**options), seed)


def test_splits_are_disjoint_stratified_and_complete(manager):
    data = _load(manager)
    assert len(data.train) + len(data.validation) + len(data.test) == 1797
    assert len(data.test) == pytest.approx(0.2 * 1797, abs=10)
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10
    assert data.train.x.dtype == np.float32 and data.train.x.min() >= 0 and data.train.x.max() <= 1
    rows = {s: {r.tobytes() for r in getattr(data, s).x} for s in ("train", "validation", "test")}
    # digits holds a few duplicate images; the splits share (almost) none.
    assert len(rows["train"] & rows["test"]) <= 3
    assert np.bincount(data.test.y).min() >= 33  # every class in the test split
    data.check()


def test_same_seed_same_split_other_seed_other_split(manager):
    a, b, c = _load(manager, 0), _load(manager, 0), _load(manager, 1)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    assert np.array_equal(a.test.y, b.test.y)


def test_check_rejects_unlearnable_data(manager):
    from dataclasses import replace

    data = _load(manager)
    one_class = replace(data, train=replace(data.train, y=np.zeros_like(data.train.y)))
    with pytest.raises(DataError, match="single class"):
        one_class.check()
    out_of_range = replace(data, test=replace(data.test, y=data.test.y + 5))
    with pytest.raises(DataError, match=r"test split: labels must lie in 0\.\.9, found 5\.\.14"):
        out_of_range.check()

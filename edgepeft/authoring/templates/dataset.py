"""The dataset kind: scikit-learn's iris flowers, split with a seed."""

from edgepeft.authoring.templates.kind import KindTemplate

DATASET_PLUGIN = '''\
"""Data set plugin ``$name``: scikit-learn's iris flowers (150 rows, 4 measurements, 3 species).

What to change: read your data in :meth:`load` and return float32 inputs (batch first), integer labels
``0..classes-1`` and the class names. Keep the split seeded (``edgepeft.stratified_split``) so that two
runs agree, and say in ``preprocessing`` how a raw input becomes ``x``: it travels into every deployed
bundle. The options are the recipe's ``[data.options]`` keys. See docs/hooks.md.
"""

from __future__ import annotations

import edgepeft
import numpy as np
from pydantic import Field

SCALE = 1 / 8
"""Brings the measurements (centimetres, at most 7.9) into 0..1."""


class $options_name(edgepeft.StrictModel):
    validation_fraction: float = Field(0.2, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)


class $class_name(edgepeft.Dataset):
    name = "$name"
    description = "scikit-learn's iris flowers (150 rows, 4 measurements, 3 species); stratified seeded split"
    Options = $options_name
    requires = ("sklearn",)
    install_hint = "pip install scikit-learn"

    def load(self, options: $options_name, seed: int) -> edgepeft.TaskData:
        from sklearn.datasets import load_iris

        bunch = load_iris()
        x = bunch.data.astype(np.float32) * np.float32(SCALE)
        y = bunch.target.astype(np.int64)
        train, val, test = edgepeft.stratified_split(y, (options.validation_fraction, options.test_fraction), seed)
        return edgepeft.TaskData(
            name=self.name,
            train=edgepeft.Split(x[train], y[train]),
            validation=edgepeft.Split(x[val], y[val]),
            test=edgepeft.Split(x[test], y[test]),
            labels=[str(label) for label in bunch.target_names],
            preprocessing={
                "input": "sepal length, sepal width, petal length and petal width, in centimetres",
                "scale": SCALE,
                "offset": 0.0,
                "shape": [4],
            },
        )


@edgepeft.hookimpl
def edgepeft_register_datasets(register: edgepeft.Registrar) -> None:
    register($class_name)
'''

DATASET_TESTS = '''\
"""The ``$name`` data set: consistent splits, every class in each, and seeded splitting."""

import numpy as np
from edgepeft.testing import check_dataset

from edgepeft_$module import $class_name


def test_plugin_is_found_through_its_entry_point(manager):
    assert manager.info["$name"].distribution == "edgepeft-$name"
    assert manager.datasets.entry("$name").plugin == "$name"


def test_splits_have_consistent_shapes_and_labels():
    data = check_dataset($class_name)
    assert data.input_shape == (4,) and data.num_classes == 3
    assert len(data.train) + len(data.validation) + len(data.test) == 150
    for split in (data.train, data.validation, data.test):
        assert set(np.unique(split.y)) == {0, 1, 2}  # stratified: every class in every split


def test_same_seed_same_split_other_seed_other_split():
    dataset, options = $class_name(), $class_name.Options()
    first, again, other = (dataset.load(options, seed) for seed in (0, 0, 1))
    assert first.fingerprint() == again.fingerprint() != other.fingerprint()
'''

DATASET_USAGE = """\
Name it in a recipe's `[data]` section; its options go under `[data.options]`:

```toml
[data]
dataset = "$name"

[data.options]
validation_fraction = 0.2
test_fraction = 0.2
```"""


TEMPLATE = KindTemplate(
    summary="scikit-learn's iris flowers, split with a seed",
    plugin=DATASET_PLUGIN,
    tests=DATASET_TESTS,
    usage=DATASET_USAGE,
    test_requirement="edgepeft[data]",
    dependencies='"edgepeft", "scikit-learn>=1.3"',
)

"""Data set plugin ``digits``: scikit-learn's bundled 1,797 handwritten 8x8 digits, split with a seed."""

from __future__ import annotations

from pydantic import Field

import edgepeft
from edgepeft import Dataset, Split, StrictModel, TaskData


class DigitsOptions(StrictModel):
    validation_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)


class Digits(Dataset):
    name = "digits"
    description = "scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes); stratified seeded split"
    Options = DigitsOptions
    requires = ("sklearn",)
    install_hint = "pip install 'edgepeft[data]'"

    def load(self, options: DigitsOptions, seed: int) -> TaskData:
        import numpy as np
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
        y = bunch.target.astype(np.int64)
        train, val, test = edgepeft.stratified_split(y, (options.validation_fraction, options.test_fraction), seed)
        return TaskData(
            name=self.name,
            train=Split(x[train], y[train]),
            validation=Split(x[val], y[val]),
            test=Split(x[test], y[test]),
            labels=[str(d) for d in range(10)],
            preprocessing={
                "input": "8x8 grayscale image, pixel values 0..16 (sklearn digits)",
                "scale": 1 / 16,
                "offset": 0.0,
                "layout": "NCHW",
                "shape": [1, 8, 8],
            },
        )


@edgepeft.hookimpl
def edgepeft_register_datasets(register: edgepeft.Registrar) -> None:
    register(Digits)

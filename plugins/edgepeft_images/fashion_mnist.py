"""Data set ``fashion-mnist``: Zalando's clothing images from the four IDX files of the Debian package
``dataset-fashion-mnist``; its official 10,000 test images are the held-out test split."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

import edgepeft
from edgepeft import DataError, Dataset, Split, StrictModel, TaskData

from .pixels import pixel_table

if TYPE_CHECKING:
    import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_LABELS = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530
FASHION_MNIST_SIDE = 28
FASHION_MNIST_FIX = (
    "Install it with `apt-get install dataset-fashion-mnist`, or set `data_dir` under [data.options] "
    "in the recipe to a folder holding the four Fashion-MNIST IDX files"
)
FASHION_MNIST_DAMAGED_FIX = (
    "Reinstall it with `apt-get install --reinstall dataset-fashion-mnist`, or replace the file with an intact copy"
)
IDX_IMAGES, IDX_LABELS = 0x00000803, 0x00000801  # unsigned bytes; 3 dimensions / 1 dimension


class FashionMNISTOptions(StrictModel):
    data_dir: str = Field(FASHION_MNIST_DIR, description="Folder holding the four Fashion-MNIST IDX files.")
    validation_fraction: float = Field(0.1, gt=0, lt=0.5, description="Share of the 60,000 training images.")
    train_limit: int = Field(
        0, ge=0, description="Keep about this many training images (stratified); 0 keeps all. Other splits unchanged."
    )


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array in an IDX file (gzipped when its name ends in .gz), checked against its header."""
    import numpy as np

    raw = _read_file(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    found = int.from_bytes(raw[:4], "big")
    if len(raw) < header or found != magic:
        raise DataError(
            f"not an IDX file of {ndim}-d unsigned bytes (magic number 0x{found:08x}, expected 0x{magic:08x})",
            where=str(path),
            fix=FASHION_MNIST_DAMAGED_FIX,
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    if len(raw) - header != math.prod(shape):
        raise DataError(
            f"the header promises shape {list(shape)} ({math.prod(shape):,} bytes) "
            f"but the file holds {len(raw) - header:,} bytes of data",
            where=str(path),
            fix=FASHION_MNIST_DAMAGED_FIX,
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _read_file(path: Path) -> bytes:
    """The bytes of ``path``, gunzipped when its name ends in .gz."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as stream:
                return stream.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read the file: {exc}", where=str(path), fix=FASHION_MNIST_DAMAGED_FIX) from None


def _idx_path(folder: Path, stem: str) -> Path:
    """``folder/stem.gz``, else ``folder/stem``."""
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise DataError(f"{stem}.gz (or {stem}) is missing", where=str(folder), fix=FASHION_MNIST_FIX)


def read_fashion_mnist_part(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of the ``train`` or ``t10k`` files in ``folder``."""
    import numpy as np

    images_path = _idx_path(folder, f"{prefix}-images-idx3-ubyte")
    labels_path = _idx_path(folder, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(images_path, IDX_IMAGES), read_idx(labels_path, IDX_LABELS)
    side = FASHION_MNIST_SIDE
    if images.shape[1:] != (side, side):
        raise DataError(
            f"the images are {images.shape[1]}x{images.shape[2]}, Fashion-MNIST's are {side}x{side}",
            where=str(images_path),
            fix=FASHION_MNIST_FIX,
        )
    if len(images) != len(labels):
        raise DataError(
            f"{len(images):,} images but {len(labels):,} labels in {labels_path.name}",
            where=str(images_path),
            fix=FASHION_MNIST_DAMAGED_FIX,
        )
    if np.any(labels >= len(FASHION_MNIST_LABELS)):
        raise DataError(
            f"labels must lie in 0..{len(FASHION_MNIST_LABELS) - 1}, found {int(labels.max())}",
            where=str(labels_path),
            fix=FASHION_MNIST_DAMAGED_FIX,
        )
    return images, labels.astype(np.int64)


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of about ``size`` of ``labels``, the same share of every class, seeded."""
    _, kept, _ = edgepeft.stratified_split(labels, (size / len(labels), 0.0), seed)
    return kept


class FashionMNIST(Dataset):
    name = "fashion-mnist"
    description = (
        "Zalando's 28x28 clothing images (10 classes): 60,000 split into train/validation, "
        "the official 10,000 test images held out"
    )
    Options = FashionMNISTOptions
    folder_option = "data_dir"

    def load(self, options: FashionMNISTOptions, seed: int) -> TaskData:
        folder = Path(options.data_dir).expanduser()
        if not folder.is_dir():
            raise DataError("the Fashion-MNIST folder does not exist", where=str(folder), fix=FASHION_MNIST_FIX)
        images, labels = read_fashion_mnist_part(folder, "train")
        test_images, test_labels = read_fashion_mnist_part(folder, "t10k")
        train, val, _ = edgepeft.stratified_split(labels, (options.validation_fraction, 0.0), seed)
        if 0 < options.train_limit < len(train):
            train = train[stratified_subset(labels[train], options.train_limit, seed)]
        scale = 1 / (255 * FASHION_MNIST_STD)
        offset = -FASHION_MNIST_MEAN / FASHION_MNIST_STD
        table = pixel_table(scale, offset)
        return TaskData(
            name=self.name,
            train=Split(table[images[train, None]], labels[train]),
            validation=Split(table[images[val, None]], labels[val]),
            test=Split(table[test_images[:, None]], test_labels),
            labels=list(FASHION_MNIST_LABELS),
            preprocessing={
                "input": "28x28 grayscale image, pixel values 0..255",
                "scale": scale,
                "offset": offset,
                "layout": "NCHW",
                "shape": [1, FASHION_MNIST_SIDE, FASHION_MNIST_SIDE],
            },
        )

"""Data set plugins ``fashion-mnist`` and ``image-folder``: Zalando's clothing images and a user's own images.

``fashion-mnist`` reads the four IDX files of the Debian package ``dataset-fashion-mnist``; its official
10,000 test images are the held-out test split. ``image-folder`` reads a folder with one subfolder of images
per class (or ``train/`` and ``test/`` folders laid out that way), resized with Pillow.
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, PositiveInt

import edgepeft
from edgepeft import DataError, Dataset, Split, StrictModel, TaskData

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

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm"})
IMAGE_FOLDER_FIX = (
    "Set `path` under [data.options] in the recipe to a folder holding one subfolder of images per class, "
    "e.g. photos/cat/*.png and photos/dog/*.png"
)


def pixel_table(scale: float, offset: float) -> np.ndarray:
    """float32 ``pixel * scale + offset`` for every pixel value 0..255: index it with uint8 images."""
    import numpy as np

    return np.arange(256, dtype=np.float32) * np.float32(scale) + np.float32(offset)


# -- fashion-mnist -------------------------------------------------------------------------------------


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


# -- image-folder --------------------------------------------------------------------------------------


class ImageFolderOptions(StrictModel):
    path: str = Field(description="Folder with one subfolder of images per class, or train/ and test/ laid out so.")
    image_size: list[PositiveInt] = Field([28, 28], min_length=2, max_length=2, description="[height, width].")
    grayscale: bool = Field(True, description="One channel; false keeps RGB (3 channels).")
    validation_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="Unused when the folder has train/ and test/.")


@dataclass(frozen=True)
class ImageList:
    """The image files under a folder of class subfolders, with their class indices."""

    folder: Path
    classes: list[str]
    paths: list[Path]
    labels: np.ndarray


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_images(folder: Path) -> ImageList:
    """Every image in ``folder``'s class subfolders (sorted); hidden files and other suffixes are skipped."""
    import numpy as np

    class_folders = _subfolders(folder)
    if len(class_folders) < 2:
        raise DataError(
            f"found {len(class_folders)} class folder(s), a classifier needs at least 2",
            where=str(folder),
            fix=IMAGE_FOLDER_FIX,
        )
    paths: list[Path] = []
    labels: list[int] = []
    for index, class_folder in enumerate(class_folders):
        images = sorted(
            p
            for p in class_folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not images:
            raise DataError(
                f"class folder {class_folder.name!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})",
                where=str(class_folder),
                fix="Add images of that class to it, or remove the folder",
            )
        paths += images
        labels += [index] * len(images)
    return ImageList(folder, [p.name for p in class_folders], paths, np.array(labels, dtype=np.int64))


def require_every_class(images: ImageList, splits: dict[str, np.ndarray]) -> None:
    """Refuse a split (name -> indices into ``images``) that misses a class: that class has too few images."""
    import numpy as np

    for split_name, indices in splits.items():
        counts = np.bincount(images.labels[indices], minlength=len(images.classes))
        for missing in np.flatnonzero(counts == 0):
            name = images.classes[missing]
            raise DataError(
                f"class {name!r} has {int(np.sum(images.labels == missing))} image(s), "
                f"too few to put one in the {split_name} split",
                where=str(images.folder / name),
                fix="Add more images of that class, or change validation_fraction / test_fraction in [data.options]",
            )


def read_image(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """uint8 pixels (H, W) or (H, W, 3) of the image at ``path`` in Pillow ``mode``, resized to ``size`` (h, w)."""
    import numpy as np
    from PIL import Image, ImageOps

    height, width = size
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened).convert(mode)
            if image.size != (width, height):
                image = image.resize((width, height), Image.Resampling.BILINEAR)
            return np.asarray(image)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(
            f"cannot read the image: {exc}",
            where=str(path),
            fix="Replace or delete the file; it must be an image Pillow can open (PNG, JPEG, BMP, ...)",
        ) from None


def read_images(paths: list[Path], size: tuple[int, int], grayscale: bool) -> np.ndarray:
    """uint8 pixels of every image, resized to ``size`` (h, w), as (N, C, H, W)."""
    import numpy as np

    mode, channels = ("L", 1) if grayscale else ("RGB", 3)
    pixels = np.empty((len(paths), *size, channels), dtype=np.uint8)
    for i, path in enumerate(paths):
        pixels[i] = read_image(path, mode, size).reshape(*size, channels)
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))


def _image_lists(root: Path) -> tuple[ImageList, ImageList | None]:
    """The images to split and, when ``root`` holds exactly train/ and test/, the held-out test images."""
    names = [p.name for p in _subfolders(root)]
    if {"train", "test"} <= set(names) and len(names) > 2:
        others = ", ".join(f"{n}/" for n in names if n not in ("train", "test"))
        raise DataError(
            f"the folder holds train/ and test/ next to {others}",
            where=str(root),
            fix="Keep exactly train/ and test/ (a validation split is taken from train/), or one folder per class",
        )
    if names != ["test", "train"]:
        return list_images(root), None
    images, held_out = list_images(root / "train"), list_images(root / "test")
    if held_out.classes != images.classes:
        raise DataError(
            f"train/ has classes {images.classes} but test/ has {held_out.classes}",
            where=str(root),
            fix="Give train/ and test/ the same class subfolders",
        )
    return images, held_out


class ImageFolder(Dataset):
    name = "image-folder"
    description = (
        "your own images: one subfolder per class (or train/ and test/ folders so), resized; stratified seeded split"
    )
    Options = ImageFolderOptions
    folder_option = "path"
    requires = ("PIL",)
    install_hint = "pip install 'edgepeft[data]'"

    def load(self, options: ImageFolderOptions, seed: int) -> TaskData:
        root = Path(options.path).expanduser()
        if not root.is_dir():
            what = "not a folder" if root.exists() else "no such folder"
            raise DataError(what, where=str(root), fix=IMAGE_FOLDER_FIX)
        size = (options.image_size[0], options.image_size[1])
        images, held_out = _image_lists(root)
        fractions = (options.validation_fraction, options.test_fraction if held_out is None else 0.0)
        train, val, test = edgepeft.stratified_split(images.labels, fractions, seed)
        splits = {"train": train, "validation": val} if held_out else {"train": train, "validation": val, "test": test}
        require_every_class(images, splits)
        table = pixel_table(1 / 255, 0.0)
        x = table[read_images(images.paths, size, options.grayscale)]
        if held_out is not None:
            test_split = Split(table[read_images(held_out.paths, size, options.grayscale)], held_out.labels)
        else:
            test_split = Split(x[test], images.labels[test])
        colour = "grayscale" if options.grayscale else "RGB"
        return TaskData(
            name=self.name,
            train=Split(x[train], images.labels[train]),
            validation=Split(x[val], images.labels[val]),
            test=test_split,
            labels=images.classes,
            preprocessing={
                "input": f"{size[0]}x{size[1]} {colour} image (resized bilinearly), pixel values 0..255",
                "scale": 1 / 255,
                "offset": 0.0,
                "layout": "NCHW",
                "shape": [1 if options.grayscale else 3, *size],
                "image_size": list(size),
                "grayscale": options.grayscale,
            },
        )


@edgepeft.hookimpl
def edgepeft_register_datasets(register: edgepeft.Registrar) -> None:
    register(FashionMNIST)
    register(ImageFolder)

"""Data set ``image-folder``: a user's own images, one subfolder per class (or ``train/`` and ``test/`` folders
laid out that way), resized with Pillow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, PositiveInt

import edgepeft
from edgepeft import DataError, Dataset, Split, StrictModel, TaskData

from .pixels import pixel_table

if TYPE_CHECKING:
    import numpy as np

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm"})
IMAGE_FOLDER_FIX = (
    "Set `path` under [data.options] in the recipe to a folder holding one subfolder of images per class, "
    "e.g. photos/cat/*.png and photos/dog/*.png"
)


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

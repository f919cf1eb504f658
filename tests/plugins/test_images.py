"""The image data sets: fashion-mnist from its installed IDX files, image-folder from folders of PNG images."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from pydantic import ValidationError
from typer.testing import CliRunner

from edgepeft.cli import app
from edgepeft.errors import DataError
from edgepeft.host.manager import default_manager
from edgepeft.testing import tiny_recipe, write_recipe

FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
needs_fashion = pytest.mark.skipif(not FASHION.is_dir(), reason="needs `apt-get install dataset-fashion-mnist`")


def _load(name: str, seed: int = 0, **options):
    cls = default_manager().datasets.get(name)
    return cls().load(cls.Options(**options), seed)


def _idx_payload(name: str, header_bytes: int) -> tuple[bytes, np.ndarray]:
    """The raw bytes of an installed IDX file and its data (read independently of the plugin)."""
    raw = gzip.decompress((FASHION / name).read_bytes())
    return raw, np.frombuffer(raw, np.uint8, offset=header_bytes)


# -- fashion-mnist -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fashion():
    return _load("fashion-mnist")


@needs_fashion
def test_fashion_mnist_splits_shapes_and_official_test_set(fashion):
    assert (len(fashion.train), len(fashion.validation), len(fashion.test)) == (54_000, 6_000, 10_000)
    assert fashion.input_shape == (1, 28, 28) and fashion.num_classes == 10
    assert fashion.labels[0] == "T-shirt/top" and fashion.labels[9] == "Ankle boot"
    for split in (fashion.train, fashion.validation, fashion.test):
        assert split.x.dtype == np.float32 and split.y.dtype == np.int64
        assert np.bincount(split.y, minlength=10).min() > 0
    assert set(np.bincount(fashion.train.y)) == {5_400} and set(np.bincount(fashion.validation.y)) == {600}
    _, test_labels = _idx_payload("t10k-labels-idx1-ubyte.gz", 8)
    assert np.array_equal(fashion.test.y, test_labels)
    _, test_pixels = _idx_payload("t10k-images-idx3-ubyte.gz", 16)
    pre = fashion.preprocessing
    assert pre["layout"] == "NCHW" and pre["shape"] == [1, 28, 28]
    assert np.allclose(fashion.test.x.ravel(), test_pixels * pre["scale"] + pre["offset"], atol=1e-6)
    assert np.allclose(fashion.test.x.ravel(), (test_pixels / 255 - 0.2860) / 0.3530, atol=1e-6)
    assert abs(fashion.train.x.mean()) < 0.01 and abs(fashion.train.x.std() - 1) < 0.01
    fashion.check()


@needs_fashion
def test_fashion_mnist_seed_changes_train_and_validation_never_test(fashion):
    assert _load("fashion-mnist", seed=0).fingerprint() == fashion.fingerprint()
    other = _load("fashion-mnist", seed=1)
    assert not np.array_equal(other.validation.y, fashion.validation.y)
    assert not np.array_equal(other.validation.x, fashion.validation.x)
    assert np.array_equal(other.test.x, fashion.test.x) and np.array_equal(other.test.y, fashion.test.y)


@needs_fashion
def test_fashion_mnist_train_limit_is_stratified_and_leaves_validation_and_test(fashion):
    limited = _load("fashion-mnist", train_limit=1_000)
    assert set(np.bincount(limited.train.y)) == {100}
    assert np.array_equal(limited.validation.x, fashion.validation.x)
    assert np.array_equal(limited.test.y, fashion.test.y)
    with pytest.raises(ValidationError, match="test_limit"):
        default_manager().datasets.get("fashion-mnist").Options(test_limit=100)


@needs_fashion
def test_fashion_mnist_reads_uncompressed_files(tmp_path, fashion):
    for name in FASHION_FILES[:3]:
        (tmp_path / name).symlink_to(FASHION / name)
    raw, _ = _idx_payload("t10k-labels-idx1-ubyte.gz", 8)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(raw)
    assert np.array_equal(_load("fashion-mnist", data_dir=str(tmp_path)).test.y, fashion.test.y)


def test_missing_fashion_mnist_says_how_to_install_it(tmp_path):
    folder = tmp_path / "nowhere"
    with pytest.raises(DataError) as e:
        _load("fashion-mnist", data_dir=str(folder))
    assert str(folder) in str(e.value) and "does not exist" in str(e.value)
    assert "apt-get install dataset-fashion-mnist" in str(e.value) and "data_dir" in str(e.value)


def _damaged_labels(kind: str) -> bytes:
    raw, _ = _idx_payload("train-labels-idx1-ubyte.gz", 8)
    match kind:
        case "cut gzip stream":
            return (FASHION / "train-labels-idx1-ubyte.gz").read_bytes()[:10_000]
        case "cut data":
            return gzip.compress(raw[:-100])
        case "wrong magic":
            return gzip.compress(b"\x00\x00\x08\x03" + raw[4:])
        case _:  # one label fewer than images, header updated to match
            return gzip.compress(raw[:4] + (59_999).to_bytes(4, "big") + raw[8:-1])


@needs_fashion
@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("cut gzip stream", "cannot read the file: Compressed file ended"),
        ("cut data", "the header promises shape [60000] (60,000 bytes) but the file holds 59,900 bytes of data"),
        ("wrong magic", "magic number 0x00000803, expected 0x00000801"),
        ("count mismatch", "60,000 images but 59,999 labels in train-labels-idx1-ubyte.gz"),
    ],
)
def test_damaged_idx_file_is_named_with_a_fix(tmp_path, kind, message):
    for name in FASHION_FILES:
        if name != "train-labels-idx1-ubyte.gz":
            (tmp_path / name).symlink_to(FASHION / name)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(_damaged_labels(kind))
    with pytest.raises(DataError) as e:
        _load("fashion-mnist", data_dir=str(tmp_path))
    assert message in str(e.value)
    assert "train-labels-idx1-ubyte.gz" in str(e.value) or "train-images-idx3-ubyte.gz" in str(e.value)
    assert "apt-get install" in str(e.value)


def test_missing_idx_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz \(or train-images-idx3-ubyte\) is missing"):
        _load("fashion-mnist", data_dir=str(tmp_path))


def test_recipe_with_a_bad_data_dir_exits_with_the_data_error_and_the_fix(tmp_path):
    folder = tmp_path / "no-fashion-here"
    recipe = tiny_recipe(name="fm", data={"dataset": "fashion-mnist", "options": {"data_dir": str(folder)}})
    path = write_recipe(tmp_path / "fm.toml", recipe)
    result = CliRunner().invoke(
        app, ["train", str(path), "--runs-dir", str(tmp_path / "runs")], obj=default_manager(), env={"COLUMNS": "400"}
    )
    output = " ".join(result.output.split())
    assert result.exit_code == DataError.exit_code == 4, result.output
    assert f"{folder}: the Fashion-MNIST folder does not exist" in output
    assert "apt-get install dataset-fashion-mnist" in output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


def test_data_dir_option_points_a_built_in_recipe_at_another_folder(tmp_path):
    folder = tmp_path / "elsewhere"
    args = ["train", "realtime-vision", "--data-dir", str(folder), "--runs-dir", str(tmp_path / "runs")]
    result = CliRunner().invoke(app, args, obj=default_manager(), env={"COLUMNS": "400"})
    assert result.exit_code == 4, result.output
    assert f"{folder}: the Fashion-MNIST folder does not exist" in " ".join(result.output.split())


def test_data_dir_for_a_data_set_without_folders_is_a_config_error(tmp_path):
    args = ["train", "--data-dir", str(tmp_path), "--runs-dir", str(tmp_path / "runs")]
    result = CliRunner().invoke(app, args, obj=default_manager(), env={"COLUMNS": "400"})
    assert result.exit_code == 2, result.output
    assert "--data-dir" in result.output and "does not read from a folder" in result.output


def test_resume_refuses_a_new_data_dir(tmp_path):
    args = ["train", "--resume", str(tmp_path / "runs" / "x"), "--data-dir", str(tmp_path)]
    result = CliRunner().invoke(app, args, obj=default_manager(), env={"COLUMNS": "400"})
    assert result.exit_code == 2 and "--data-dir cannot change an interrupted run's data" in result.output


# -- image-folder --------------------------------------------------------------------------------------

SHAPES = ("circle", "cross", "square")


def _draw(path: Path, shape: str, index: int, size: tuple[int, int] = (28, 28)) -> None:
    """A PNG of ``shape``; pixel (0, 0) encodes the class, pixel (0, 1) the image's index."""
    width, height = size
    image = Image.new("RGB", (width, height), (20, 40, 60))
    draw = ImageDraw.Draw(image)
    box = (2 + index % 5, 3, width - 3, height - 2 - index % 4)
    if shape == "circle":
        draw.ellipse(box, outline=(250, 200, 0), width=2)
    elif shape == "cross":
        draw.line(box, fill=(0, 255, 120), width=3)
        draw.line((box[0], box[3], box[2], box[1]), fill=(0, 255, 120), width=3)
    else:
        draw.rectangle(box, fill=(200, 30, 200))
    image.putpixel((0, 0), (SHAPES.index(shape) * 100,) * 3)
    image.putpixel((1, 0), (index * 10,) * 3)
    image.save(path)


def _image_folder(root: Path, per_class: int = 12, classes: tuple[str, ...] = SHAPES, **kwargs) -> Path:
    for shape in classes:
        (root / shape).mkdir(parents=True)
        for i in range(per_class):
            _draw(root / shape / f"{shape}-{i:02}.png", shape, i, **kwargs)
    return root


def test_image_folder_reads_classes_labels_and_splits(tmp_path):
    root = _image_folder(tmp_path / "shapes")
    (root / "circle" / "notes.txt").write_text("not an image, skipped")
    (root / "cross" / ".DS_Store").write_bytes(b"\0\1")
    data = _load("image-folder", path=str(root))
    assert data.labels == list(SHAPES) and data.input_shape == (1, 28, 28)
    assert (len(data.train), len(data.validation), len(data.test)) == (24, 6, 6)
    splits = (data.train, data.validation, data.test)
    for split in splits:
        assert split.x.dtype == np.float32 and split.x.min() >= 0 and split.x.max() <= 1
        assert np.bincount(split.y, minlength=3).min() > 0
        assert np.array_equal(np.round(split.x[:, 0, 0, 0] * 255), split.y * 100)  # each image keeps its label
    seen = sorted((int(y), round(x * 255 / 10)) for s in splits for x, y in zip(s.x[:, 0, 0, 1], s.y, strict=True))
    assert seen == [(c, i) for c in range(3) for i in range(12)]  # every image in exactly one split
    assert data.preprocessing == {
        "input": "28x28 grayscale image (resized bilinearly), pixel values 0..255",
        "scale": 1 / 255,
        "offset": 0.0,
        "layout": "NCHW",
        "shape": [1, 28, 28],
        "image_size": [28, 28],
        "grayscale": True,
    }
    data.check()
    assert _load("image-folder", path=str(root)).fingerprint() == data.fingerprint()
    assert _load("image-folder", seed=1, path=str(root)).fingerprint() != data.fingerprint()


def test_image_folder_resizes_and_keeps_colour(tmp_path):
    root = _image_folder(tmp_path / "shapes", per_class=6, size=(40, 30))
    _draw(root / "square" / "odd-size.bmp", "square", 7, size=(13, 50))
    data = _load("image-folder", path=str(root), image_size=[16, 12], grayscale=False)
    assert data.input_shape == (3, 16, 12) and len(data.train) + len(data.validation) + len(data.test) == 19
    assert data.preprocessing["shape"] == [3, 16, 12] and data.preprocessing["grayscale"] is False
    assert data.preprocessing["input"].startswith("16x12 RGB image")
    squares = data.train.x[data.train.y == 2]
    assert np.allclose(squares[:, :, 8, 6], [200 / 255, 30 / 255, 200 / 255], atol=0.02)  # the filled square's colour


def test_image_folder_with_train_and_test_keeps_test_held_out(tmp_path):
    _image_folder(tmp_path / "photos" / "train", per_class=10)
    _image_folder(tmp_path / "photos" / "test", per_class=4)
    data = _load("image-folder", path=str(tmp_path / "photos"), test_fraction=0.4)
    assert (len(data.train), len(data.validation), len(data.test)) == (24, 6, 12)
    assert np.array_equal(data.test.y, np.repeat([0, 1, 2], 4))  # every test/ image, in file order
    assert np.array_equal(np.round(data.test.x[:, 0, 0, 1] * 255) / 10, np.tile(np.arange(4), 3))
    other = _load("image-folder", seed=3, path=str(tmp_path / "photos"))
    assert np.array_equal(other.test.x, data.test.x) and other.fingerprint() != data.fingerprint()


def test_image_folder_with_train_test_and_another_folder_explains_the_layout(tmp_path):
    for part in ("train", "test", "val"):
        _image_folder(tmp_path / "photos" / part, per_class=3)
    with pytest.raises(DataError, match=r"holds train/ and test/ next to val/") as caught:
        _load("image-folder", path=str(tmp_path / "photos"))
    assert "a validation split is taken from train/" in caught.value.fix


def _no_folder(root: Path) -> None:
    pass


def _a_file(root: Path) -> None:
    root.write_text("x")


def _one_class(root: Path) -> None:
    _image_folder(root, classes=("circle",))


def _empty_class(root: Path) -> None:
    _image_folder(root)
    (root / "empty").mkdir()
    (root / "empty" / "readme.txt").write_text("no images yet")


def _unreadable_image(root: Path) -> None:
    _image_folder(root)
    (root / "cross" / "broken.png").write_bytes(b"this is not a PNG")


def _truncated_image(root: Path) -> None:
    _image_folder(root)
    image = root / "square" / "square-03.png"
    image.write_bytes(image.read_bytes()[:60])


def _too_few_images(root: Path) -> None:
    _image_folder(root)
    (root / "tiny").mkdir()
    _draw(root / "tiny" / "only.png", "circle", 0)
    _draw(root / "tiny" / "two.png", "circle", 1)


def _test_classes_differ(root: Path) -> None:
    _image_folder(root / "train")
    _image_folder(root / "test", classes=("circle", "square"))


@pytest.mark.parametrize(
    ("make", "where", "message"),
    [
        (_no_folder, "", "no such folder"),
        (_a_file, "", "not a folder"),
        (_one_class, "", "found 1 class folder(s), a classifier needs at least 2"),
        (_empty_class, "empty", "class folder 'empty' holds no images (.bmp, .gif, .jpeg, .jpg"),
        (_unreadable_image, "cross/broken.png", "cannot read the image: cannot identify image file"),
        (_truncated_image, "square/square-03.png", "cannot read the image"),
        (_too_few_images, "tiny", "class 'tiny' has 2 image(s), too few to put one in the validation split"),
        (_test_classes_differ, "", "train/ has classes ['circle', 'cross', 'square'] but test/ has"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_image_folder_errors_name_the_place_and_the_fix(tmp_path, make, where, message):
    root = tmp_path / "photos"
    make(root)
    with pytest.raises(DataError) as e:
        _load("image-folder", path=str(root))
    assert e.value.where == str(root / where) and message in e.value.what
    assert e.value.fix


def test_data_dir_sets_the_image_folder_path(tmp_path):
    from edgepeft.artifacts.recipe import resolve, with_data_dir

    manager = default_manager()
    recipe = tiny_recipe(name="imgs", data={"dataset": "image-folder", "options": {"path": "nowhere"}})
    resolved = with_data_dir(resolve(recipe, None, "r", manager), tmp_path / "mine", manager)
    assert resolved.data_options.path == str(tmp_path / "mine")


def test_image_folder_trains_from_a_recipe(tmp_path):
    root = _image_folder(tmp_path / "shapes", per_class=10)
    recipe = tiny_recipe(name="shapes", data={"dataset": "image-folder", "options": {"path": str(root)}})
    recipe["teacher"]["epochs"] = recipe["student"]["epochs"] = 1
    path = write_recipe(tmp_path / "shapes.toml", recipe)
    result = CliRunner().invoke(app, ["train", str(path), "--runs-dir", str(tmp_path / "runs")], obj=default_manager())
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "shapes" / "metrics.json").is_file()

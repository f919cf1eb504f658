"""The bad-input matrix: each user mistake (or broken input) gives one clear line and its exit status."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import edgepeft
from edgepeft.cli import app
from edgepeft.host.manager import default_manager
from edgepeft.testing import tiny_recipe, write_recipe


class _Digits(edgepeft.Dataset):
    """digits, broken in one of the ways users' own data sets are."""

    flaw = ""

    def load(self, options, seed):
        base = default_manager().datasets.get("digits")
        data = base().load(base.Options(), seed)
        from dataclasses import replace

        if self.flaw == "empty":
            return replace(data, train=edgepeft.Split(data.train.x[:0], data.train.y[:0]))
        if self.flaw == "one-class":
            return replace(data, train=replace(data.train, y=np.zeros_like(data.train.y)))
        return replace(data, test=replace(data.test, y=data.test.y + 3))


def _dataset(name: str) -> type[edgepeft.Dataset]:
    return type(name, (_Digits,), {"name": f"test-{name}", "flaw": name})


class _Net(edgepeft.ModelFamily):
    kind = ""

    def build(self, options, input_shape, num_classes):
        import math

        import torch

        kind = self.kind

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                outputs = 7 if kind == "seven" else num_classes
                self.head = torch.nn.Linear(math.prod(input_shape), outputs)

            def forward(self, x):
                if kind == "oom" and self.training:
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
                return self.head(x.flatten(1))

        return Net()


class BadPlugin:
    @edgepeft.hookimpl
    def edgepeft_register_datasets(self, register):
        for flaw in ("empty", "one-class", "bad-labels"):
            register(_dataset(flaw))

    @edgepeft.hookimpl
    def edgepeft_register_models(self, register):
        for kind in ("seven", "oom"):
            register(type(kind, (_Net,), {"name": f"test-{kind}", "kind": kind}))


class RaisingPlugin:
    @edgepeft.hookimpl
    def edgepeft_after_step(self, state):
        raise RuntimeError("tracker lost its connection")


@pytest.fixture(scope="module")
def ws(digits_run, tmp_path_factory) -> dict[str, Path]:
    """A folder for the broken inputs, with a device profile, and the session's finished tiny digits run."""
    root = tmp_path_factory.mktemp("bad")
    (root / "devices").mkdir()
    (root / "devices" / "never.toml").write_text(
        'description = "x"\nextends = "android"\n[budgets]\npeak_memory_mb = 100000\n'
    )
    return {"root": root, "run": digits_run}


def _recipe(ws, name: str, **changes) -> str:
    recipe = tiny_recipe(name=name)
    recipe["teacher"]["epochs"] = recipe["student"]["epochs"] = 1
    for key, value in changes.items():
        section, _, field = key.partition(".")
        if field:
            recipe[section][field] = value
        else:
            recipe[section] = value
    return str(write_recipe(ws["root"] / f"{name}.toml", recipe))


def _copy_run(ws, name: str, damage: Callable[[Path], None]) -> str:
    import shutil

    target = ws["root"] / "damaged" / name
    shutil.copytree(ws["run"], target)
    damage(target)
    return str(target)


def _zip(ws, name: str, members: dict[str, bytes], compress: bool = True) -> str:
    path = ws["root"] / f"{name}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return str(path)


def _text(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


R = "runs"
CASES: list[tuple[str, Callable[[dict], list[str]], int, str]] = [
    (
        "recipe: unknown key",
        lambda ws: ["train", _text(ws["root"] / "k.toml", 'name = "k"\nepochz = 1\n')],
        2,
        "k.toml:2: epochz: unknown key",
    ),
    (
        "recipe: wrong type",
        lambda ws: ["train", _recipe(ws, "t", **{"teacher.epochs": "3"})],
        2,
        "teacher.epochs: Input should be a valid integer",
    ),
    ("recipe: missing file", lambda ws: ["train", str(ws["root"] / "nope.toml")], 2, "nope.toml: file not found"),
    ("recipe: not TOML", lambda ws: ["train", _text(ws["root"] / "bad.toml", "name = = 1")], 2, "not valid TOML"),
    (
        "unknown technique",
        lambda ws: ["train", _recipe(ws, "u", techniques=[{"name": "distil"}])],
        2,
        "unknown technique 'distil'. Did you mean 'distill'?",
    ),
    (
        "unknown dataset",
        lambda ws: ["train", _recipe(ws, "d", **{"data.dataset": "digit"})],
        2,
        "unknown dataset 'digit'. Did you mean 'digits'",
    ),
    (
        "unknown backend",
        lambda ws: ["deploy", str(ws["run"]), "-d", "android", "--backend", "tflit"],
        2,
        "unknown backend 'tflit'. Did you mean 'tflite'?",
    ),
    (
        "unknown device",
        lambda ws: ["deploy", str(ws["run"]), "-d", "andriod"],
        2,
        "unknown device 'andriod'. Did you mean 'android'",
    ),
    (
        "unknown precision",
        lambda ws: ["export", str(ws["run"]), "--backend", "onnx", "--precision", "int4"],
        2,
        "unknown precision 'int4'",
    ),
    (
        "empty data set",
        lambda ws: ["train", _recipe(ws, "e", **{"data.dataset": "test-empty"})],
        4,
        "train split: the split is empty",
    ),
    (
        "one-class data set",
        lambda ws: ["train", _recipe(ws, "o", **{"data.dataset": "test-one-class"})],
        4,
        "the train split holds a single class",
    ),
    (
        "labels out of range",
        lambda ws: ["train", _recipe(ws, "l", **{"data.dataset": "test-bad-labels"})],
        4,
        "test split: labels must lie in 0..9, found 3..12",
    ),
    (
        "teacher/student outputs do not match the classes",
        lambda ws: ["train", _recipe(ws, "m", teacher={"model": "test-seven", "epochs": 1})],
        2,
        "model 'test-seven' gives outputs of shape [7] for a batch, but data set 'digits' has 10 classes",
    ),
    ("NaN loss", lambda ws: ["train", _recipe(ws, "n", **{"student.lr": 1e30})], 9, "the loss became nan at step"),
    (
        "out of memory",
        lambda ws: ["train", _recipe(ws, "oom", student={"model": "test-oom", "epochs": 1})],
        9,
        "out of memory at batch size 64",
    ),
    (
        "plugin raises inside a hook",
        lambda ws: ["train", _recipe(ws, "h")],
        3,
        "plugin 'raising' raised RuntimeError in hook edgepeft_after_step: tracker lost its connection",
    ),
    (
        "truncated safetensors",
        lambda ws: [
            "deploy",
            _copy_run(ws, "trunc", lambda r: (r / "student" / "model.safetensors").write_bytes(b"\x10\x00")),
            "-d",
            "android",
        ],
        8,
        "model.safetensors: cannot load the weights",
    ),
    (
        "model spec does not match the weights",
        lambda ws: [
            "deploy",
            _copy_run(
                ws,
                "shape",
                lambda r: (r / "student" / "model.json").write_text(
                    json.dumps({**json.loads((r / "student" / "model.json").read_text()), "input_shape": [1, 16, 16]})
                ),
            ),
            "-d",
            "android",
        ],
        8,
        "cannot load the weights",
    ),
    (
        "run folder that is not one",
        lambda ws: ["deploy", str(ws["root"]), "-d", "android"],
        8,
        "not a finished run folder",
    ),
    (
        "damaged metrics.json",
        lambda ws: [
            "deploy",
            _copy_run(ws, "metrics", lambda r: (r / "metrics.json").write_text("{")),
            "-d",
            "android",
        ],
        8,
        "metrics.json is damaged",
    ),
    (
        "budget that can never be met",
        lambda ws: ["deploy", str(ws["run"]), "-d", "never"],
        2,
        "exceeds the device's memory (6144 MB): the budget can never be met",
    ),
    (
        "--resume with nothing to resume",
        lambda ws: ["train", "--resume", str(ws["root"] / "runs" / "none")],
        2,
        "there is no interrupted run of 'none' to resume",
    ),
    (
        "--serial without --push",
        lambda ws: ["deploy", str(ws["run"]), "-d", "android", "--serial", "x"],
        2,
        "--serial names a device to push to, but --push is not given",
    ),
    (
        "zip entry escaping the bundle",
        lambda ws: ["verify", _zip(ws, "escape", {"b/../../evil.txt": b"x"})],
        8,
        "points outside the bundle",
    ),
    (
        "zip bomb",
        lambda ws: ["verify", _zip(ws, "bomb", {"b/manifest.json": b"\0" * 50_000_000})],
        8,
        "looks like a zip bomb",
    ),
    ("not a zip", lambda ws: ["verify", _text(ws["root"] / "fake.zip", "plain text")], 8, "not a valid zip file"),
    (
        "corrupt .onnx in a bundle",
        lambda ws: ["verify", _bundle_with(ws, "onnx")],
        8,
        "model.onnx: sha256 differs from the manifest",
    ),
    (
        "corrupt .tflite in a bundle",
        lambda ws: ["verify", _bundle_with(ws, "tflite")],
        8,
        "model.tflite: sha256 differs from the manifest",
    ),
]


def _bundle_with(ws, backend: str) -> str:
    out = ws["root"] / f"dist-{backend}"
    result = CliRunner().invoke(
        app,
        [
            "deploy",
            str(ws["run"]),
            "-d",
            "x86-server",
            "--backend",
            backend,
            "--precision",
            "fp32",
            "--out",
            str(out),
            "--timing-seconds",
            "0.1",
        ],
        obj=default_manager(),
    )
    assert result.exit_code in (0, 10), result.output
    bundle = out / f"{ws['run'].name}-x86-server"
    model = bundle / f"model.{backend}"
    model.write_bytes(model.read_bytes()[: len(model.read_bytes()) // 2])
    return str(bundle)


@pytest.mark.parametrize(("case", "args", "exit_code", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_line(ws, monkeypatch, case, args, exit_code, message):
    monkeypatch.setenv("EDGEPEFT_DEVICES_PATH", str(ws["root"] / "devices"))
    manager = default_manager()
    manager.register(BadPlugin(), "bad-input")
    if case == "plugin raises inside a hook":
        manager.register(RaisingPlugin(), "raising")
    result = CliRunner().invoke(app, args(ws), obj=manager, env={"COLUMNS": "400"})
    output = " ".join(result.output.split())
    assert result.exit_code == exit_code, result.output
    assert message in output, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit | None)

"""pytest fixtures and helpers for plugin authors (and edgepeft's own tests).

Use them from a ``conftest.py`` with ``pytest_plugins = ["edgepeft.testing"]``. Fixtures: ``manager``,
``register_plugin``, ``tiny_data`` (scikit-learn's digits) and ``tiny_model`` (a small CNN trained on
it) and ``digits_run`` (a finished run of :func:`tiny_recipe`, trained once per test session). Helpers:
:func:`technique_round_trip`, :func:`backend_round_trip`, :func:`model_round_trip`, :func:`check_dataset` and
:func:`check_plugin` (what ``edgepeft plugins check`` runs), plus :func:`tiny_recipe`, :func:`write_recipe` and
:func:`train_run` for end-to-end runs, and :func:`load_profile` (a device profile by name, with what it extends
merged in).
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgepeft.api.dataset import TaskData
from edgepeft.api.device import load_profile
from edgepeft.authoring.conformance import (
    CheckResult,
    RoundTrip,
    backend_round_trip,
    backend_round_trips,
    check_dataset,
    check_plugin,
    export_round_trip,
    model_round_trip,
    technique_round_trip,
)
from edgepeft.authoring.example_task import tiny_data as load_tiny_data
from edgepeft.authoring.example_task import tiny_model as build_tiny_model
from edgepeft.host.manager import PluginManager, default_manager

_names = itertools.count()


def tiny_recipe(name: str = "tiny", **overrides: Any) -> dict[str, Any]:
    """A recipe (as a dict) that trains a small teacher and student on digits in a few seconds."""
    recipe: dict[str, Any] = {
        "name": name,
        "seed": 0,
        "data": {"dataset": "digits", "batch_size": 64},
        "teacher": {"model": "cnn", "epochs": 3, "lr": 0.005, "options": {"channels": [8, 16], "hidden": 32}},
        "student": {"model": "cnn", "epochs": 3, "lr": 0.01, "options": {"channels": [4, 8], "hidden": 16}},
        "techniques": [{"name": "distill", "temperature": 4.0, "alpha": 0.7}],
    }
    recipe.update(overrides)
    return recipe


def write_recipe(path: Path, recipe: dict[str, Any]) -> Path:
    """Write a recipe dict as TOML and return the path."""
    import tomli_w

    path.write_text(tomli_w.dumps(recipe))
    return path


def train_run(folder: Path, recipe: dict[str, Any]) -> Path:
    """Train ``recipe`` with ``edgepeft train`` as a user would (its file in ``folder``, its run in
    ``folder/runs``) and return the run folder."""
    from typer.testing import CliRunner

    from edgepeft.cli import app

    path = write_recipe(folder / f"{recipe['name']}.toml", recipe)
    result = CliRunner().invoke(app, ["train", str(path), "--runs-dir", str(folder / "runs")], obj=default_manager())
    if result.exit_code != 0:
        raise AssertionError(f"edgepeft train {path} exited with {result.exit_code}:\n{result.output}")
    return folder / "runs" / recipe["name"]


def once_per_session(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Path]) -> Path:
    """``build(folder)`` run once per test session, also when pytest-xdist spreads the tests over several
    processes: the first process to ask builds it (under a file lock, in a folder all of them share) and the
    others reuse what it returned. A build that failed is tried again by the next process that asks."""
    from filelock import FileLock

    root = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, shared by its workers
    folder, done = root / name, root / f"{name}.built"
    with FileLock(str(root / f"{name}.lock")):
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            done.write_text(str(build(folder).relative_to(folder)))
    return folder / done.read_text()


@pytest.fixture(autouse=True)
def _log_handlers_on_open_streams() -> Iterator[None]:
    """A library imported during a test's ``CliRunner.invoke`` (torch submodules, the quantizers) binds its
    log handlers to the runner's stderr buffer, which is closed afterwards; point them back at stderr so a
    later warning is not a "Logging error" traceback in another test's output."""
    yield
    loggers = [logging.root, *(lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and getattr(handler.stream, "closed", False):
                handler.stream = sys.stderr  # not setStream: it would flush the closed stream


@pytest.fixture
def manager() -> PluginManager:
    """A fresh plugin manager with every installed plugin loaded (respecting the EDGEPEFT_* variables)."""
    return default_manager()


@pytest.fixture
def register_plugin(manager: PluginManager) -> Iterator[Callable[..., str]]:
    """``register_plugin(obj, name=None)`` registers a plugin on ``manager`` for this test only."""
    added: list[str] = []

    def register(plugin: object, name: str | None = None) -> str:
        name = name or f"test-plugin-{next(_names)}"
        manager.register(plugin, name)
        added.append(name)
        return name

    yield register
    for name in added:
        if name in manager.info:
            manager.unregister(name)


@pytest.fixture
def tiny_data(manager: PluginManager) -> TaskData:
    """scikit-learn's digits, split with seed 0: train, validation and held-out test."""
    return load_tiny_data(manager)


@pytest.fixture
def tiny_model(manager: PluginManager, tiny_data: TaskData) -> Any:
    """A small CNN (about 2,500 parameters) trained on ``tiny_data`` for a few epochs."""
    return build_tiny_model(manager, tiny_data)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of :func:`tiny_recipe` (``runs/tiny``, beside the ``.teachers`` cache), trained once per
    test session (:func:`once_per_session`) and shared by every test that asks for it: read it, or copy it
    (``shutil.copytree``) into ``tmp_path`` before changing anything in it."""
    return once_per_session(tmp_path_factory, "digits-run", lambda folder: train_run(folder, tiny_recipe()))


__all__ = [
    "CheckResult",
    "RoundTrip",
    "backend_round_trip",
    "backend_round_trips",
    "build_tiny_model",
    "check_dataset",
    "check_plugin",
    "digits_run",
    "export_round_trip",
    "load_profile",
    "load_tiny_data",
    "manager",
    "model_round_trip",
    "once_per_session",
    "register_plugin",
    "technique_round_trip",
    "tiny_data",
    "tiny_model",
    "tiny_recipe",
    "train_run",
    "write_recipe",
]

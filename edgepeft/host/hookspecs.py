"""Hook specifications: the whole contract between edgepeft and its plugins.

A plugin is a module (or object) with functions named after these hooks and decorated with
``edgepeft.hookimpl``. A plugin may implement any subset; each argument is optional, so an
implementation takes only the arguments it needs. See docs/hooks.md for examples.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer

    from edgepeft.api.context import StepState
    from edgepeft.host.registry import Registrar

hookspec = pluggy.HookspecMarker("edgepeft")

# ---------------------------------------------------------------------------------------------------
# Registration: called once when the plugin manager starts. The behaviour lives on what is registered.
# ---------------------------------------------------------------------------------------------------


@hookspec
def edgepeft_register_techniques(register: Registrar) -> None:
    """Register :class:`edgepeft.Technique` subclasses: ``register(MyTechnique)``.

    A technique changes a model (prune, factorize, share) or the training loss (distill, multitask).
    Its ``name`` is what recipes write in ``[[techniques]] name = ...``.
    """


@hookspec
def edgepeft_register_backends(register: Registrar) -> None:
    """Register :class:`edgepeft.Backend` subclasses: ``register(MyBackend)``.

    A backend exports a PyTorch model to a runtime's file, loads it, runs it and benchmarks it.
    Device profiles name backends in ``[runtime] backends``.
    """


@hookspec
def edgepeft_register_datasets(register: Registrar) -> None:
    """Register :class:`edgepeft.Dataset` subclasses: ``register(MyDataset)``.

    A data set yields train / validation / held-out test splits with labels and preprocessing.
    """


@hookspec
def edgepeft_register_models(register: Registrar) -> None:
    """Register :class:`edgepeft.ModelFamily` subclasses: ``register(MyModelFamily)``.

    A model family builds a ``torch.nn.Module`` from its options for a data set's input and classes.
    """


@hookspec
def edgepeft_register_devices(register: Registrar) -> None:
    """Register device profiles: ``register(path)`` with a ``.toml`` file or a folder of them.

    The profile's name is the file's stem. See devices/*.toml for the format.
    """


@hookspec
def edgepeft_register_commands(app: typer.Typer) -> None:
    """Add sub-commands to the ``edgepeft`` command line: ``@app.command() def mycmd(): ...``.

    Keep heavy imports inside the command functions so ``edgepeft --help`` stays fast.
    """


# ---------------------------------------------------------------------------------------------------
# Lifecycle: called during training, for loggers, trackers and policies (under torchrun, by rank 0 only).
# ---------------------------------------------------------------------------------------------------


@hookspec
def edgepeft_before_step(state: StepState) -> None:
    """Called before each optimizer step of every training phase (teacher and student).

    ``state`` carries ``phase``, ``epoch``, ``step`` (global, from 1) and ``model``.
    """


@hookspec
def edgepeft_after_step(state: StepState) -> None:
    """Called after each optimizer step, with ``state.loss`` and ``state.loss_terms`` filled in.

    Raising here stops training; the error names the plugin and this hook.
    """


@hookspec
def edgepeft_after_epoch(state: StepState) -> None:
    """Called after each epoch's validation pass, with ``state.val_score``, ``state.epochs`` (the
    phase's total) and ``state.loss`` (the epoch's mean) filled in.

    Raising here stops training; the error names the plugin and this hook.
    """


@hookspec
def edgepeft_run_finished(run_dir: Path, metrics: dict[str, Any]) -> None:
    """Called once ``edgepeft train`` has written ``run_dir`` and its ``metrics.json``; ``metrics`` holds
    that file's content as a dict (its keys are described in docs/formats.md)."""

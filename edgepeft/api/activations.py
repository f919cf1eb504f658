"""Reading a model's intermediate outputs (activations) by module name, through forward hooks."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from edgepeft.errors import ConfigError

if TYPE_CHECKING:
    import torch


class Activations(dict[str, Any]):
    """The latest output of each captured module, by ``model.named_modules()`` name, refreshed by every forward
    pass (a tuple or list output: its first element) with its autograd graph: a loss on a student's activations
    trains the student. Nothing is kept while ``torch.export`` traces; hooked until :meth:`close` or ``with``'s end."""

    def __init__(self, model: torch.nn.Module, names: Iterable[str]) -> None:
        super().__init__()
        self.names = list(names)
        modules = dict(model.named_modules())
        for name in self.names:
            if name not in modules:
                close = difflib.get_close_matches(name, modules, n=3)
                raise ConfigError(
                    f"{type(model).__name__} has no module named {name!r}",
                    fix=(f"Did you mean {', '.join(map(repr, close))}? " if close else "")
                    + "Names are those of model.named_modules(), e.g. 'layers.0' or 'encoder.layer.3.output'",
                )
        self._hook(model, modules)

    def _hook(self, model: torch.nn.Module, modules: dict[str, torch.nn.Module]) -> None:
        self.model = model
        self._modules = {name: modules[name] for name in self.names if name in modules}
        self._handles = [module.register_forward_hook(self._keeper(name)) for name, module in self._modules.items()]

    def _keeper(self, name: str) -> Any:
        def keep(module: torch.nn.Module, args: Any, output: Any) -> None:
            import torch

            if torch.compiler.is_compiling():  # an export traces the model: its outputs are not real tensors
                return
            self[name] = output[0] if isinstance(output, tuple | list) else output

        return keep

    def follow(self, model: torch.nn.Module) -> bool:
        """True when the hooks are on ``model`` as it is now; else (a compression stage swapped the model or a
        module) drop the kept outputs, hook ``model``'s modules of those names (a name it lacks, e.g. in a
        fake-quantized graph, stays missing here) and return False: its next forward pass fills this dict."""
        modules = dict(model.named_modules())
        if model is self.model and all(modules.get(name) is module for name, module in self._modules.items()):
            return True
        self.close()
        self.clear()
        self._hook(model, modules)
        return False

    def close(self) -> None:
        """Remove the hooks; the outputs already kept stay readable."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> Activations:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def capture(model: torch.nn.Module, names: Iterable[str]) -> Activations:
    """Start keeping the outputs of ``model``'s modules ``names`` (``model.named_modules()`` names) at every
    forward pass; a ConfigError names a module the model lacks. Use it as a context manager around one pass
    (``with edgepeft.capture(teacher, ["blocks.2"]) as inner: teacher(x)``), or keep it open across steps,
    calling :meth:`~Activations.follow` with the model being trained, and close it when done."""
    return Activations(model, names)

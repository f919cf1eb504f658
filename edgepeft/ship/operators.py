"""`edgepeft check`: before a long export, which of the model's operators each backend can convert."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgepeft.api.backend import Backend
from edgepeft.errors import ExportError

if TYPE_CHECKING:
    import torch


@dataclass
class OperatorReport:
    """The model's operators (with counts and the modules using them) and, per backend, those it lacks.

    ``unsupported[backend]`` is a list of operator names, or None when the backend cannot tell.
    """

    operators: Counter[str] = field(default_factory=Counter)
    modules: dict[str, list[str]] = field(default_factory=dict)
    unsupported: dict[str, list[str] | None] = field(default_factory=dict)


def _module_of(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else "(top level)"


def check_operators(
    model: torch.nn.Module, input_shape: tuple[int, ...], backends: list[type[Backend]], batch_size: int = 1
) -> OperatorReport:
    """Trace ``model`` once with ``torch.export`` and ask each backend which operators it cannot convert."""
    import torch

    example = torch.zeros(batch_size, *input_shape)
    try:
        program = torch.export.export(model.eval(), (example,))
    except Exception as exc:
        raise ExportError(
            f"torch.export cannot trace the model: {type(exc).__name__}: {str(exc).splitlines()[0]}",
            where=type(model).__name__,
            fix="Every backend starts from torch.export; make the model traceable (no data-dependent Python flow)",
        ) from exc
    report = OperatorReport()
    for node in program.graph.nodes:
        if node.op == "call_function" and hasattr(node.target, "_schema"):
            name = str(node.target)
            report.operators[name] += 1
            modules = report.modules.setdefault(name, [])
            if (module := _module_of(node)) not in modules:
                modules.append(module)
    for cls in backends:
        report.unsupported[cls.name] = cls().unsupported_ops(program)
    return report

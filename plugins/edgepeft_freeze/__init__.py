"""Technique plugin ``freeze``: parameters of the student that keep their starting values while it trains.

A student started from pretrained or teacher weights may keep some of them as they are (as ``lora`` keeps a
teacher's) and train only the rest: fewer parameters to fit a small data set, and faster steps. Freezing
applies to the student as it trains first; a compression stage's fine-tuning trains every parameter.
"""

from __future__ import annotations

import fnmatch
from typing import Any, ClassVar

from pydantic import Field

import edgepeft
from edgepeft import StrictModel, Technique


class FreezeOptions(StrictModel):
    parameters: list[str] = Field(
        min_length=1,
        description="Shell-style patterns of parameter names to freeze, e.g. ['*.word_embeddings.*'].",
    )


class Freeze(Technique):
    name = "freeze"
    description = "keep the named parameters at their starting values while the student trains"
    Options = FreezeOptions
    options: FreezeOptions
    example_options: ClassVar[dict[str, Any]] = {"parameters": ["*.0.weight"]}

    def setup(self, ctx: edgepeft.TrainContext) -> None:
        """Stop gradients to every parameter of the student a pattern matches; each pattern must match one."""
        names = dict(ctx.model.named_parameters())
        frozen: set[str] = set()
        for pattern in self.options.parameters:
            matched = [name for name in names if fnmatch.fnmatchcase(name, pattern)]
            if not matched:
                raise edgepeft.ConfigError(
                    f"freeze pattern {pattern!r} matches none of the student's parameters",
                    where="[[techniques]] freeze.parameters",
                    fix=f"Use a pattern over its parameter names, e.g. {', '.join(list(names)[:3])}",
                )
            frozen.update(matched)
        self.frozen = [name for name in names if name in frozen]
        for name in self.frozen:
            names[name].requires_grad_(False)


@edgepeft.hookimpl
def edgepeft_register_techniques(register: edgepeft.Registrar) -> None:
    register(Freeze)

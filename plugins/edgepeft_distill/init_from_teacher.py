"""Technique ``init-from-teacher``: the student starts from the trained teacher's weights where they fit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, NonNegativeInt

import edgepeft
from edgepeft import Compressed, StrictModel, Technique

if TYPE_CHECKING:
    import torch


class TeacherInitOptions(StrictModel):
    layers: dict[str, NonNegativeInt] = Field(
        {},
        description="Where the student's numbered blocks come from, e.g. {0 = 3}: the student's block 0 takes "
        "the teacher's block 3 (default: the same number).",
    )


class InitFromTeacher(Technique):
    name = "init-from-teacher"
    description = "start the student from the trained teacher's weights wherever names and shapes match"
    Options = TeacherInitOptions
    options: TeacherInitOptions

    def adapt(self, model: torch.nn.Module, ctx: edgepeft.TrainContext) -> Compressed:
        """The student, before it trains, with every tensor the trained teacher has under the same name (block
        numbers mapped by ``layers``) and shape copied in, e.g. a fine-tuned classification head and
        adapted attention; list it before techniques that reshape the student."""
        import torch

        if ctx.teacher is None:
            raise edgepeft.ConfigError("init-from-teacher needs a teacher", fix="Add a [teacher] section to the recipe")
        self._check_layers()
        teacher = ctx.teacher.state_dict()
        copied, skipped = 0, []
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                source = teacher.get(self._teacher_name(name))
                if source is None or source.shape != tensor.shape:
                    skipped.append(name)
                    continue
                tensor.copy_(source)
                copied += tensor.numel()
        if not copied:
            raise edgepeft.ConfigError(
                "the teacher has no tensor of the student's names and shapes: nothing to start from",
                where="[[techniques]] init-from-teacher",
                fix="Remove the technique, or use a student of the teacher's family",
            )
        report = {"values_copied": copied, "tensors_not_copied": len(skipped), "examples_not_copied": skipped[:5]}
        return Compressed(model=model, report=report)

    def _check_layers(self) -> None:
        bad = [key for key in self.options.layers if not key.isdigit()]
        if bad:
            raise edgepeft.ConfigError(
                f"init-from-teacher layers keys must be student block numbers, not {', '.join(map(repr, bad))}",
                where="[[techniques]] init-from-teacher.layers",
                fix="Write e.g. layers = {0 = 3, 1 = 5} (student block 0 from teacher block 3, counted from 0)",
            )

    def _teacher_name(self, name: str) -> str:
        parts = name.split(".")
        for i, part in enumerate(parts[1:], start=1):  # the first number after a list of blocks
            if part.isdigit():
                parts[i] = str(self.options.layers.get(part, int(part)))
                break
        return ".".join(parts)

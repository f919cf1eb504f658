"""Learning from the recipe's teacher: techniques ``distill`` (:mod:`.distill`), distillation of its outputs per
head and of its insides, and ``init-from-teacher`` (:mod:`.init_from_teacher`), the student started from its
weights."""

from __future__ import annotations

import edgepeft

from .distill import Distill
from .init_from_teacher import InitFromTeacher


@edgepeft.hookimpl
def edgepeft_register_techniques(register: edgepeft.Registrar) -> None:
    register(Distill)
    register(InitFromTeacher)

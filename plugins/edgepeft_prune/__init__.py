"""Technique ``prune`` (:mod:`.prune`): remove whole channels and neurons, or zero single weights, then recover."""

from __future__ import annotations

import edgepeft

from .prune import Prune


@edgepeft.hookimpl
def edgepeft_register_techniques(register: edgepeft.Registrar) -> None:
    register(Prune)

"""Model family ``recsys`` (:mod:`.family`): a wide embedding MLP for tabular data with categorical fields, one
output per head; its tables laid out by :mod:`.plan`, its torch modules in :mod:`.network`."""

from __future__ import annotations

import edgepeft

from .family import RecsysFamily


@edgepeft.hookimpl
def edgepeft_register_models(register: edgepeft.Registrar) -> None:
    register(RecsysFamily)

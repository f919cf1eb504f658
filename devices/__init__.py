"""Built-in device profiles: every ``*.toml`` in this folder, registered like any plugin's profiles."""

from pathlib import Path

import edgepeft


@edgepeft.hookimpl
def edgepeft_register_devices(register: edgepeft.Registrar) -> None:
    register(Path(__file__).parent)

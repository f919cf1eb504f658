"""The device kind: a profile extending a built-in device with its own budgets."""

from edgepeft.authoring.templates.kind import KindTemplate

DEVICE_PLUGIN = '''\
"""Device plugin ``$name``: registers every device profile in ``profiles/``.

What to change: ``profiles/$name.toml`` (a profile's name is its file's stem). It extends edgepeft's
built-in ``raspberry-pi-5`` profile and sets its own budgets; every key it leaves out is inherited. Add a
``.toml`` file to the folder for each further device. ``edgepeft devices show $name`` prints the resolved
profile; edgepeft's docs/devices.md describes every key.
"""

from pathlib import Path

import edgepeft

PROFILES = Path(__file__).parent / "profiles"


@edgepeft.hookimpl
def edgepeft_register_devices(register: edgepeft.Registrar) -> None:
    register(PROFILES)
'''

DEVICE_PROFILE = """\
# Inherits every key of the built-in profile named by `extends`; the keys below override it.
extends = "raspberry-pi-5"
description = "$name: a Raspberry Pi 5 with tighter budgets (say here what the device is)"

[budgets]
batch_size = 1
max_size_mb = 20
p95_latency_ms = 50
peak_memory_mb = 512
min_accuracy_retention = 0.95
"""

DEVICE_TESTS = '''\
"""The ``$name`` device profile: it validates, and carries the budgets its file writes."""

import tomllib

from edgepeft.testing import load_profile


def test_plugin_is_found_through_its_entry_point(manager):
    assert manager.info["$name"].distribution == "edgepeft-$name"
    assert manager.devices.entry("$name").plugin == "$name"


def test_profile_loads_with_the_budgets_it_writes(manager):
    profile = load_profile("$name", manager.devices)
    written = tomllib.loads(manager.devices.get("$name").read_text())
    assert profile.extends == written["extends"]
    assert profile.budgets.model_dump(include=set(written["budgets"])) == written["budgets"]
'''

DEVICE_USAGE = """\
`edgepeft devices show $name` prints the profile with everything it inherits; deploy a trained run
for it with `edgepeft deploy runs/<run> --device $name`."""


TEMPLATE = KindTemplate(
    summary="a device profile extending the built-in raspberry-pi-5 with its own budgets",
    plugin=DEVICE_PLUGIN,
    tests=DEVICE_TESTS,
    usage=DEVICE_USAGE,
    test_requirement="edgepeft",
    package_files={"profiles/$name.toml": DEVICE_PROFILE},
)

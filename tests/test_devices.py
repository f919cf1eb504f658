"""Device profiles: the built-ins, inheritance, user folders, and validation errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

import edgepeft
from edgepeft.api.device import load_profile
from edgepeft.errors import ConfigError, PluginError, UnknownNameError
from edgepeft.host.manager import default_manager

REQUIRED = {
    "android",
    "android-recommendation",
    "android-text",
    "raspberry-pi-5",
    "realtime-vision",
    "jetson-orin-nano",
    "x86-server",
    "cuda-workstation",
}

PHONE = """\
description = "test phone"

[hardware]
platform = "android"
arch = "arm64"
cores = 4
memory_mb = 2048
relative_speed = 0.5

[runtime]
backends = ["onnx"]
precisions = ["fp32"]
"""


def test_every_builtin_profile_validates(manager):
    assert set(manager.devices.names()) >= REQUIRED
    for name in manager.devices.names():
        profile = load_profile(name, manager.devices)
        assert profile.name == name and profile.runtime.backends


def test_extends_inherits_and_overrides(manager):
    base = load_profile("android", manager.devices)
    rec = load_profile("android-recommendation", manager.devices)
    assert rec.extends == "android"
    assert rec.budgets.batch_size == 100 and base.budgets.batch_size == 1
    assert rec.hardware == base.hardware and rec.runtime == base.runtime
    vision = load_profile("realtime-vision", manager.devices)
    assert vision.budgets.p95_latency_ms == pytest.approx(1000 / 30, abs=0.1)
    assert load_profile("jetson-orin-nano", manager.devices).hardware.accelerator == "cuda"


def _user_folder(tmp_path: Path, monkeypatch, files: dict[str, str]):
    for name, text in files.items():
        (tmp_path / f"{name}.toml").write_text(text)
    monkeypatch.setenv("EDGEPEFT_DEVICES_PATH", str(tmp_path))
    return default_manager()


def test_user_folder_adds_profiles_that_extend_builtins(tmp_path, monkeypatch):
    manager = _user_folder(
        tmp_path,
        monkeypatch,
        {
            "my-phone": PHONE,
            "my-phone-fast": 'description = "x"\nextends = "android"\n[budgets]\np95_latency_ms = 5\n',
        },
    )
    assert load_profile("my-phone", manager.devices).hardware.cores == 4
    fast = load_profile("my-phone-fast", manager.devices)
    assert fast.budgets.p95_latency_ms == 5 and fast.hardware.platform == "android"
    assert manager.devices.entry("my-phone").plugin.startswith("EDGEPEFT_DEVICES_PATH=")


def test_unknown_key_names_file_line_and_key(tmp_path, monkeypatch):
    manager = _user_folder(tmp_path, monkeypatch, {"bad": PHONE.replace("cores = 4", "cores = 4\ncorez = 8")})
    with pytest.raises(ConfigError) as e:
        load_profile("bad", manager.devices)
    assert f"{tmp_path / 'bad.toml'}:7: hardware.corez: unknown key" in e.value.message
    assert "allowed here: platform, arch, cores" in e.value.message


def test_wrong_type_names_file_line_and_key(tmp_path, monkeypatch):
    manager = _user_folder(tmp_path, monkeypatch, {"bad": PHONE.replace("cores = 4", 'cores = "four"')})
    with pytest.raises(ConfigError, match=r"bad\.toml:6: hardware\.cores: .*integer"):
        load_profile("bad", manager.devices)


def test_error_in_inherited_key_points_at_the_file_that_wrote_it(tmp_path, monkeypatch):
    manager = _user_folder(
        tmp_path,
        monkeypatch,
        {
            "parent": PHONE.replace('precisions = ["fp32"]', 'precisions = ["fp64"]'),
            "child": 'description = "c"\nextends = "parent"\n',
        },
    )
    with pytest.raises(ConfigError, match=r"parent\.toml:12: runtime\.precisions\.0"):
        load_profile("child", manager.devices)


def test_missing_required_key(tmp_path, monkeypatch):
    manager = _user_folder(tmp_path, monkeypatch, {"bad": PHONE.replace('arch = "arm64"\n', "")})
    with pytest.raises(ConfigError, match=r"bad\.toml:\d+: hardware\.arch: required key is missing"):
        load_profile("bad", manager.devices)


def test_missing_parent_suggests_names(tmp_path, monkeypatch):
    manager = _user_folder(tmp_path, monkeypatch, {"orphan": 'description = "o"\nextends = "androd"\n'})
    with pytest.raises(UnknownNameError) as e:
        load_profile("orphan", manager.devices)
    assert "orphan.toml:2" in e.value.message and "Did you mean 'android'" in e.value.message


def test_cyclic_extends_is_an_error(tmp_path, monkeypatch):
    manager = _user_folder(
        tmp_path,
        monkeypatch,
        {
            "a": 'description = "a"\nextends = "b"\n',
            "b": 'description = "b"\nextends = "a"\n',
        },
    )
    with pytest.raises(ConfigError, match=r"b\.toml:2: extends: .*cycle \(a -> b -> a\)"):
        load_profile("a", manager.devices)


def test_invalid_toml_names_the_file(tmp_path, monkeypatch):
    manager = _user_folder(tmp_path, monkeypatch, {"broken": "description = \n"})
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_profile("broken", manager.devices)


def test_duplicate_profile_name_names_both_sources(tmp_path, monkeypatch):
    manager = _user_folder(tmp_path, monkeypatch, {"android": PHONE})
    with pytest.raises(
        PluginError, match=r"device 'android' is registered by both plugin 'devices' and plugin 'EDGEPEFT"
    ):
        _ = manager.devices


def test_plugin_registers_profiles(tmp_path, manager, register_plugin):
    (tmp_path / "vendor-board.toml").write_text(PHONE)

    class Vendor:
        @edgepeft.hookimpl
        def edgepeft_register_devices(self, register):
            register(tmp_path / "vendor-board.toml")

    register_plugin(Vendor(), "vendor")
    assert manager.devices.entry("vendor-board").plugin == "vendor"
    assert load_profile("vendor-board", manager.devices).description == "test phone"


def test_profile_hash_changes_with_content(manager):
    a = load_profile("android", manager.devices)
    b = load_profile("android-recommendation", manager.devices)
    assert a.sha256() != b.sha256() and a.sha256() == load_profile("android", manager.devices).sha256()


def test_missing_devices_path_folder_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPEFT_DEVICES_PATH", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match=r"EDGEPEFT_DEVICES_PATH names .*nope', which is not a folder"):
        _ = default_manager().devices


def test_types_are_not_coerced_and_name_is_not_a_key(tmp_path, monkeypatch):
    manager = _user_folder(
        tmp_path,
        monkeypatch,
        {
            "quoted": PHONE + '\n[budgets]\np95_latency_ms = "30"\n',
            "boolean": PHONE + "\n[budgets]\nbatch_size = true\n",
            "named": 'name = "other"\n' + PHONE,
        },
    )
    with pytest.raises(ConfigError, match=r"quoted\.toml:\d+: budgets\.p95_latency_ms"):
        load_profile("quoted", manager.devices)
    with pytest.raises(ConfigError, match=r"boolean\.toml:\d+: budgets\.batch_size"):
        load_profile("boolean", manager.devices)
    with pytest.raises(ConfigError, match=r"named\.toml:1: name: unknown key"):
        load_profile("named", manager.devices)

"""Property-based tests: TOML locations for any recipe key, profile inheritance, and the manifest round trip."""

from __future__ import annotations

import string
from pathlib import Path

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgepeft.api.device import _merge
from edgepeft.artifacts import bundle
from edgepeft.artifacts.manifest import Manifest
from edgepeft.util.validation import toml_line

LEGACY_MANIFEST = Path(__file__).parent / "fixtures" / "legacy" / "bundle" / "manifest.json"

keys = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=8)
scalars = st.one_of(st.integers(-1000, 1000), st.booleans(), st.text(alphabet=string.ascii_letters, max_size=5))
tables = st.recursive(
    st.dictionaries(keys, scalars, min_size=1, max_size=4),
    lambda inner: st.dictionaries(keys, st.one_of(scalars, inner), min_size=1, max_size=4),
    max_leaves=12,
)


def _leaves(data: dict, prefix: tuple = ()) -> list[tuple[tuple, object]]:
    out = []
    for key, value in data.items():
        if isinstance(value, dict):
            out += _leaves(value, (*prefix, key))
        else:
            out.append(((*prefix, key), value))
    return out


@settings(max_examples=150, deadline=None, derandomize=True)
@given(tables)
def test_every_key_of_any_toml_document_is_located_on_its_own_line(data):
    text = tomli_w.dumps(data)
    lines = text.splitlines()
    for path, _ in _leaves(data):
        line = toml_line(text, list(path))
        assert line is not None
        assert lines[line - 1].split("=")[0].strip().strip('"') == path[-1]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(tables, tables)
def test_extends_merge_keeps_every_child_key_and_every_parent_key_it_does_not_override(parent, child):
    merged = _merge(parent, child)
    for path, value in _leaves(child):
        node = merged
        for key in path:
            node = node[key]
        assert node == value
    for path, value in _leaves(parent):
        if not _overridden(child, path):
            node = merged
            for key in path:
                node = node[key]
            assert node == value


def _overridden(child: dict, path: tuple) -> bool:
    """Whether ``child`` replaces the parent's value at ``path``: it sets that key itself, or sets a
    non-table value at one of its prefixes."""
    node: object = child
    for depth, key in enumerate(path):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
        if depth == len(path) - 1 or not isinstance(node, dict):
            return True
    return False


file_names = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=10).map(lambda s: s + ".bin")


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(file_names, st.binary(max_size=200), min_size=1, max_size=5), st.data())
def test_manifest_round_trip_lists_every_file_and_detects_any_change(tmp_path, files, data):
    import tempfile

    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    for name, content in files.items():
        (folder / name).write_bytes(content)
    template = Manifest.read(LEGACY_MANIFEST)
    model = template.model.model_copy(update={"file": sorted(files)[0]})
    bundle.finish(folder, template.model_copy(update={"model": model, "files": []}))
    manifest = bundle.read_manifest(folder)
    assert {f.path for f in manifest.files} == set(files)
    assert all(f.bytes == len(files[f.path]) for f in manifest.files)
    victim = data.draw(st.sampled_from(sorted(files)))
    (folder / victim).write_bytes(files[victim] + b"!")
    listed = bundle._listed_files(manifest, "m")
    assert listed[victim] != bundle.file_entries(folder)[sorted(files).index(victim)].sha256

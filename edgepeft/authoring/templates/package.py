"""The files every generated plugin package has: pyproject.toml, README.md and the tests' conftest.py."""

PYPROJECT = """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "edgepeft-$name"
version = "0.1.0"
description = "An edgepeft $kind plugin: $summary."
readme = "README.md"
requires-python = ">=3.11"
dependencies = [$dependencies]

[project.optional-dependencies]
test = ["$test_requirement", "pytest>=8"]

# edgepeft finds plugins through this entry-point group; the name ("$name") is what
# `edgepeft plugins check` and EDGEPEFT_DISABLE_PLUGINS refer to.
[project.entry-points.edgepeft]
$name = "edgepeft_$module"

[tool.setuptools.packages.find]
where = ["src"]
$package_data
[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.ruff]
line-length = 120
"""

PACKAGE_DATA = """
[tool.setuptools.package-data]
edgepeft_$module = [$patterns]
"""

README = """\
# edgepeft-$name

An edgepeft $kind plugin: $summary.

## Install and check

- `pip install -e .` (in the environment where edgepeft is installed) registers the plugin `$name` through
  its entry point; in a new environment add edgepeft's `-c constraints.txt`, or pip may pick a CUDA build of torch;
- `edgepeft plugins` lists it, from the distribution `edgepeft-$name`;
- `edgepeft plugins check $name` runs edgepeft's conformance checks on it (a device profile is validated;
  anything else is exercised on a tiny real task built from an installed data set, and the check says which);
- `pip install -e '.[test]'` adds pytest and what the tests need; `pytest` runs them (`tests/`).

Switch the plugin off without uninstalling it: `EDGEPEFT_DISABLE_PLUGINS=$name edgepeft ...`.

## Use it

$usage

## Make it yours

The plugin is `src/edgepeft_$module/__init__.py`; its docstring says what to change, and
`tests/test_$module.py` uses edgepeft's plugin-testing fixtures and helpers (`edgepeft.testing`).
edgepeft's `docs/hooks.md` describes every hook a plugin can implement and what it receives.
"""

CONFTEST = '''\
"""edgepeft's plugin-testing fixtures: ``manager``, ``register_plugin``, ``tiny_data`` and ``tiny_model``."""

pytest_plugins = ["edgepeft.testing"]
'''

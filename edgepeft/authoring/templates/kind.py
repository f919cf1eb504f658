"""What differs between the kinds of plugin that ``edgepeft plugin new`` writes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class KindTemplate:
    """What differs between kinds: the plugin module, its tests, and their lines in pyproject.toml and README."""

    summary: str
    """One line: the package's description, and the README's opening."""
    plugin: str
    """``src/edgepeft_<module>/__init__.py``."""
    tests: str
    """``tests/test_<module>.py``."""
    usage: str
    """README: how a user puts what the plugin registers to work."""
    test_requirement: str
    """The edgepeft requirement (with extras) the generated tests need."""
    dependencies: str = '"edgepeft"'
    """The package's run-time requirements, as TOML list items."""
    package_files: dict[str, str] = field(default_factory=dict)
    """Data files inside the package, by path relative to it; pyproject.toml ships them as package data."""

"""Optional packages a plugin needs, checked without importing them."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import ClassVar


class NeedsPackages:
    """Mixin for plugin classes: ``requires`` lists import names, ``install_hint`` says how to get them."""

    requires: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str] = ""

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when everything in ``requires`` is importable here, else what is missing and how to fix it."""
        missing = [m for m in cls.requires if not _importable(m)]
        if not missing:
            return None
        return f"missing {', '.join(missing)}; {cls.install_hint or 'install the packages it needs'}"

    @classmethod
    def package_versions(cls) -> dict[str, str]:
        """Installed versions of the distributions named in ``requires`` (for manifests)."""
        found = {}
        for module in cls.requires:
            try:
                found[module] = importlib.metadata.version(module)
            except importlib.metadata.PackageNotFoundError:
                continue
        return found


def _importable(module: str) -> bool:
    """Whether ``module`` (dotted names included) can be imported here, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a dotted name whose parent package is missing
        return False

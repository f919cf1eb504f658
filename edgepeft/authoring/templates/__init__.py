"""The files ``edgepeft plugin new`` writes, as :class:`string.Template` text: one module per kind of plugin
plus the package files they share.

Placeholders: ``$name`` (the plugin's name), ``$module`` (``name`` with ``_`` for ``-``), ``$class_name``
and ``$options_name`` (Python class names), plus, in the shared files, the per-kind text of :data:`KINDS`.
"""

from __future__ import annotations

from edgepeft.authoring.templates import backend, dataset, device, technique
from edgepeft.authoring.templates.kind import KindTemplate

KINDS: dict[str, KindTemplate] = {
    "technique": technique.TEMPLATE,
    "backend": backend.TEMPLATE,
    "dataset": dataset.TEMPLATE,
    "device": device.TEMPLATE,
}

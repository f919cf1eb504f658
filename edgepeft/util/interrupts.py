"""Ctrl-C that cannot be lost: the request is remembered, so an interrupt that a library swallowed while it
ran (some C extensions drop KeyboardInterrupt raised inside their callbacks) still stops the command before
anything is published."""

from __future__ import annotations

import signal
import threading
from typing import Any

_requested = False


def _handler(signum: int, frame: Any) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT through :func:`_handler` (main thread only; other threads cannot set handlers)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)


def check() -> None:
    """Raise KeyboardInterrupt if an interrupt was requested, even one that was swallowed on its way."""
    if _requested:
        raise KeyboardInterrupt

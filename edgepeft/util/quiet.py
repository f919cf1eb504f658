"""Keeping third-party libraries' informational chatter off the user's terminal."""

from __future__ import annotations

import logging

# torchao warns about optional CUDA kernels it cannot load on a CPU machine; torch's pytree about
# registrations torchao makes. Neither concerns the user.
NOISY_LOGGERS = ("torchao", "torch.utils._pytree")


def quiet_loggers(names: tuple[str, ...] = NOISY_LOGGERS) -> None:
    """Show only errors from the loggers ``names`` (call before importing the libraries)."""
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)

"""Pixel scaling shared by the image data sets."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def pixel_table(scale: float, offset: float) -> np.ndarray:
    """float32 ``pixel * scale + offset`` for every pixel value 0..255: index it with uint8 images."""
    import numpy as np

    return np.arange(256, dtype=np.float32) * np.float32(scale) + np.float32(offset)

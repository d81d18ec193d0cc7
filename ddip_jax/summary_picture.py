"""The summary picture: titled panels (input and layers) side by side."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from ddip_jax import image_io

_TITLE_HEIGHT = 18  # Pixels of the title strip above each summary panel.


_GAP = 4  # Pixels of white between summary panels.


def _fit_title(draw: ImageDraw.ImageDraw, title: str, font: Any, width: int) -> str:
  """Shortens `title` with an ellipsis until it fits in `width` pixels."""
  if draw.textlength(title, font=font) <= width:
    return title
  while title and draw.textlength(title + "...", font=font) > width:
    title = title[:-1]
  return title + "..." if title else ""


def make_summary(panels: Sequence[tuple[str, npt.ArrayLike]], *, height: int = 256) -> np.ndarray:
  """Lays out titled images side by side, for `summary.png`.

  Each image is resized to `height` keeping its aspect ratio (`image_io.resize_image`) and
  clipped to [0, 1]; gray images are shown as gray RGB. Panels are separated by a
  white gap; each has a white title strip above it, in Pillow's default font,
  shortened with '...' if wider than the panel.

  Args:
    panels: (title, image) pairs, image float (H, W), (H, W, 1) or (H, W, 3).
    height: pixel height of every image row.

  Returns:
    float32 (height + title strip, sum of widths + gaps, 3) in [0, 1].

  Raises:
    ValueError: no panels, a bad image shape, or height < 1.
  """
  if not panels:
    raise ValueError("make_summary needs at least one panel")
  if height < 1:
    raise ValueError(f"height must be positive, got {height}")
  images = []
  for title, img in panels:
    arr = image_io.check_image(img, what=f"panel {title!r}")
    arr = np.clip(np.nan_to_num(arr.astype(np.float32), nan=0.0), 0.0, 1.0)
    arr = arr if arr.ndim == 3 else arr[..., None]
    width = max(1, round(arr.shape[1] * height / arr.shape[0]))
    arr = image_io.resize_image(arr, (height, width))
    images.append(np.repeat(arr, 3, axis=-1) if arr.shape[-1] == 1 else arr)
  total_w = sum(a.shape[1] for a in images) + _GAP * (len(images) - 1)
  canvas = np.ones((_TITLE_HEIGHT + height, total_w, 3), np.float32)
  strip = Image.new("RGB", (total_w, _TITLE_HEIGHT), "white")
  draw = ImageDraw.Draw(strip)
  font = ImageFont.load_default()
  x = 0
  for (title, _), arr in zip(panels, images):
    w = arr.shape[1]
    canvas[_TITLE_HEIGHT:, x : x + w] = arr
    text = _fit_title(draw, str(title), font, w - 2)
    # Centred by hand: bitmap fonts (Pillow without FreeType) take no anchor.
    _, top, _, bottom = draw.textbbox((0, 0), text or " ", font=font)
    draw.text((x + 1, (_TITLE_HEIGHT - (bottom - top)) // 2 - top), text, fill="black", font=font)
    x += w + _GAP
  canvas[:_TITLE_HEIGHT] = np.asarray(strip, np.float32) / 255.0
  return canvas

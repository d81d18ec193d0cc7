"""The watermark's thin strokes inside a rough box (`stroke_hint`): a top-hat of one colour channel, thresholded.

A task helper of the watermark task (`watermark_io` reads the box and asks for its strokes).
"""

import chex
import numpy as np
from scipy import ndimage

from ddip_jax import hints

STROKE_POLARITIES = ('none', 'light', 'dark', 'auto')
# `stroke_hint` takes a colour channel over the grey level only when its contrast is this many times larger.
COLOUR_CHANNEL_MARGIN = 1.5


def tophat(channel: np.ndarray, width: int, polarity: str) -> np.ndarray:
  """How much each pixel stands out of its surroundings towards `polarity`, (H, W) >= 0.

  A grey-level top-hat with a disk of diameter `width`: 'light' is the image less
  its opening (thin bright lines), 'dark' its closing less the image.
  """
  r = (width - 1) / 2
  yy, xx = np.mgrid[-(width // 2) : width // 2 + 1, -(width // 2) : width // 2 + 1]
  disk = xx**2 + yy**2 <= r * r + r  # The rasterised disk of OpenCV's MORPH_ELLIPSE.
  if polarity == 'light':
    return channel - ndimage.grey_opening(channel, footprint=disk, mode='reflect')
  return ndimage.grey_closing(channel, footprint=disk, mode='reflect') - channel


def stroke_hint(image: np.ndarray, box: np.ndarray, *, polarity: str, width: int) -> tuple[np.ndarray, str]:
  """The pixels of a rough watermark box that belong to the watermark's thin strokes.

  A watermark of text and line art blends thin strokes of one colour into the
  photo; pixels of the box between the strokes are untouched. In the grey
  level (or a colour channel) where the watermark is lighter (or darker) than
  the photo, the strokes stand out of the top-hat with a disk wider than
  them. Of the grey level, the colour channels and the allowed polarities
  ('auto': both), the one whose top-hat is the strongest inside the box
  relative to outside it is used, a colour channel only if it beats the grey
  level by `COLOUR_CHANNEL_MARGIN` (a guess: say 'light' or 'dark' when you
  know); inside the box, its top-hat is cut at its Otsu threshold.

  Args:
    image: (H, W, 3) image in [0, 1].
    box: (H, W) in {0, 1}, 1 inside the rough box around the watermark.
    polarity: 'light', 'dark' or 'auto' (not 'none': the box is the hint then).
    width: disk diameter in pixels (odd, >= 3), wider than the strokes.

  Returns:
    (stroke mask (H, W) float32 in {0, 1}, inside the box; what was used, e.g. 'light (blue)').
  """
  chex.assert_rank([image, box], [3, 2])
  chex.assert_equal_shape_prefix([image, box], 2)
  if polarity not in STROKE_POLARITIES[1:]:
    raise ValueError(f'polarity must be one of {STROKE_POLARITIES[1:]}, got {polarity!r}')
  if width < 3 or width % 2 == 0:
    raise ValueError(f'width must be odd and >= 3, got {width}')
  inside = box > 0.5
  best, best_contrast, used = None, -np.inf, ''
  channels = {'grey': image.mean(axis=-1), 'red': image[..., 0], 'green': image[..., 1], 'blue': image[..., 2]}
  for channel_name, channel in channels.items():
    for p in (('light', 'dark') if polarity == 'auto' else (polarity,)):
      standing_out = tophat(channel.astype(np.float32), width, p)
      contrast = standing_out[inside].mean() - (standing_out[~inside].mean() if (~inside).any() else 0.0)
      if channel_name != 'grey':  # A colour channel only where it clearly beats the grey level's (coloured marks).
        contrast /= COLOUR_CHANNEL_MARGIN
      if contrast > best_contrast:
        best, best_contrast, used = standing_out, contrast, f'{p} ({channel_name})'
  strokes = inside & (best > hints.otsu(np.clip(best[inside], 0.0, 1.0)))
  return strokes.astype(np.float32), used

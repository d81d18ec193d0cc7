r"""Builds the watermark-removal demos from photos bundled with scikit-image.

  PYTHONPATH=. python scripts/make_watermark.py [--out_dir=data]

writes, all 128x128,
  watermark_<photo>.png        the photo under a semi-transparent watermark
  watermark_<photo>_clean.png  the photo itself (ground truth)
for photo in chelsea (configs/watermark.py), coffee and astronaut (with chelsea,
configs/watermark_many.py), and
  watermark_box.png            the hint: white inside a box around the watermark
(the watermark sits at the same place in every image). The watermark is the
text WATERMARK_TEXT in Pillow's default font under a ring logo, drawn as a
coverage map in [0, 1], and composited in float as
I = (1 - a c) J + a c colour with opacity a (demo: white, a = 0.5). scikit-image
is needed only here and by benchmarks/eval_watermark.py, which makes more
cases with the same functions; the PNGs are committed. Sources and licences:
data/README.md.
"""

from __future__ import annotations

import hashlib
import os
import sys

from absl import app
from absl import flags
import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Run as a plain script, so make the repository root importable.
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO_ROOT)
from ddip_jax import writing  # pylint: disable=g-import-not-at-top
from scripts import make_transparency  # pylint: disable=g-import-not-at-top
from scripts import sources  # pylint: disable=g-import-not-at-top

# --out_dir (default: data/) is the flag make_transparency defines, which this script shares.

SIZE = 128  # Side of every demo image (a multiple of 32 for the 5-scale generators).
WATERMARK_TEXT = '\u00a9 DDIP'
FONT_SIZE = 22  # Pillow's default font (Aileron Regular) at this size, for SIZE = 128.
RING = (0.5, 0.36, 0.11, 0.03)  # Logo ring: centre x, centre y, radius, stroke; fractions of the side.
TEXT_TOP = 0.52  # Top of the text line, as a fraction of the side; centred horizontally.
BOX_MARGIN = 4  # Pixels between the watermark and the hint box.
DEMO_PHOTOS = ('chelsea', 'coffee', 'astronaut')  # configs/watermark.py uses the first.
DEMO_COLOUR = (1.0, 1.0, 1.0)
DEMO_OPACITY = 0.5


def watermark_coverage(size: int = SIZE) -> np.ndarray:
  """The watermark's shape: a ring above a line of text, antialiased.

  Returns:
    float32 (size, size) in [0, 1], 1 where the watermark fully covers a pixel.
  """
  scale = 8  # Drawn 8x larger and reduced, for smooth edges at any size.
  big = size * scale
  canvas = Image.new('L', (big, big), 0)
  draw = ImageDraw.Draw(canvas)
  cx, cy, radius, stroke = (v * big for v in RING)
  draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), outline=255, width=round(stroke))
  font = ImageFont.load_default(size=FONT_SIZE * size / SIZE * scale)
  left, top, right, _ = draw.textbbox((0, 0), WATERMARK_TEXT, font=font)
  draw.text(((big - (right - left)) / 2 - left, TEXT_TOP * big - top), WATERMARK_TEXT, fill=255, font=font)
  coverage = np.asarray(canvas, np.float32) / 255.0
  return coverage.reshape(size, scale, size, scale).mean(axis=(1, 3))


def hint_box(coverage: np.ndarray, margin: int = BOX_MARGIN) -> np.ndarray:
  """White (1) inside the bounding box of the watermark grown by `margin` pixels.

  Returns:
    float32 (H, W) in {0, 1}.
  """
  rows = np.flatnonzero(coverage.max(axis=1) > 0)
  cols = np.flatnonzero(coverage.max(axis=0) > 0)
  box = np.zeros_like(coverage)
  h, w = coverage.shape
  box[
      max(rows[0] - margin, 0) : min(rows[-1] + margin + 1, h), max(cols[0] - margin, 0) : min(cols[-1] + margin + 1, w)
  ] = 1
  return box


def apply_watermark(
    clean: np.ndarray, coverage: np.ndarray, colour: tuple[float, float, float], opacity: float
) -> np.ndarray:
  """I = (1 - a) J + a colour with a = opacity * coverage, in float.

  Args:
    clean: (H, W, 3) photo J in [0, 1].
    coverage: (H, W) watermark shape in [0, 1].
    colour: RGB of the watermark in [0, 1].
    opacity: its opacity where the coverage is 1.

  Returns:
    float32 (H, W, 3).
  """
  a = (opacity * coverage)[..., None]
  return ((1 - a) * clean + a * np.asarray(colour, np.float32)).astype(np.float32)


# The evaluation set's photos (benchmarks/eval_watermark.py): name -> (file in skimage/data, crop box (left, top,
# right, bottom) at 4:3, RGB tint of a grey photo or None). Smooth: rocket (sky), coffee (saucer); detailed:
# astronaut, motorcycle; textures: brick, gravel.
PHOTOS_4x3 = {
    'chelsea': ('chelsea.png', (25, 0, 425, 300), None),
    'coffee': ('coffee.png', (0, 0, 600, 450), None),
    'astronaut': ('astronaut.png', (0, 64, 512, 448), None),
    'rocket': ('rocket.jpg', (0, 0, 568, 426), None),
    'motorcycle': ('motorcycle_left.png', (70, 0, 737, 500), None),
    'brick': ('brick.png', (0, 0, 512, 384), (1.0, 0.62, 0.5)),
    'gravel': ('gravel.png', (0, 64, 512, 448), (0.85, 0.8, 0.7)),
    'camera': ('camera.png', (0, 0, 512, 384), None),
}


def load_photo_4x3(name: str, shape: tuple[int, int] = (96, 128)) -> np.ndarray:
  """One of `PHOTOS_4x3` at `shape` (H, W), float32 in [0, 1]."""
  return sources.load_photo(*PHOTOS_4x3[name], shape)


def mark_coverage(
    shape: tuple[int, int],
    *,
    text: str = '',
    font_size: float = 16.0,
    bold: int = 0,
    centre: tuple[float, float] = (0.5, 0.5),
    angle: float = 0.0,
    logo: str = '',
    logo_size: float = 0.0,
) -> np.ndarray:
  """A watermark's shape for the evaluation set: a text line and/or a logo, antialiased.

  Args:
    shape: (H, W) of the image.
    text: the text, in Pillow's default font (Aileron Regular) of `font_size` px; `bold` > 0 thickens its
      strokes by that many px (Pillow's stroke_width, at the final size).
    centre: (x, y) of the mark's centre, fractions of the width and height.
    angle: rotation of the whole mark in degrees (counter-clockwise).
    logo: '' (none), 'ring' (a circle of stroke logo_size / 8), 'disc' (a filled circle) or 'badge' (a filled
      square with a ring cut out of it), `logo_size` px across, left of the text (or alone).

  Returns:
    float32 (H, W) in [0, 1], 1 where the mark fully covers a pixel.
  """
  scale = 8
  h, w = shape
  big_h, big_w = h * scale, w * scale
  canvas = Image.new('L', (big_w, big_h), 0)
  draw = ImageDraw.Draw(canvas)
  cx, cy = centre[0] * big_w, centre[1] * big_h
  font = ImageFont.load_default(size=font_size * scale)
  text_w = text_h = 0
  if text:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=bold * scale)
    text_w, text_h = right - left, bottom - top
  size = logo_size * scale
  gap = size * 0.25 if text and logo else 0
  x0 = cx - (text_w + (size + gap if logo else 0)) / 2
  if logo:
    box = (x0, cy - size / 2, x0 + size, cy + size / 2)
    if logo == 'ring':
      draw.ellipse(box, outline=255, width=max(scale, round(size / 8)))
    elif logo == 'disc':
      draw.ellipse(box, fill=255)
    elif logo == 'badge':
      draw.rectangle(box, fill=255)
      inset = size * 0.25
      draw.ellipse(
          (box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset),
          outline=0,
          width=max(scale, round(size / 10)),
      )
    else:
      raise ValueError(f'unknown logo {logo!r}')
  if text:
    tx = x0 + (size + gap if logo else 0)
    draw.text((tx - left, cy - text_h / 2 - top), text, fill=255, font=font, stroke_width=bold * scale, stroke_fill=255)
  if angle:
    canvas = canvas.rotate(angle, resample=Image.BILINEAR, center=(cx, cy))
  coverage = np.asarray(canvas, np.float32) / 255.0
  return coverage.reshape(h, scale, w, scale).mean(axis=(1, 3))


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  coverage = watermark_coverage()
  files = {'watermark_box.png': hint_box(coverage)}
  for name in DEMO_PHOTOS:
    clean = make_transparency.load_layer(name, SIZE)
    files[f'watermark_{name}.png'] = apply_watermark(clean, coverage, DEMO_COLOUR, DEMO_OPACITY)
    files[f'watermark_{name}_clean.png'] = clean
  for name, array in files.items():
    path = os.path.join(flags.FLAGS.out_dir, name)
    writing.save_image(path, array)
    with open(path, 'rb') as f:
      print(f'{name:32s} sha256 {hashlib.sha256(f.read()).hexdigest()}')


if __name__ == '__main__':
  app.run(main)

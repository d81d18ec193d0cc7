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
  box[max(rows[0] - margin, 0):min(rows[-1] + margin + 1, h), max(cols[0] - margin, 0):min(cols[-1] + margin + 1, w)] = 1
  return box


def apply_watermark(clean: np.ndarray, coverage: np.ndarray, colour: tuple[float, float, float],
                    opacity: float) -> np.ndarray:
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

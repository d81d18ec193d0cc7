r"""Builds the transparent-layer demos from photos bundled with scikit-image.

  PYTHONPATH=. python scripts/make_transparency.py [--out_dir=data]

writes
  transparency_layer1.png, transparency_layer2.png  the true layers R (cat), T (coffee)
  transparency_mix1.png, transparency_mix2.png      I_k = a_k R + (1 - a_k) T, a = (0.3, 0.65)
  textures_layer1.png, textures_layer2.png          two tinted textures (brick, grass)
  textures_mix.png                                  their average, (R + T) / 2
all 128x128 RGB. scikit-image is needed only here (and by
benchmarks/eval_transparency.py, which makes more mixtures with the same
functions); the PNGs are committed. Sources and licences: data/README.md.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
import numpy as np
from scipy import ndimage

# Run as a plain script, so make the repository root importable.
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO_ROOT)
from ddip_jax import writing  # pylint: disable=g-import-not-at-top
from scripts import sources  # pylint: disable=g-import-not-at-top

_OUT_DIR = flags.DEFINE_string('out_dir', os.path.join(_REPO_ROOT, 'data'), 'Where the PNGs are written.')

SIZE = 128  # Side of every layer and mixture (the 5-scale generators need multiples of 32).
# name -> (file in skimage/data, square crop box (left, top, right, bottom), RGB tint or None).
# Photos are cropped to a square around their subject; the grey textures are
# tinted so that each looks like what it is (and the two differ in colour).
SOURCES = {
    'chelsea': ('chelsea.png', (75, 0, 375, 300), None),
    'coffee': ('coffee.png', (100, 0, 500, 400), None),
    'astronaut': ('astronaut.png', (0, 0, 512, 512), None),
    'rocket': ('rocket.jpg', (107, 0, 534, 427), None),
    'brick': ('brick.png', (0, 0, 256, 256), (1.0, 0.6, 0.48)),
    'grass': ('grass.png', (128, 128, 384, 384), (0.62, 1.0, 0.42)),
    # The texture evaluation set's other textures (benchmarks/eval_transparency.py; not in the demos).
    'gravel': ('gravel.png', (0, 0, 256, 256), (0.75, 0.7, 1.0)),
    'text': ('text.png', (100, 0, 272, 172), (1.0, 0.9, 0.65)),
}
DEMO_PAIR = ('chelsea', 'coffee')  # (R, T) of configs/transparency.py.
DEMO_ALPHAS = (0.3, 0.65)
TEXTURE_PAIR = ('brick', 'grass')  # (R, T) of configs/textures.py.


def load_layer(name: str, size: int = SIZE) -> np.ndarray:
  """One of `SOURCES`, cropped, resized (LANCZOS in float) and tinted.

  Returns:
    float32 (size, size, 3) in [0, 1].
  """
  return sources.load_photo(*SOURCES[name], (size, size))


def uniform_mixtures(r: np.ndarray, t: np.ndarray, alphas: tuple[float, ...]) -> list[np.ndarray]:
  """I_k = a_k R + (1 - a_k) T with one scalar a_k per mixture."""
  return [(a * r + (1 - a) * t).astype(np.float32) for a in alphas]


def smooth_alpha(
    rng: np.random.Generator, shape: tuple[int, int], *, low: float = 0.2, high: float = 0.8
) -> np.ndarray:
  """A low-frequency alpha field: a random-direction ramp plus a Gaussian blob.

  Args:
    rng: random generator.
    shape: (H, W).
    low, high: the field is rescaled to exactly [low, high].

  Returns:
    float32 (H, W, 1).
  """
  h, w = shape
  yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing='ij')
  angle = rng.uniform(0, 2 * np.pi)
  ramp = np.cos(angle) * xx + np.sin(angle) * yy
  cy, cx = rng.uniform(-0.6, 0.6, size=2)
  radius = rng.uniform(0.3, 0.6)
  blob = rng.choice([-1.0, 1.0]) * 1.5 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
  field = ramp + blob
  field = (field - field.min()) / (field.max() - field.min())
  return (low + (high - low) * field)[..., None].astype(np.float32)


def realistic_mixtures(
    r: np.ndarray, t: np.ndarray, rng: np.random.Generator, *, blur_sigma: float = 1.5
) -> tuple[list[np.ndarray], tuple[np.ndarray, np.ndarray]]:
  """Two window-reflection-like mixtures: smooth alpha maps and a blurred reflection.

  I_k = A_k * blur(R) + (1 - A_k) * T, with A_1, A_2 independent `smooth_alpha`
  fields in [0.2, 0.8] and a Gaussian blur of `blur_sigma` pixels (a reflection
  is usually out of focus).

  Returns:
    (mixtures, truths): the two mixtures and the layers actually in them,
    (blur(R), T), all float32 (H, W, 3) in [0, 1].
  """
  blurred = ndimage.gaussian_filter(r, sigma=(blur_sigma, blur_sigma, 0), mode='reflect')
  alphas = [smooth_alpha(rng, r.shape[:2]) for _ in range(2)]
  mixtures = [(a * blurred + (1 - a) * t).astype(np.float32) for a in alphas]
  return mixtures, (blurred.astype(np.float32), t)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  r, t = (load_layer(n) for n in DEMO_PAIR)
  mix1, mix2 = uniform_mixtures(r, t, DEMO_ALPHAS)
  brick, grass = (load_layer(n) for n in TEXTURE_PAIR)
  files = {
      'transparency_layer1.png': r,
      'transparency_layer2.png': t,
      'transparency_mix1.png': mix1,
      'transparency_mix2.png': mix2,
      'textures_layer1.png': brick,
      'textures_layer2.png': grass,
      'textures_mix.png': (brick + grass) / 2,
  }
  for name, array in files.items():
    path = os.path.join(_OUT_DIR.value, name)
    writing.save_image(path, array)
    print(f'{name:26s} sha256 {sources.sha256(path)}')


if __name__ == '__main__':
  app.run(main)

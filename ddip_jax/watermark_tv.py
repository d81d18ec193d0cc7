"""The watermark's blend fitted by total variation, without a clean estimate (`fit_blend_tv`).

A task helper of the watermark task: `watermark_layers.compose` de-blends with it (`clean_from='fit_tv'`) and
`watermark_cut.find_mark` refines the colour of the mark it found with it.
"""

import numpy as np
from scipy import ndimage
from scipy import optimize

from ddip_jax import metrics as metrics_lib

# The blend fitted by total variation (`fit_blend_tv`): the coverage levels a pixel of the mark may take
# (its antialiased edges), the price of covering one pixel fully (in TV units, RGB L1), the alternations of
# the coverage and the blend, and the opacity range searched. Chosen on benchmarks/eval_watermark.py's set.
COVERAGE_LEVELS = np.array([0.0, 0.25, 0.5, 0.75, 1.0], np.float32)
COVERAGE_PRICE = 0.05
TV_ROUNDS = 3
TV_OPACITY = (0.1, 0.85)
_ICM_SWEEPS = 8


def deblend_alpha(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
  """(I - alpha w) / (1 - alpha), alpha (H, W) below 0.95, unclipped."""
  a = np.clip(alpha, 0.0, 0.95)[..., None]
  return (image - a * colour) / (1 - a)


def _total_variation(image: np.ndarray, region: np.ndarray) -> float:
  """Sum of |differences| (RGB L1) between 4-neighbours with at least one in `region`."""
  dx, dy = np.abs(np.diff(image, axis=1)).sum(-1), np.abs(np.diff(image, axis=0)).sum(-1)
  return float(dx[region[:, 1:] | region[:, :-1]].sum() + dy[region[1:] | region[:-1]].sum())


def _fit_opacity_colour(image: np.ndarray, coverage: np.ndarray, box: np.ndarray, start: np.ndarray) -> np.ndarray:
  """(a, w0, w1, w2) in TV_OPACITY x [0, 1]^3 that minimise the box's total variation once de-blended."""

  def tv(p):
    return _total_variation(deblend_alpha(image, p[0] * coverage, p[1:]), box)

  start = np.clip(start, [TV_OPACITY[0], 0, 0, 0], [TV_OPACITY[1], 1, 1, 1])
  return optimize.minimize(
      tv,
      start,
      method='Powell',
      bounds=[TV_OPACITY] + [(0.0, 1.0)] * 3,
      options={'xtol': 1e-3, 'ftol': 1e-4, 'maxiter': 2000},
  ).x


def _coverage_icm(
    image: np.ndarray, opacity: float, colour: np.ndarray, coverage: np.ndarray, region: np.ndarray
) -> np.ndarray:
  """Each pixel of `region` takes the coverage level that best joins its de-blended colour to its neighbours'.

  Iterated conditional modes on a checkerboard: a pixel's cost for a level is the RGB L1 distance of its
  de-blended colour to its 4 neighbours' current ones, plus COVERAGE_PRICE times the level.
  """
  height, width = coverage.shape
  candidates = np.stack(
      [deblend_alpha(image, np.full((height, width), opacity * level, np.float32), colour) for level in COVERAGE_LEVELS]
  )
  parity = np.add.outer(np.arange(height), np.arange(width)) % 2
  for _ in range(_ICM_SWEEPS):
    changed = 0
    for side in (0, 1):
      current = deblend_alpha(image, opacity * coverage, colour)
      padded = np.pad(current, ((1, 1), (1, 1), (0, 0)), mode='edge')
      cost = COVERAGE_PRICE * COVERAGE_LEVELS[:, None, None] * np.ones((1, height, width), np.float32)
      for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        neighbour = padded[dy : dy + height, dx : dx + width]
        cost = cost + np.abs(candidates - neighbour[None]).sum(-1)
      best = COVERAGE_LEVELS[np.argmin(cost, axis=0)]
      update = region & (parity == side)
      changed += int((coverage[update] != best[update]).sum())
      coverage = np.where(update, best, coverage).astype(np.float32)
    if not changed:
      break
  return coverage


def fit_blend_tv(image: np.ndarray, strokes: np.ndarray, box: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
  """The mark's opacity a, colour w and per-pixel coverage c, with I = (1 - a c) J + a c w, without a clean estimate.

  A watermark of one colour and opacity over a photo: de-blended with the right (a, w, c), the box's total
  variation drops (the strokes' edges vanish), with a wrong one it grows (new edges). Starting from the
  strokes (c = 1 there), (a, w) minimise the box's TV (w a colour in [0, 1]: a and w cannot trade off),
  then c takes `COVERAGE_LEVELS` on the strokes and one pixel around them (`_coverage_icm`: the marks'
  antialiased edges), alternately (`TV_ROUNDS`); from a white and a black start, the lower TV +
  COVERAGE_PRICE * sum(c) wins.

  Args:
    image: (H, W, 3) watermarked image.
    strokes: (H, W) in {0, 1}, the mark's pixels found in the box.
    box: (H, W) in {0, 1}, the user's box.

  Returns:
    (a, w (3,), c (H, W) in [0, 1], 0 outside the strokes' 1-pixel neighbourhood).
  """
  rows, cols = metrics_lib.bounding_box(ndimage.binary_dilation(box > 0.5))  # Work on the box's rectangle.
  full_shape = strokes.shape
  image, strokes, box = image[rows, cols], strokes[rows, cols], box[rows, cols]
  inside = box > 0.5
  region = ndimage.binary_dilation(strokes > 0.5) & inside
  best = None
  for start in (np.array([0.5, 1.0, 1.0, 1.0]), np.array([0.5, 0.0, 0.0, 0.0])):
    coverage = (strokes > 0.5).astype(np.float32)
    params = _fit_opacity_colour(image, coverage, inside, start)
    for _ in range(TV_ROUNDS):
      coverage = _coverage_icm(image, float(params[0]), params[1:].astype(np.float32), coverage, region)
      params = _fit_opacity_colour(image, coverage, inside, params)
    energy = _total_variation(deblend_alpha(image, params[0] * coverage, params[1:]), inside) + COVERAGE_PRICE * float(
        coverage.sum()
    )
    if best is None or energy < best[0]:
      best = (energy, float(params[0]), params[1:].astype(np.float32), coverage)
  coverage = np.zeros(full_shape, np.float32)
  coverage[rows, cols] = best[3]
  return best[1], best[2], coverage

"""The watermark inside a rough box, found by a graph cut of its blend (`find_mark`), and its self-check.

A task helper of the watermark task (`watermark.clean_from='cut'`; `watermark_io` asks for the mark,
`watermark_layers.compose` de-blends with it and `cut_check` decides whether to keep the input).

A mark of one colour w and opacity a blends into the photo P as I = (1 - a c) P + a c w, c the mark's
coverage of a pixel. De-blended with the right (a, w, c), J = (I - a c w) / (1 - a c), the mark's edges
vanish from the box and its colours look like its surroundings'. For a given (a, w) the coverage c (levels
`LEVELS`, the antialiased edges) minimises, over the box,

  E(c) = TV(J(c)) + PRICE * (a / 0.5) * sum c + LABEL_SMOOTHNESS * sum |c_p - c_q| + DATA_WEIGHT * sum -log p_ring(J_p(c_p))

(TV: RGB L1 differences of 4-neighbours; p_ring: a smoothed colour histogram of a ring around the box; a
de-blended colour out of [0, 1] costs `OUT_OF_RANGE`; outside the box c = 0): alpha-expansion, each move an
exact minimum cut (the TV term of a move is submodular up to a truncation: |x - k y| + |k x - y| >=
(1 + k) |x - y|), by `scipy.sparse.csgraph.maximum_flow`. Filled logos are found as well as strokes, and a
colour mark by its colour, not by a top-hat of one channel.

(a, w) are not known: every corner of the RGB cube as w times `GRID_OPACITIES` is tried, then the
`REFINED_COLOURS` best colours are each refined (`watermark_tv.fit_blend_tv` on the mask it found, the
opacity chosen again) and the best refined one is the mark (an orange or grey mark is no corner). A
candidate's score is how much lower E gets in the box, less how much the same (a, w) lowers the TV energy
on the ring around the box (unmarked photo) per pixel times the box's area: de-blending towards black
also flattens a dark texture, and that gain is no mark's. `specificity` = score / box gain: about 1 for a
mark the photo does not explain, low where the photo's own texture is what the cut removes; `cut_check`
falls back to the input below `MIN_SPECIFICITY`. A white or black blend also explains a photo's
highlights or shadows: `ambiguity` (the best grid colour far from the mark's over its score) near 1 says
that a far colour (black for a white mark) explains the box about as well, and `cut_check` refuses a light
or dark mark above `MAX_AMBIGUITY`. Constants chosen on benchmarks/eval_watermark.py's set
(docs/watermark.md).
"""

import dataclasses
import itertools
from typing import Any

import numpy as np
from scipy import ndimage
from scipy import sparse
from scipy.sparse import csgraph

from ddip_jax import metrics as metrics_lib
from ddip_jax import watermark_tv

# A pixel's coverage: none, half (the mark's antialiased edge) or full. With quarter levels too (until
# 2026-12-06) the cut also explained smooth shading by faint coverage over large areas (a silver mark over a
# night sky: the sky darkened), and 4 of 64 held-out results ended below their input; with these, none
# (docs/watermark.md).
LEVELS = np.array([0.0, 0.5, 1.0], np.float32)
PRICE = 0.05
PRICE_OPACITY = 0.5  # The price is PRICE * a / PRICE_OPACITY per unit of coverage: a price of a c, not of c.
LABEL_SMOOTHNESS = 0.1
DATA_WEIGHT = 0.1
OUT_OF_RANGE = 5.0
HISTOGRAM_BINS = 16
HISTOGRAM_SIGMA = 1.0
RING_WIDTH = 8
GRID_COLOURS = tuple(np.array(c, np.float32) for c in itertools.product((0.0, 1.0), repeat=3))
GRID_OPACITIES = (0.3, 0.45, 0.6)
EXPANSION_CYCLES = 2
# The self-check (`cut_check`): the share of the box's gain the ring does not explain, the fewest covered
# pixels, the least gain per covered pixel (5 times the price: a mark-free photo's edges give less), and the
# clean estimate C (Double-DIP's inpainting of the mark) must be closer to the result than to the input on
# the mark, by at least this factor.
MIN_SPECIFICITY = 0.6
MIN_COVERED = 8.0
MIN_GAIN_PER_PIXEL = 0.25
MAX_TO_CLEAN = 1.0
# The colours refined (`find_mark`): the best grid colours, each refined on the mask it found. An orange
# or grey mark is none of the cube's corners; the corner nearest it may not win before refinement.
REFINED_COLOURS = 3
# A light or dark (achromatic: channels within ACHROMATIC_SPREAD) mark is refused when a grid colour far
# from it (farther than FAR_COLOUR, e.g. black or blue for white) scores more than MAX_AMBIGUITY of its
# score: the photo's own highlights or shadows then explain the box about as well as the mark does.
ACHROMATIC_SPREAD = 0.15
FAR_COLOUR = 1.2
MAX_AMBIGUITY = 0.4
# Capacities of the cut are integers: energies times this.
_SCALE = 1e4
_ORDER = (2, 1, 0, 2)  # Expansion targets in turn: full, half, none, full.


@dataclasses.dataclass
class Mark:
  """The mark `find_mark` found: opacity a, colour w (3,), coverage c (H, W) in LEVELS, and its scores."""

  opacity: float
  colour: np.ndarray
  coverage: np.ndarray
  box_gain: float
  ring_gain: float
  ambiguity: float = 0.0  # The best far grid colour's score over this mark's (`find_mark`).

  @property
  def specificity(self) -> float:
    return (self.box_gain - self.ring_gain) / self.box_gain if self.box_gain > 0 else 0.0

  def info(self) -> dict[str, Any]:
    return {
        'opacity': round(float(self.opacity), 4),
        'colour': [round(float(c), 4) for c in self.colour],
        'covered_pixels': round(float(self.coverage.sum()), 2),
        'box_gain': round(float(self.box_gain), 3),
        'ring_gain': round(float(self.ring_gain), 3),
        'specificity': round(float(self.specificity), 4),
        'ambiguity': round(float(self.ambiguity), 4),
    }


def _candidates(image: np.ndarray, opacity: float, colour: np.ndarray) -> np.ndarray:
  """(L, H, W, 3): the image de-blended at every coverage level."""
  alpha = np.clip(opacity * LEVELS, 0.0, 0.95)[:, None, None, None]
  return (image[None] - alpha * colour) / (1 - alpha)


def ring_histogram(image: np.ndarray, box: np.ndarray) -> np.ndarray:
  """-log of the smoothed colour histogram (bins^3) of a RING_WIDTH ring around the box."""
  inside = box > 0.5
  ring = ndimage.binary_dilation(inside, iterations=RING_WIDTH) & ~inside
  if not ring.any():
    ring = ~inside if (~inside).any() else inside
  q = np.clip((image[ring] * HISTOGRAM_BINS).astype(int), 0, HISTOGRAM_BINS - 1)
  hist = np.zeros((HISTOGRAM_BINS,) * 3)
  np.add.at(hist, (q[:, 0], q[:, 1], q[:, 2]), 1.0)
  hist = ndimage.gaussian_filter(hist, HISTOGRAM_SIGMA, mode='constant')
  return -np.log(hist / hist.sum() + 1e-6)


def data_term(candidates: np.ndarray, nll: np.ndarray) -> np.ndarray:
  """(L, H, W): DATA_WEIGHT * (-log p_ring of each level's de-blended colour, + OUT_OF_RANGE out of [0, 1])."""
  q = np.clip((candidates * HISTOGRAM_BINS).astype(int), 0, HISTOGRAM_BINS - 1)
  out = ((candidates < -0.02) | (candidates > 1.02)).any(-1)
  return DATA_WEIGHT * (nll[q[..., 0], q[..., 1], q[..., 2]] + OUT_OF_RANGE * out)


def _pairs(shape: tuple[int, int]):
  height, width = shape
  yield (slice(0, height - 1), slice(None)), (slice(1, height), slice(None))
  yield (slice(None), slice(0, width - 1)), (slice(None), slice(1, width))


def energy(
    candidates: np.ndarray,
    labels: np.ndarray,
    region: np.ndarray,
    data: np.ndarray | None,
    smooth: float,
    price: float = PRICE,
) -> float:
  """E of the level indices `labels` (0 outside `region`) as in the module docstring."""
  rows, cols = np.indices(labels.shape)
  current = candidates[labels, rows, cols]
  level = LEVELS[labels] * region
  total = price * float(level.sum())
  for p, q in _pairs(labels.shape):
    touching = region[p] | region[q]
    total += float(np.abs(current[p] - current[q]).sum(-1)[touching].sum())
    total += smooth * float(np.abs(level[p] - level[q]).sum())
  if data is not None:
    total += float(data[labels, rows, cols][region].sum())
  return total


def _min_cut(n: int, unary: np.ndarray, src: np.ndarray, dst: np.ndarray, weight: np.ndarray) -> np.ndarray:
  """x in {0, 1}^n minimising sum unary x + sum weight [x_src = 0, x_dst = 1] (weight >= 0): True where 1."""
  source, sink = n, n + 1
  pos = unary > 0
  rows = np.concatenate([src, np.full(pos.sum(), source), np.flatnonzero(~pos)])
  cols = np.concatenate([dst, np.flatnonzero(pos), np.full((~pos).sum(), sink)])
  caps = np.round(np.concatenate([weight, unary[pos], -unary[~pos]]) * _SCALE).astype(np.int32)
  keep = caps > 0
  graph = sparse.csr_matrix((caps[keep], (rows[keep], cols[keep])), shape=(n + 2, n + 2))
  flow = csgraph.maximum_flow(graph, source, sink, method='dinic').flow
  residual = (graph - flow).tocsr()
  residual.data[residual.data < 0] = 0
  residual.eliminate_zeros()
  reached = csgraph.breadth_first_order(residual, source, directed=True, return_predecessors=False)
  in_source = np.zeros(n + 2, bool)
  in_source[reached] = True
  return ~in_source[:n]


def expansion(
    candidates: np.ndarray, region: np.ndarray, data: np.ndarray | None, smooth: float, price: float = PRICE
) -> tuple[np.ndarray, float]:
  """Level indices (H, W) of low E inside `region` (0 outside) by alpha-expansion, and their E."""
  shape = region.shape
  rows, cols = np.indices(shape)
  labels = np.zeros(shape, int)
  index = -np.ones(shape, int)
  n = int(region.sum())
  index[region] = np.arange(n)
  flat = np.flatnonzero(region.ravel())
  best = energy(candidates, labels, region, data, smooth, price)
  for _ in range(EXPANSION_CYCLES):
    improved = False
    for target in _ORDER:
      current, new = candidates[labels, rows, cols], candidates[target]
      level = LEVELS[labels] * region
      unary = price * (LEVELS[target] - LEVELS[labels].ravel()[flat])
      if data is not None:
        unary = unary + data[target].ravel()[flat] - data[labels.ravel()[flat], flat // shape[1], flat % shape[1]]
      srcs, dsts, weights = [], [], []
      for p, q in _pairs(shape):
        lp, lq, lt = level[p], level[q], LEVELS[target]
        e00 = np.abs(current[p] - current[q]).sum(-1) + smooth * np.abs(lp - lq)
        e01 = np.abs(current[p] - new[q]).sum(-1) + smooth * np.abs(lp - lt)
        e10 = np.abs(new[p] - current[q]).sum(-1) + smooth * np.abs(lt - lq)
        e11 = np.minimum(np.abs(new[p] - new[q]).sum(-1), e01 + e10 - e00)  # Truncated to a submodular move.
        rp, rq = region[p], region[q]
        ip, iq = index[p], index[q]
        both = rp & rq
        np.add.at(unary, ip[both], (e10 - e00)[both])
        np.add.at(unary, iq[both], (e11 - e10)[both])
        srcs.append(ip[both])
        dsts.append(iq[both])
        weights.append(np.maximum(e01 + e10 - e00 - e11, 0.0)[both])
        only = rp & ~rq  # The neighbour outside keeps its level.
        np.add.at(unary, ip[only], (e10 - e00)[only])
        only = ~rp & rq
        np.add.at(unary, iq[only], (e01 - e00)[only])
      move = _min_cut(n, unary, np.concatenate(srcs), np.concatenate(dsts), np.concatenate(weights))
      trial = labels.copy()
      trial.ravel()[flat[move]] = target
      value = energy(candidates, trial, region, data, smooth, price)
      if value < best - 1e-6:
        labels, best, improved = trial, value, True
    if not improved:
      break
  return labels, best


def _score(image: np.ndarray, box: np.ndarray, ring: np.ndarray, nll: np.ndarray, opacity: float, colour: np.ndarray):
  """(box gain - ring gain scaled to the box's area, box gain, scaled ring gain, level indices in the box)."""
  candidates = _candidates(image, opacity, colour)
  data = data_term(candidates, nll)
  zero = np.zeros(box.shape, int)
  price = PRICE * opacity / PRICE_OPACITY
  labels, value = expansion(candidates, box, data, LABEL_SMOOTHNESS, price)
  box_gain = energy(candidates, zero, box, data, LABEL_SMOOTHNESS, price) - value
  ring_gain = 0.0
  if ring.any():
    _, ring_value = expansion(candidates, ring, None, LABEL_SMOOTHNESS, price)
    ring_gain = (energy(candidates, zero, ring, None, LABEL_SMOOTHNESS, price) - ring_value) * box.sum() / ring.sum()
  return box_gain - ring_gain, box_gain, ring_gain, labels


def find_mark(image: np.ndarray, box: np.ndarray) -> Mark:
  """The mark's opacity, colour and coverage inside the user's box (module docstring).

  Args:
    image: (H, W, 3) watermarked image in [0, 1].
    box: (H, W) in {0, 1}, the user's box around the mark.

  Returns:
    The `Mark` of the best-scoring candidate (its coverage 0 outside the box).
  """
  inside = box > 0.5
  rows, cols = metrics_lib.bounding_box(ndimage.binary_dilation(inside, iterations=RING_WIDTH + 2))
  crop = image[rows, cols].astype(np.float32)
  crop_box = inside[rows, cols]
  ring = ndimage.binary_dilation(crop_box, iterations=RING_WIDTH) & ~crop_box
  nll = ring_histogram(crop, crop_box)
  per_colour = []  # (result, opacity, colour): each grid colour at its best opacity.
  for colour in GRID_COLOURS:
    scored = [(_score(crop, crop_box, ring, nll, a, colour), a, colour) for a in GRID_OPACITIES]
    per_colour.append(max(scored, key=lambda entry: entry[0][0]))
  per_colour.sort(key=lambda entry: -entry[0][0])
  best = None
  for (_, _, _, labels), opacity, colour in per_colour[:REFINED_COLOURS]:
    mask = np.zeros(image.shape[:2], np.float32)
    mask[rows, cols] = LEVELS[labels] > 0.3
    if mask.any():  # Refine the colour on the mask it found, then choose the opacity again.
      fitted_opacity, colour, _ = watermark_tv.fit_blend_tv(image, mask, box)
      colour = np.asarray(colour, np.float32)
      opacities = sorted({*GRID_OPACITIES, round(float(fitted_opacity), 3)})
      candidate = max(((_score(crop, crop_box, ring, nll, a, colour), a) for a in opacities), key=lambda x: x[0][0])
      if best is None or candidate[0][0] > best[0][0]:
        best = (*candidate, colour)
  if best is None:  # No grid colour covered a pixel.
    best = per_colour[0]
  (score, box_gain, ring_gain, labels), opacity, colour = best
  far = [entry[0][0] for entry in per_colour if np.linalg.norm(entry[2] - colour) > FAR_COLOUR]
  ambiguity = max(far) / score if far and score > 0 else 0.0
  coverage = np.zeros(image.shape[:2], np.float32)
  coverage[rows, cols] = LEVELS[labels]
  return Mark(
      float(opacity), np.asarray(colour, np.float32), coverage, float(box_gain), float(ring_gain), float(ambiguity)
  )


def remove(image: np.ndarray, mark: Mark) -> np.ndarray:
  """The image de-blended with the mark, clipped to [0, 1]."""
  return np.clip(watermark_tv.deblend_alpha(image, mark.opacity * mark.coverage, mark.colour), 0.0, 1.0).astype(
      np.float32
  )


def cut_check(image: np.ndarray, result: np.ndarray, clean: np.ndarray | None, mark: Mark) -> dict[str, Any]:
  """Whether the removal by `find_mark`'s mark can be trusted, without ground truth.

  The mark must cover some pixels (MIN_COVERED), lower the box's energy far more than the same blend lowers
  the unmarked ring's (specificity >= MIN_SPECIFICITY) and by MIN_GAIN_PER_PIXEL per covered pixel, and, on the mark, the result must be closer to the
  clean estimate C (Double-DIP's inpainting of the mark) than the input is (MAX_TO_CLEAN).

  Returns:
    {'passed', 'reasons' (the failed checks), 'specificity', 'covered_pixels', 'gain_per_pixel', 'to_clean'}.
  """
  on = mark.coverage > 0.3
  to_clean = None
  if clean is not None and on.any():
    before = float(np.abs(image - clean).sum(-1)[on].mean())
    after = float(np.abs(result - clean).sum(-1)[on].mean())
    to_clean = after / before if before > 0 else 1.0
  reasons = []
  covered = float(mark.coverage.sum())
  per_pixel = mark.box_gain / covered if covered > 0 else 0.0
  if covered < MIN_COVERED:
    reasons.append(f'no mark found in the box ({covered:.1f} covered pixels < {MIN_COVERED})')
  elif per_pixel < MIN_GAIN_PER_PIXEL:
    reasons.append(f"the mark found barely lowers the box's energy ({per_pixel:.2f} < {MIN_GAIN_PER_PIXEL} a pixel)")
  if mark.specificity < MIN_SPECIFICITY:
    reasons.append(
        f'the blend found explains the photo around the box too (specificity {mark.specificity:.2f} < '
        f'{MIN_SPECIFICITY})'
    )
  if np.ptp(mark.colour) <= ACHROMATIC_SPREAD and mark.ambiguity > MAX_AMBIGUITY:
    reasons.append(
        f"a light or dark mark that the photo's own highlights or shadows explain nearly as well (a far colour "
        f'scores {mark.ambiguity:.2f} of its score > {MAX_AMBIGUITY})'
    )
  if to_clean is not None and to_clean > MAX_TO_CLEAN:
    reasons.append(f'the result is further from the clean estimate C than the input on the mark ({to_clean:.2f})')
  return {
      'passed': not reasons,
      'reasons': reasons,
      'specificity': round(float(mark.specificity), 4),
      'covered_pixels': round(covered, 2),
      'gain_per_pixel': round(per_pixel, 4),
      'to_clean': None if to_clean is None else round(to_clean, 4),
      'ambiguity': round(float(mark.ambiguity), 4),
  }

"""Exact unmixing of two mixtures I_k = a_k R + (1 - a_k) T with scalar alphas, and the alpha searches.

With one scalar weight per mixture the model is linear and invertible: once
a_1 != a_2 are known, `unmix` solves the two mixtures for R and T. The alphas
are searched (`refine_alphas` near a start, `search_alphas` over the whole
range, `refine_from_both` both) to minimise the edge overlap
(`losses.gradient_correlation`) of the unmixed layers; `out_of_range_fraction`
says whether the model fits (`choose_finalisation`). No ground truth is used.
The task (`tasks/transparency.py`) puts these together with its generators.
"""

import functools
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ddip_jax import image_io
from ddip_jax import losses
from ddip_jax import metrics as metrics_lib

# unmix_select='fit': the one-alpha-per-mixture model is taken to fit when at
# most FIT_TOLERANCE of the unmixed layers' values leave [0, 1] by more than
# FIT_MARGIN plus the 8-bit rounding that the unmixing amplifies. Chosen on
# the evaluation in docs/transparency.md: uniform mixtures left 0 values out,
# mixtures with spatially varying alphas 0.05-10% (the generators' layers were
# better where more than 1% were out).
FIT_MARGIN = 0.05
FIT_TOLERANCE = 1e-2


def alpha_from_unit(a: jax.Array) -> jax.Array:
  """The official mapping of a value in [0, 1] to a mixing weight in [0.05, 0.95]."""
  return a * 0.9 + 0.05


def unmix(mixtures: jax.Array, alphas: jax.Array) -> tuple[jax.Array, jax.Array]:
  """R and T solved exactly from I_k = a_k R + (1 - a_k) T, k = 1, 2 (a_1 != a_2).

  Args:
    mixtures: (2, H, W, C) the two mixtures.
    alphas: (2,) the mixing weights a_1, a_2 of R.

  Returns:
    (R, T), each (H, W, C), not clipped.
  """
  chex.assert_rank(mixtures, 4)
  chex.assert_shape(alphas, (2,))
  (i1, i2), (a1, a2) = mixtures, alphas
  return ((1 - a2) * i1 - (1 - a1) * i2) / (a1 - a2), (a1 * i2 - a2 * i1) / (a1 - a2)


def refine_alphas(
    mixtures: jax.Array, alphas: jax.Array, *, radius: float, min_gap: float, grid: int = 21, rounds: int = 3
) -> jax.Array:
  """Alphas near `alphas` whose exact unmixing gives layers with the least shared edges.

  A coarse-to-fine grid search of `losses.gradient_correlation(R, T)` over
  (a_1, a_2), (R, T) = `unmix(mixtures, (a_1, a_2))` (not clipped: clipping
  would hide the other layer's edges where they overshoot): round 1
  covers +-`radius` around `alphas` with `grid` x `grid` points, each later
  round +-2 grid steps around the best so far. Alphas stay in [0.05, 0.95]
  (the official range) and at least `min_gap` apart, on the side of a_1 - a_2
  they start on (so R stays the layer weighted by a_k).

  Args:
    mixtures: (2, H, W, C) the two mixtures, H, W >= 8.
    alphas: (2,) start, e.g. the generators' estimate.
    radius: half-width of the first round's search box.
    min_gap: smallest |a_1 - a_2| tried (the unmixing divides by it).
    grid: points per axis and round.
    rounds: number of rounds.

  Returns:
    (2,) the refined alphas.
  """
  chex.assert_rank(mixtures, 4)
  chex.assert_shape(alphas, (2,))
  sign = jnp.where(alphas[0] >= alphas[1], 1.0, -1.0)
  low, high = alpha_from_unit(0.0), alpha_from_unit(1.0)

  def score(pair):
    r, t = unmix(mixtures, pair)
    value = losses.gradient_correlation(r[None], t[None])
    feasible = sign * (pair[0] - pair[1]) >= min_gap
    return jnp.where(feasible, value, jnp.inf)

  best, half = jnp.asarray(alphas, jnp.float32), radius
  offsets = jnp.linspace(-1.0, 1.0, grid)
  for _ in range(rounds):
    a1, a2 = jnp.meshgrid(best[0] + half * offsets, best[1] + half * offsets, indexing='ij')
    pairs = jnp.clip(jnp.stack([a1.ravel(), a2.ravel()], axis=1), low, high)
    scores = jax.lax.map(score, pairs)
    best = jnp.where(jnp.isfinite(jnp.min(scores)), pairs[jnp.argmin(scores)], best)
    half = 4 * half / (grid - 1)
  return best


def search_alphas(mixtures: jax.Array, *, min_gap: float, grid: int = 31, rounds: int = 3) -> jax.Array:
  """`refine_alphas` over the whole official range: needs no start, so no generator.

  Starts at (0.5, 0.5) with radius 0.45, i.e. every (a_1, a_2) in [0.05, 0.95]^2
  with a_1 - a_2 >= `min_gap`; (a_1, a_2) and (1 - a_1, 1 - a_2) give the same
  two layers with R and T swapped, so this side covers every unmixing.

  Args:
    mixtures: (2, H, W, C) the two mixtures, H, W >= 8.
    min_gap: smallest |a_1 - a_2| tried.
    grid: points per axis and round (the first round's step is 0.9 / (grid - 1)).
    rounds: number of rounds.

  Returns:
    (2,) the alphas, a_1 > a_2.
  """
  return refine_alphas(
      mixtures, jnp.asarray([0.5, 0.5], jnp.float32), radius=0.45, min_gap=min_gap, grid=grid, rounds=rounds
  )


def choose_finalisation(report: dict[str, dict[str, Any]], mode: str, select: str) -> str:
  """Candidate `mode` of `finalise_by_unmixing`'s report, or 'generators'.

  `select` 'loss': `mode` only if its objective is lower; 'always': whenever
  it was tried (the scalar-alpha model taken as exact: the unmixing then
  reproduces both mixtures, which the generators' layers do not); 'fit':
  whenever its `out_of_range_fraction` is at most `FIT_TOLERANCE` (the model
  fits these mixtures; spatially varying alphas leave the other layer in
  each unmixed one, beyond [0, 1] in places), or, where the report says,
  whenever its 'model_fits' (one additive mixture: `colour_plane_fits`).
  """
  if mode not in report:
    return 'generators'
  keep = {
      'always': True,
      'loss': report[mode]['objective'] < report['generators']['objective'],
      'fit': report[mode].get('model_fits', report[mode].get('out_of_range', 1.0) <= FIT_TOLERANCE),
  }[select]
  return mode if keep else 'generators'


def out_of_range_fraction(layers: tuple[np.ndarray, np.ndarray], alphas: jax.Array) -> float:
  """The share of the unmixed layers' values beyond [0, 1] by more than the model allows.

  The allowance is `FIT_MARGIN` plus one 8-bit level times the unmixing's
  gain on rounding errors, max(|1 - a_1| + |1 - a_2|, |a_1| + |a_2|) / |a_1 - a_2|.

  Args:
    layers: (R, T) of `unmix`, not clipped, (H, W, C) each.
    alphas: (2,) the alphas they were unmixed with.

  Returns:
    A fraction in [0, 1].
  """
  a1, a2 = (float(a) for a in alphas)
  gain = max(abs(1 - a1) + abs(1 - a2), abs(a1) + abs(a2)) / abs(a1 - a2)
  margin = FIT_MARGIN + gain / 255
  values = np.stack(layers)
  return float(np.mean((values < -margin) | (values > 1 + margin)))


_refine_jit = jax.jit(refine_alphas, static_argnames=('radius', 'min_gap', 'grid', 'rounds'))
_search_jit = jax.jit(search_alphas, static_argnames=('min_gap', 'grid', 'rounds'))
_edge_overlap_jit = jax.jit(
    lambda mixtures, pair: losses.gradient_correlation(*(x[None] for x in unmix(mixtures, pair)))
)
# The alpha searches run on the mixtures shrunk to at most this side: scalar
# alphas need no more pixels, and the search's cost grows with them.
SEARCH_SIDE = 256


def refine_from_both(
    full: np.ndarray, learned: jax.Array, *, radius: float, min_gap: float
) -> tuple[jax.Array, dict[str, Any]]:
  """The alphas of least edge overlap from two searches: near the learned ones and over the whole range.

  `refine_alphas` started at the generators' alphas can stay in a wrong
  basin when they are far off; `search_alphas` needs no start. Both minimise
  `losses.gradient_correlation` of the unmixed layers, on the mixtures shrunk
  to at most `SEARCH_SIDE`; the lower value wins (no ground truth). The whole
  range search's alphas are turned to the learned ones' side (a -> 1 - a),
  so that layer 1 stays the generators' R.

  Args:
    full: (2, H, W, 3) the mixtures at full size.
    learned: (2,) the generators' alphas.
    radius: `refine_alphas`' search box around `learned`.
    min_gap: smallest |a_1 - a_2| tried.

  Returns:
    ((2,) the alphas, {'edge_overlap': {'near_learned', 'whole_range'}: the two
    searches' values, 'refined_from': the winner}).
  """
  mixtures = jnp.asarray(np.stack([image_io.working_image(m, SEARCH_SIDE)[0] for m in full]))
  found = {
      'near_learned': _refine_jit(mixtures, learned, radius=radius, min_gap=min_gap),
      'whole_range': _search_jit(mixtures, min_gap=min_gap),
  }
  if float(learned[0]) < float(learned[1]):
    found['whole_range'] = 1.0 - found['whole_range']
  overlap = {name: float(_edge_overlap_jit(mixtures, pair)) for name, pair in found.items()}
  best = min(overlap, key=overlap.get)
  return found[best], {'edge_overlap': overlap, 'refined_from': best}


def whole_range_alphas(full: np.ndarray, *, min_gap: float) -> tuple[jax.Array, float]:
  """`search_alphas` on the mixtures shrunk to at most `SEARCH_SIDE` (as `refine_from_both`), and its edge overlap.

  Returns:
    ((2,) the alphas, a_1 > a_2; `losses.gradient_correlation` of their unmixing).
  """
  mixtures = jnp.asarray(np.stack([image_io.working_image(m, SEARCH_SIDE)[0] for m in full]))
  found = _search_jit(mixtures, min_gap=min_gap)
  return found, float(_edge_overlap_jit(mixtures, found))


# Spatially varying weights: I_k = A_k(x) R + (1 - A_k(x)) T with smooth maps
# A_k, fitted jointly with the layers (`smooth_alpha_unmix`). Where A_1 ~ A_2
# the two mixtures are the same image and only the priors separate the layers:
# sparse gradients (L1) for one layer, smooth (L2 gradients) for the other, as
# a reflection is usually out of focus; both assignments are tried and the
# lower objective wins. Chosen in docs/transparency.md.
SMOOTH_ALPHA_GRID = 4  # The maps are a GRID x GRID grid of logits, bilinearly interpolated.
SMOOTH_ALPHA_STEPS = 1000
SMOOTH_ALPHA_LEARNING_RATE = 3e-3
SPARSE_GRADIENT_WEIGHT = 1e-4
SMOOTH_GRADIENT_WEIGHT = 1e-2
# Continuation (graduated priors): before the SMOOTH_ALPHA_STEPS at
# SMOOTH_GRADIENT_WEIGHT, the fit runs CONTINUATION_STEPS at each of these
# smooth-gradient weights, from strong to weak. A smooth layer forced nearly
# flat sends every edge to the sharp one, which puts the maps in the basin of
# the layers' true split; from the scalar unmixing the final objective alone
# stays in a worse local minimum (the continuation reached lower final
# objectives and better layers on the pairs checked, docs/transparency.md).
SMOOTH_GRADIENT_CONTINUATION = (100.0, 10.0, 1.0, 0.1)
CONTINUATION_STEPS = 500


def _gradients(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  return jnp.diff(x, axis=0), jnp.diff(x, axis=1)


def _smooth_alpha_objective(
    params: dict[str, jax.Array],
    mixtures: jax.Array,
    smooth_is_r: jax.Array,
    smooth_weight: jax.Array | float = SMOOTH_GRADIENT_WEIGHT,
) -> jax.Array:
  """Data term of both mixtures + sparse gradients of one layer + smooth gradients (`smooth_weight`) of the other."""
  maps = smooth_alpha_maps(params['alpha_logits'], mixtures.shape[1:3])
  data = jnp.mean((maps * params['r'][None] + (1 - maps) * params['t'][None] - mixtures) ** 2)
  sparse = [sum(jnp.mean(jnp.abs(g)) for g in _gradients(x)) for x in (params['r'], params['t'])]
  smooth = [sum(jnp.mean(g**2) for g in _gradients(x)) for x in (params['r'], params['t'])]
  pick = jnp.stack([smooth_is_r, 1.0 - smooth_is_r])  # (is R smooth, is T smooth)
  return (
      data
      + SPARSE_GRADIENT_WEIGHT * (pick[1] * sparse[0] + pick[0] * sparse[1])
      + smooth_weight * (pick[0] * smooth[0] + pick[1] * smooth[1])
  )


def smooth_alpha_maps(logits: jax.Array, shape: tuple[int, int]) -> jax.Array:
  """Weights in [0.05, 0.95] from logits, bilinearly interpolated.

  (2, g, g) logits (one map per mixture) give (2, H, W, 1); (2, g, g, C) (one
  map per mixture and colour channel) give (2, H, W, C).
  """
  if logits.ndim == 3:
    logits = logits[..., None]
  grid = jax.image.resize(logits, (logits.shape[0], *shape, logits.shape[-1]), 'linear')
  return alpha_from_unit(jax.nn.sigmoid(grid))


@functools.partial(jax.jit, static_argnames=('steps',))
def _fit_smooth_alphas(
    params: dict[str, jax.Array],
    mixtures: jax.Array,
    smooth_is_r: jax.Array,
    smooth_weight: jax.Array,
    steps: int,
) -> tuple[dict[str, jax.Array], jax.Array]:
  """`steps` Adam steps on `_smooth_alpha_objective` (fresh optimizer state); the layers kept in [0, 1]."""
  optimizer = optax.adam(SMOOTH_ALPHA_LEARNING_RATE)

  def step(_, carry):
    params, state = carry
    grads = jax.grad(_smooth_alpha_objective)(params, mixtures, smooth_is_r, smooth_weight)
    updates, state = optimizer.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    return {**params, 'r': jnp.clip(params['r'], 0, 1), 't': jnp.clip(params['t'], 0, 1)}, state

  params, _ = jax.lax.fori_loop(0, steps, step, (params, optimizer.init(params)))
  return params, _smooth_alpha_objective(params, mixtures, smooth_is_r, smooth_weight)


def _fit_with_continuation(
    params: dict[str, jax.Array], mixtures: jax.Array, smooth_is_r: float
) -> tuple[dict[str, jax.Array], jax.Array]:
  """`_fit_smooth_alphas` through `SMOOTH_GRADIENT_CONTINUATION`, then `SMOOTH_ALPHA_STEPS` at the final weight."""
  stages = [(w, CONTINUATION_STEPS) for w in SMOOTH_GRADIENT_CONTINUATION]
  for weight, steps in [*stages, (SMOOTH_GRADIENT_WEIGHT, SMOOTH_ALPHA_STEPS)]:
    params, objective = _fit_smooth_alphas(params, mixtures, jnp.float32(smooth_is_r), jnp.float32(weight), steps)
  return params, objective


def smooth_alpha_unmix(
    full: np.ndarray, alphas: jax.Array, *, per_channel: bool = False
) -> tuple[tuple[np.ndarray, np.ndarray], dict[str, Any]]:
  """R, T and smooth weight maps A_1, A_2 fitted to I_k = A_k R + (1 - A_k) T, started at a scalar unmixing.

  The layers start as `unmix(full, alphas)` clipped to [0, 1], the maps as
  the constants `alphas`; Adam minimises the mean squared error of both
  mixtures plus `SPARSE_GRADIENT_WEIGHT` times the L1 norm of one layer's
  gradients and a weight times the squared norm of the other's, the weight
  stepped down through `SMOOTH_GRADIENT_CONTINUATION` (`CONTINUATION_STEPS`
  each) to `SMOOTH_GRADIENT_WEIGHT` (`SMOOTH_ALPHA_STEPS`), for each choice
  of the smooth layer; the lower final objective wins. Deterministic; no
  ground truth.

  Args:
    full: (2, H, W, 3) the mixtures, H, W >= 2.
    alphas: (2,) the scalar unmixing's weights of R, a_1 != a_2.
    per_channel: one map per mixture and colour channel (tinted glass) instead
      of one per mixture.

  Returns:
    ((R, T) float32 (H, W, 3) in [0, 1], {'smooth_layer': 1 or 2, 'objectives': [R smooth, T smooth],
    'alpha_maps_mean': [mean A_1, mean A_2], 'alpha_logits': (2, g, g) or (2, g, g, 3) for
    `smooth_alpha_maps`}).
  """
  chex.assert_rank(full, 4)
  mixtures = jnp.asarray(full, jnp.float32)
  start = [jnp.clip(x, 0.0, 1.0) for x in unmix(mixtures, alphas)]
  unit = (jnp.clip(jnp.asarray(alphas, jnp.float32), 0.051, 0.949) - 0.05) / 0.9
  grid = (2, SMOOTH_ALPHA_GRID, SMOOTH_ALPHA_GRID, *((mixtures.shape[-1],) if per_channel else ()))
  logits = jnp.broadcast_to(jnp.reshape(jnp.log(unit / (1 - unit)), (2,) + (1,) * (len(grid) - 1)), grid)
  fits = [
      _fit_with_continuation({'r': start[0], 't': start[1], 'alpha_logits': logits}, mixtures, s) for s in (1.0, 0.0)
  ]
  objectives = [float(f[1]) for f in fits]
  best = int(np.argmin(objectives))
  params = fits[best][0]
  maps = smooth_alpha_maps(params['alpha_logits'], mixtures.shape[1:3])
  info = {
      'smooth_layer': best + 1,
      'objectives': objectives,
      'alpha_maps_mean': [float(m) for m in jnp.mean(maps, axis=(1, 2, 3))],
      'alpha_logits': params['alpha_logits'],
  }
  return (np.asarray(params['r']), np.asarray(params['t'])), info


# unmix='varying' keeps the scalar unmixing only where it fits exactly: at most
# this share of its values beyond [0, 1] (uniform mixtures left none, mixtures
# with spatially varying weights 0.05-10%, docs/transparency.md); elsewhere
# `smooth_alpha_unmix` starts from it.
EXACT_FIT_TOLERANCE = 1e-4
# The smooth-weight fit runs on the mixtures shrunk to at most this side (its
# 2 x 3000 Adam steps at full size would take hours on a 12-megapixel photo); its
# layers and maps are then resized to full size.
VARYING_SIDE = 512
# The smooth-weight fit is run with one map per mixture and with one per
# mixture and colour channel (tinted glass, a polariser: the weights differ per
# channel); the lower final objective wins. It chose the model the mixtures
# were made with on 10 of 12 runs, and the other two were within 0.1 dB
# (docs/transparency.md).
SMOOTH_ALPHA_PER_CHANNEL = (False, True)


def varying_unmix(
    full: np.ndarray,
    *,
    min_gap: float,
    truths: list[np.ndarray] | None = None,
    per_channel: tuple[bool, ...] = SMOOTH_ALPHA_PER_CHANNEL,
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, dict[str, Any], str]:
  """Two mixtures unmixed with no generator: scalar weights where they fit exactly, else smooth weight maps.

  The scalar weights are `whole_range_alphas`; their unmixing is kept if
  `out_of_range_fraction` <= `EXACT_FIT_TOLERANCE` ('refined'), else the layers
  and maps of `smooth_alpha_unmix` started from it ('smooth_alphas'; fitted at
  most `VARYING_SIDE` px wide, then resized to full size), with one map per
  mixture and with one per mixture and colour channel: the lower final
  objective wins.

  Args:
    full: (2, H, W, 3) the mixtures.
    min_gap: smallest |a_1 - a_2| the search tries.
    truths: the true layers, for the report only (never for the choice), or None.
    per_channel: `smooth_alpha_unmix`'s map models tried (False: one map per
      mixture, True: one per mixture and colour channel); the lowest final
      objective wins.

  Returns:
    ((R, T) in [0, 1], the weights of R: (2, 1, 1, 1) scalars or (2, H, W, 1 or 3) maps,
    {candidate: {...}[, 'ground_truth']}, the chosen candidate's name).
  """
  alphas, overlap = whole_range_alphas(full, min_gap=min_gap)
  unmixed = tuple(np.asarray(x) for x in unmix(jnp.asarray(full), alphas))
  out = out_of_range_fraction(unmixed, alphas)
  layers = {'refined': tuple(np.clip(x, 0.0, 1.0) for x in unmixed)}
  weights = np.reshape(np.asarray(alphas), (2, 1, 1, 1))
  report = {'refined': {'alphas': [float(a) for a in alphas], 'out_of_range': out, 'edge_overlap': overlap}}
  name = 'refined'
  if out > EXACT_FIT_TOLERANCE:
    name = 'smooth_alphas'
    shape = full.shape[1:3]
    small = np.stack([image_io.working_image(m, VARYING_SIDE)[0] for m in full])
    fits = {pc: smooth_alpha_unmix(small, alphas, per_channel=pc) for pc in per_channel}
    best = min(fits, key=lambda pc: min(fits[pc][1]['objectives']))
    fitted, report[name] = fits[best]
    report[name].update(
        per_channel=best, objective_by_maps={str(pc): min(f[1]['objectives']) for pc, f in fits.items()}
    )
    layers[name] = tuple(x if x.shape[:2] == shape else image_io.resize_image(x, shape) for x in fitted)
    weights = np.asarray(smooth_alpha_maps(report[name].pop('alpha_logits'), shape))
  if truths is not None:
    for candidate, pair in layers.items():
      report[candidate]['ground_truth'] = metrics_lib.layer_pair_scores(pair, tuple(truths))
  return layers[name], weights, report, name

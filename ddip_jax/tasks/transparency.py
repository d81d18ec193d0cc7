"""Transparent layer separation: two layers R (`layer1`) and T (`layer2`).

Two variants, chosen by `transparency.mixture`:

'two_mixtures' (the paper's reflection separation): two images of the same
  layers, I_k = alpha_k * R + (1 - alpha_k) * T for k = 1, 2 (`image`, `image2`),
  alphas unknown. Generators R and T (3 channels) and alpha1, alpha2:
    loss = MSE(alpha_1 R + (1 - alpha_1) T, I_1) + MSE(alpha_2 R + (1 - alpha_2) T, I_2)
           + w_excl * Exclusion(R, T)
           + [it < prior_steps: w_prior * (MSE(alpha_1, 0.5) + MSE(alpha_2, 0.5))]
  alpha_k = 0.9 * a + 0.05, in [0.05, 0.95], where a (in (0, 1)) is, by
  `transparency.alpha`: 'generator' the alpha DIP's output at the centre pixel
  (official); 'scalar' the sigmoid of one learnable number; 'map' the alpha
  DIP's whole output, a spatially varying alpha (real reflections).
  The best result by reconstruction PSNR of I_1 is kept. With scalar alphas the
  model is linear and invertible, so `transparency.unmix` can finalise the
  layers by solving the two mixtures exactly for R and T with the learned
  alphas ('learned'), or with the alphas that minimise the edge overlap
  (`losses.gradient_correlation`) of the unmixed layers, searched near the
  learned ones and over the whole range ('refined'); the unmixed layers
  replace the generators' if they lower the loss above (without the prior),
  always, or where they stay in [0, 1] (the model fits, 'fit')
  (`unmix_select`). No ground truth is used.

'additive' (the paper's texture separation): one image I = R + T, e.g. two
  textures averaged, so 2R and 2T estimate the layers:
    loss = L1(R + T, I) + w_excl * Exclusion(R, T)
  The best result by reconstruction PSNR of I is kept.

Both variants optionally perturb the noise every iteration (segmentation's
schedule, `sigma_step`) and train on the 8 flips/rotations of noise and image
(`augment`, see `ddip_jax/augment.py`); every generator has its own noise.
"""

import dataclasses
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ddip_jax import augment
from ddip_jax import config_check
from ddip_jax import engine
from ddip_jax import image_io
from ddip_jax import losses
from ddip_jax import metrics as metrics_lib
from ddip_jax import models
from ddip_jax import outputs
from ddip_jax import resume

MIXTURES = ('two_mixtures', 'additive')
ALPHA_MODES = ('generator', 'scalar', 'map')
UNMIX_MODES = ('none', 'learned', 'refined')
UNMIX_SELECT = ('loss', 'always', 'fit')
# unmix_select='fit': the one-alpha-per-mixture model is taken to fit when at
# most FIT_TOLERANCE of the unmixed layers' values leave [0, 1] by more than
# FIT_MARGIN plus the 8-bit rounding that the unmixing amplifies. Chosen on
# the evaluation in docs/transparency.md: uniform mixtures left 0 values out,
# mixtures with spatially varying alphas 0.05-10% (the generators' layers were
# better where more than 1% were out).
FIT_MARGIN = 0.05
FIT_TOLERANCE = 1e-2
LAYERS = ('reflection', 'transmission')
ALPHAS = ('alpha1', 'alpha2')
# The additive demo mixes two layers as their average, so 2R and 2T are the
# layer estimates compared with the ground truth (and shown as previews).
ADDITIVE_LAYER_SCALE = 2.0


def alpha_from_unit(a: jax.Array) -> jax.Array:
  """The official mapping of a value in [0, 1] to a mixing weight in [0.05, 0.95]."""
  return a * 0.9 + 0.05


def centre_pixel(x: jax.Array) -> jax.Array:
  """x[:, H // 2, W // 2, :] of an NHWC map, kept as (N, 1, 1, C)."""
  h, w = x.shape[1] // 2, x.shape[2] // 2
  return x[:, h:h + 1, w:w + 1, :]


class AlphaScalar(nn.Module):
  """A learnable mixing weight: alpha = 0.9 * sigmoid(logit) + 0.05, 0.5 at init."""

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    """Returns (1, 1, 1, 1); `z` only gives the engine something to call it with."""
    del z
    logit = self.param('logit', nn.initializers.zeros, ())
    return jnp.reshape(alpha_from_unit(jax.nn.sigmoid(logit)), (1, 1, 1, 1))


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


def refine_alphas(mixtures: jax.Array, alphas: jax.Array, *, radius: float, min_gap: float,
                  grid: int = 21, rounds: int = 3) -> jax.Array:
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
  return refine_alphas(mixtures, jnp.asarray([0.5, 0.5], jnp.float32), radius=0.45, min_gap=min_gap, grid=grid,
                       rounds=rounds)


def reconstruction_exclusion(r: jax.Array, t: jax.Array, alphas: list[jax.Array], images: jax.Array,
                             exclusion_weight: float) -> tuple[jax.Array, list[jax.Array]]:
  """The two-mixture loss without the alpha prior, and the recompositions.

  Args:
    r, t: (N, H, W, 3) the layers.
    alphas: two weights of R, each broadcastable to r: (N, 1, 1, 1) or (N, H, W, 1).
    images: (2, N, H, W, 3) the mixtures.
    exclusion_weight: weight of `losses.exclusion_loss(r, t)`.

  Returns:
    (sum_k MSE(a_k R + (1 - a_k) T, I_k) + exclusion_weight * Exclusion(R, T),
    [the two recompositions]).
  """
  recons = [losses.blend(a, r, t) for a in alphas]
  loss = sum(losses.mse(recon, img) for recon, img in zip(recons, images))
  return loss + exclusion_weight * losses.exclusion_loss(r, t), recons


def build_problem(config: ml_collections.ConfigDict, mixtures: np.ndarray, key: jax.Array) -> engine.Problem:
  """The layer-separation problem for one or two mixtures.

  Args:
    config: full config (`generator` and `transparency` sections are read).
    mixtures: (K, H, W, 3) float in [0, 1], the working-resolution inputs;
      K = 2 for 'two_mixtures', K = 1 for 'additive'.
    key: PRNG key for the noise inputs.

  Returns:
    An `engine.Problem` with one stage and generators 'reflection' and
    'transmission' (plus 'alpha1' and 'alpha2' for two mixtures). The stage's
    outputs are those layers, (1, H, W, 3) in [0, 1], and the alphas, (1, 1, 1, 1)
    or, with `alpha='map'`, (1, H, W, 1).
  """
  tr = config.transparency
  two = tr.mixture == 'two_mixtures'
  expected = 2 if two else 1
  if mixtures.ndim != 4 or mixtures.shape[0] != expected or mixtures.shape[-1] != 3:
    raise ValueError(f'{tr.mixture} needs mixtures of shape ({expected}, H, W, 3), got {mixtures.shape}')
  _, height, width, _ = mixtures.shape
  layer_gen = models.generator_from_config(config.generator, out_channels=3)
  canvas = models.canvas_shape(height, width, layer_gen.num_scales)
  if tr.augment:  # Quarter turns need a square canvas.
    canvas = (max(canvas),) * 2
  generators = {name: layer_gen for name in LAYERS}
  if two:
    alpha_gen = AlphaScalar() if tr.alpha == 'scalar' else models.generator_from_config(config.generator,
                                                                                         out_channels=1)
    generators.update({name: alpha_gen for name in ALPHAS})
  inputs = {}
  for i, name in enumerate(sorted(generators)):
    if isinstance(generators[name], AlphaScalar):
      inputs[name] = jnp.zeros((1, 1, 1, 1), jnp.float32)
    else:
      inputs[name] = models.noise_from_config(config.generator, jax.random.fold_in(key, i), canvas)
  convs = tuple(n for n in sorted(inputs) if not isinstance(generators[n], AlphaScalar))
  images = jnp.asarray(mixtures, jnp.float32)[:, None]  # (K, 1, H, W, 3)
  num_steps = config.num_steps

  def generate(params, batch_stats, step, key):
    """All generators' outputs in the image frame, and the new batch stats."""
    index = augment.official_schedule(step, num_steps) if tr.augment else None
    keys = jax.random.split(key, len(convs))
    noisy = {}
    for name, k in zip(convs, keys):
      z = inputs[name] if index is None else augment.transform(inputs[name], index)
      if tr.sigma_step > 0:
        z = models.perturb(z, k, models.perturbation_sigma(step, num_steps, tr.sigma_step))
      noisy[name] = z
    out, stats = models.apply_generators(generators, params, batch_stats, noisy)
    for name, o in out.items():
      o = o if index is None else augment.inverse(o, index)
      out[name] = models.center_crop(o, height, width)
    for name in (ALPHAS if two else ()):
      if tr.alpha == 'scalar':
        out[name] = generators[name].apply({'params': params[name]}, inputs[name])
      elif tr.alpha == 'generator':
        out[name] = alpha_from_unit(centre_pixel(out[name]))
      else:
        out[name] = alpha_from_unit(out[name])
    return out, stats

  def two_mixtures_loss(params, batch_stats, step, key):
    out, stats = generate(params, batch_stats, step, key)
    loss, recons = reconstruction_exclusion(out['reflection'], out['transmission'], [out[a] for a in ALPHAS],
                                            images, tr.exclusion_weight)
    prior = sum(losses.mse(out[a], jnp.full_like(out[a], 0.5)) for a in ALPHAS)
    loss += jnp.where(step < tr.alpha_prior_steps, tr.alpha_prior_weight * prior, 0.0)
    return loss, (stats, out, losses.psnr(recons[0], images[0]))

  def additive_loss(params, batch_stats, step, key):
    out, stats = generate(params, batch_stats, step, key)
    r, t = out['reflection'], out['transmission']
    recon = r + t
    loss = losses.l1(recon, images[0]) + tr.exclusion_weight * losses.exclusion_loss(r, t)
    return loss, (stats, out, losses.psnr(recon, images[0]))

  early_stop = config.early_stop_psnr if config.early_stop_psnr > 0 else None
  stage = engine.Stage('separate', num_steps, two_mixtures_loss if two else additive_loss,
                       config.learning_rate, early_stop_psnr=early_stop)
  return engine.Problem(generators=generators, inputs=inputs, stages=[stage])


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the `transparency` section (see `config_check.validate`)."""
  tr = config.transparency
  require = config_check.require
  require(tr.mixture in MIXTURES, 'transparency.mixture', f'unknown mixture (one of {list(MIXTURES)})', tr.mixture)
  if tr.mixture == 'two_mixtures':
    require(bool(tr.image2), 'transparency.image2', 'two_mixtures needs a second mixture image', tr.image2)
  require(tr.alpha in ALPHA_MODES, 'transparency.alpha', f'unknown alpha model (one of {list(ALPHA_MODES)})',
          tr.alpha)
  require(bool(tr.gt_layer1) == bool(tr.gt_layer2), 'transparency.gt_layer2',
          'give both ground-truth layers or neither', (tr.gt_layer1, tr.gt_layer2))
  for field in ('exclusion_weight', 'alpha_prior_weight', 'alpha_prior_steps', 'sigma_step'):
    require(tr[field] >= 0, f'transparency.{field}', 'must be >= 0', tr[field])
  require(tr.unmix in UNMIX_MODES, 'transparency.unmix', f'unknown unmixing (one of {list(UNMIX_MODES)})', tr.unmix)
  if tr.unmix != 'none':
    require(tr.mixture == 'two_mixtures' and tr.alpha != 'map', 'transparency.unmix',
            'unmixing needs two mixtures and scalar alphas (alpha generator or scalar)', tr.unmix)
  require(tr.unmix_select in UNMIX_SELECT, 'transparency.unmix_select', f'one of {list(UNMIX_SELECT)}',
          tr.unmix_select)
  require(0 < tr.refine_radius <= 0.9, 'transparency.refine_radius', 'must be in (0, 0.9]', tr.refine_radius)
  require(0 < tr.unmix_min_gap < 0.9, 'transparency.unmix_min_gap', 'must be in (0, 0.9)', tr.unmix_min_gap)


def finalise_by_unmixing(config: ml_collections.ConfigDict, full: np.ndarray,
                         layers: tuple[np.ndarray, np.ndarray], alphas: list[np.ndarray],
                         truths: list[np.ndarray] | None
                         ) -> tuple[tuple[np.ndarray, np.ndarray], list[np.ndarray], dict[str, Any], str]:
  """The generators' layers, or the exact unmixing of the mixtures if it lowers the loss.

  Candidates: 'generators' (the optimised layers), 'learned' (`unmix` with the
  learned alphas) and, with `transparency.unmix='refined'`, 'refined' (`unmix`
  with the alphas of `refine_from_both`: searched near the learned ones and
  over the whole range, the lower edge overlap wins); unmixed layers are
  clipped to [0, 1]. Each is scored at full size by
  `reconstruction_exclusion` (the training loss without the alpha prior) and
  `out_of_range_fraction`; the configured candidate replaces the generators'
  as `choose_finalisation` says (`unmix_select`).
  Unmixings with |a_1 - a_2| < `unmix_min_gap` are not tried.

  Args:
    config: full config (`transparency` section).
    full: (2, H, W, 3) the mixtures at full size.
    layers: (R, T) of the generators, (H, W, 3) each.
    alphas: the learned a_1, a_2, (1, 1, 1) each.
    truths: the true layers, for the report only (never for the choice), or None.

  Returns:
    ((R, T), [a_1, a_2], {candidate: {'alphas', 'objective'[, 'ground_truth':
    `metrics.layer_pair_scores`][, unmixed: 'out_of_range'][, 'refined': 'edge_overlap',
    'refined_from']}},
    the chosen candidate's name).
  """
  chex.assert_rank(full, 4)
  tr = config.transparency
  learned = jnp.asarray([float(a.item()) for a in alphas], jnp.float32)
  tried = {'learned': learned}
  extra = {}
  if tr.unmix == 'refined':
    tried['refined'], extra = refine_from_both(np.asarray(full), learned, radius=tr.refine_radius,
                                               min_gap=tr.unmix_min_gap)
  candidates = {'generators': (learned, layers)}
  out_of_range = {}
  for name, pair in tried.items():
    if abs(float(pair[0] - pair[1])) >= tr.unmix_min_gap:
      unmixed = tuple(np.asarray(x) for x in unmix(jnp.asarray(full), pair))
      out_of_range[name] = out_of_range_fraction(unmixed, pair)
      candidates[name] = (pair, tuple(np.clip(x, 0.0, 1.0) for x in unmixed))
  report = {}
  images = jnp.asarray(full)[:, None]
  for name, (pair, (r, t)) in candidates.items():
    objective, _ = reconstruction_exclusion(jnp.asarray(r)[None], jnp.asarray(t)[None],
                                            [jnp.reshape(a, (1, 1, 1, 1)) for a in pair], images,
                                            tr.exclusion_weight)
    report[name] = {'alphas': [float(a) for a in pair], 'objective': float(objective)}
    if name in out_of_range:
      report[name]['out_of_range'] = out_of_range[name]
    if name == 'refined':
      report[name].update(extra)
    if truths is not None:
      report[name]['ground_truth'] = metrics_lib.layer_pair_scores((r, t), tuple(truths))
  chosen = choose_finalisation(report, tr.unmix, tr.unmix_select)
  pair, chosen_layers = candidates[chosen]
  return chosen_layers, [np.reshape(float(a), (1, 1, 1)) for a in pair], report, chosen


def choose_finalisation(report: dict[str, dict[str, Any]], mode: str, select: str) -> str:
  """Candidate `mode` of `finalise_by_unmixing`'s report, or 'generators'.

  `select` 'loss': `mode` only if its objective is lower; 'always': whenever
  it was tried (the scalar-alpha model taken as exact: the unmixing then
  reproduces both mixtures, which the generators' layers do not); 'fit':
  whenever its `out_of_range_fraction` is at most `FIT_TOLERANCE` (the model
  fits these mixtures; spatially varying alphas leave the other layer in
  each unmixed one, beyond [0, 1] in places).
  """
  if mode not in report:
    return 'generators'
  keep = {'always': True, 'loss': report[mode]['objective'] < report['generators']['objective'],
          'fit': report[mode].get('out_of_range', 1.0) <= FIT_TOLERANCE}[select]
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
_edge_overlap_jit = jax.jit(lambda mixtures, pair: losses.gradient_correlation(*(x[None] for x in unmix(mixtures,
                                                                                                             pair))))
# The alpha searches run on the mixtures shrunk to at most this side: scalar
# alphas need no more pixels, and the search's cost grows with them.
SEARCH_SIDE = 256


def refine_from_both(full: np.ndarray, learned: jax.Array, *, radius: float, min_gap: float
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
  found = {'near_learned': _refine_jit(mixtures, learned, radius=radius, min_gap=min_gap),
           'whole_range': _search_jit(mixtures, min_gap=min_gap)}
  if float(learned[0]) < float(learned[1]):
    found['whole_range'] = 1.0 - found['whole_range']
  overlap = {name: float(_edge_overlap_jit(mixtures, pair)) for name, pair in found.items()}
  best = min(overlap, key=overlap.get)
  return found[best], {'edge_overlap': overlap, 'refined_from': best}


def _same_size(images: list[np.ndarray], names: list[str], shape: tuple[int, int] | None = None) -> list[np.ndarray]:
  """`images`, which must all have `shape` (default: the first one's).

  Raises:
    image_io.InputError: naming the first of another size.
  """
  shape = shape or images[0].shape[:2]
  for name, img in zip(names, images):
    if img.shape[:2] != shape:
      raise image_io.InputError(
          f'{name} is {img.shape[1]}x{img.shape[0]}, expected {shape[1]}x{shape[0]} like the first mixture')
  return images


@dataclasses.dataclass(frozen=True)
class Inputs:
  """The mixture(s), in memory: (H, W, 3) float32 images of one size, the ground-truth layers or None, and what to
  call the first image in messages."""

  mixtures: list[np.ndarray]
  truths: list[np.ndarray] | None = None
  name: str = 'the image'


def load_inputs(config: ml_collections.ConfigDict, arrays: dict[str, np.ndarray] | None = None) -> Inputs:
  """Reads `config`'s files (image, transparency.image2, the ground-truth layers) but those given in `arrays` (by
  field): the only place the task reads any.

  Raises:
    image_io.InputError: a file cannot be read, or the images differ in size.
  """
  arrays = arrays or {}
  tr = config.transparency
  fields = ['image', 'transparency.image2'] if tr.mixture == 'two_mixtures' else ['image']
  paths = [config.image, tr.image2]
  names = [f'the {f} array' if f in arrays else repr(p) for f, p in zip(fields, paths)]
  full = _same_size([arrays[f] if f in arrays else image_io.load_image(p) for f, p in zip(fields, paths)], names)
  truths = None
  if tr.gt_layer1:
    truths = _same_size([image_io.load_image(p) for p in (tr.gt_layer1, tr.gt_layer2)],
                        [repr(tr.gt_layer1), repr(tr.gt_layer2)], full[0].shape[:2])
  return Inputs(mixtures=full, truths=truths, name=names[0])


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Separates the mixture(s) of `config` and writes all outputs to `workdir`: files in, `decompose`, files out.

  Returns:
    The metrics written to `metrics.json`.
  """
  return resume.run_decomposition(config, workdir, load_inputs=load_inputs, decompose=decompose)


def decompose(config: ml_collections.ConfigDict, inputs: Inputs, *,
              checkpoints: str | None = None) -> outputs.Decomposition:
  """Separates the mixture(s) into two layers, in memory (`resume.solve`; checkpoints in `checkpoints` if given)."""
  tr = config.transparency
  two = tr.mixture == 'two_mixtures'
  full, truths = inputs.mixtures, inputs.truths
  shape = full[0].shape[:2]
  working = np.stack([image_io.working_image(img, config.max_side)[0] for img in full])
  if min(working.shape[1:3]) < 8:
    raise image_io.InputError(f'{inputs.name}: the working image needs sides >= 8 pixels')
  noise_key, train_key = jax.random.split(jax.random.key(config.seed))
  problem = build_problem(config, working, noise_key)

  def finish(result: engine.Result, status: str) -> outputs.Decomposition:
    best = {n: np.asarray(v)[0] for n, v in result.best.items()}
    r = image_io.resize_image(best['reflection'], shape)
    t = image_io.resize_image(best['transmission'], shape)
    metrics: dict[str, Any] = {
        'status': status,
        'mixture': tr.mixture,
        'image_shape': list(shape),
        'working_shape': list(working.shape[1:3]),
        'best_recon_psnr': result.best_psnr,
        'best_step': result.best_step,
    }
    if two:
      alphas = [best[a] for a in ALPHAS]
      if tr.alpha == 'map':
        alphas = [image_io.resize_image(a, shape) for a in alphas]
        metrics.update({f'{n}_mean': float(a.mean()) for n, a in zip(ALPHAS, alphas)})
      else:
        alphas = [np.reshape(a, (1, 1, 1)) for a in alphas]
        if tr.unmix != 'none':
          (r, t), alphas, metrics['finalise'], metrics['layers_from'] = finalise_by_unmixing(
              config, np.stack(full), (r, t), alphas, truths)
        metrics.update({n: float(a.item()) for n, a in zip(ALPHAS, alphas)})
      recons = [a * r + (1 - a) * t for a in alphas]
      for k, (recon, img) in enumerate(zip(recons, full), start=1):
        metrics[f'recomposed{k}_psnr'] = float(losses.psnr(jnp.asarray(recon)[None], jnp.asarray(img)[None]))
      estimates = (r, t)
      images = {'layer1': r, 'layer2': t, 'recomposed1': recons[0], 'recomposed2': recons[1]}
      if tr.alpha == 'map':
        images.update({n: a for n, a in zip(ALPHAS, alphas)})
      panels = [('input 1', full[0]), ('input 2', full[1]), ('layer 1', r), ('layer 2', t)]
    else:
      recon = r + t
      metrics['recomposed_psnr'] = float(losses.psnr(jnp.asarray(recon)[None], jnp.asarray(full[0])[None]))
      estimates = (ADDITIVE_LAYER_SCALE * r, ADDITIVE_LAYER_SCALE * t)
      images = {'layer1': r, 'layer2': t, 'layer1_x2': estimates[0], 'layer2_x2': estimates[1],
                'recomposed': recon}
      panels = [('input', full[0]), ('2 x layer 1', estimates[0]), ('2 x layer 2', estimates[1])]
    if truths is not None:
      scores = metrics_lib.layer_pair_scores(estimates, truths)
      metrics.update(mean_layer_psnr=scores['mean_psnr'], mean_layer_ssim=scores['mean_ssim'],
                     ground_truth=scores)
      order = truths[::-1] if scores['swapped'] else truths
      panels += [('truth of layer 1', order[0]), ('truth of layer 2', order[1])]
    metrics.update(result.metrics)
    return outputs.Decomposition(images=images, metrics=metrics, summary=panels)

  return resume.solve(problem, config, key=train_key, finish=finish, checkpoints=checkpoints)

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
  (`unmix_select`). 'varying' trains no generator: the whole-range unmixing
  where it fits exactly, else smooth weight maps fitted with the layers
  (`unmixing.varying_unmix`). No ground truth is used.

'additive' (the paper's texture separation): one image I = R + T, e.g. two
  textures averaged, so 2R and 2T estimate the layers:
    loss = L1(R + T, I) + w_excl * Exclusion(R, T)
  The best result by reconstruction PSNR of I is kept. With `unmix='colour'`
  the layers are finalised by `colour_unmixing.colour_plane_unmix` (each layer one
  colour times a grey level: the pixels lie on a plane, and the two colours
  are its independent directions) or, where that does not fit,
  `colour_unmixing.photo_texture_unmix` (a photo over a texture of one colour),
  where that model fits (`unmix_select`).

Both variants optionally perturb the noise every iteration (segmentation's
schedule, `sigma_step`) and train on the 8 flips/rotations of noise and image
(`augment`, see `ddip_jax/augment.py`); every generator has its own noise.
"""

import dataclasses
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ddip_jax import augment
from ddip_jax import colour_unmixing
from ddip_jax import config_check
from ddip_jax import engine
from ddip_jax import image_io
from ddip_jax import losses
from ddip_jax import metrics as metrics_lib
from ddip_jax import models
from ddip_jax import outputs
from ddip_jax import resume
from ddip_jax import transparency_finalise
from ddip_jax import unmixing

MIXTURES = ('two_mixtures', 'additive')
ALPHA_MODES = ('generator', 'scalar', 'map')
UNMIX_MODES = ('none', 'learned', 'refined', 'colour', 'varying')
UNMIX_SELECT = ('loss', 'always', 'fit')
LAYERS = ('reflection', 'transmission')
ALPHAS = ('alpha1', 'alpha2')
# The additive demo mixes two layers as their average, so 2R and 2T are the
# layer estimates compared with the ground truth (and shown as previews).
ADDITIVE_LAYER_SCALE = 2.0


def centre_pixel(x: jax.Array) -> jax.Array:
  """x[:, H // 2, W // 2, :] of an NHWC map, kept as (N, 1, 1, C)."""
  h, w = x.shape[1] // 2, x.shape[2] // 2
  return x[:, h : h + 1, w : w + 1, :]


class AlphaScalar(nn.Module):
  """A learnable mixing weight: alpha = 0.9 * sigmoid(logit) + 0.05, 0.5 at init."""

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    """Returns (1, 1, 1, 1); `z` only gives the engine something to call it with."""
    del z
    logit = self.param('logit', nn.initializers.zeros, ())
    return jnp.reshape(unmixing.alpha_from_unit(jax.nn.sigmoid(logit)), (1, 1, 1, 1))


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
    alpha_gen = (
        AlphaScalar() if tr.alpha == 'scalar' else models.generator_from_config(config.generator, out_channels=1)
    )
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
        out[name] = unmixing.alpha_from_unit(centre_pixel(out[name]))
      else:
        out[name] = unmixing.alpha_from_unit(out[name])
    return out, stats

  def two_mixtures_loss(params, batch_stats, step, key):
    out, stats = generate(params, batch_stats, step, key)
    loss, recons = transparency_finalise.reconstruction_exclusion(
        out['reflection'], out['transmission'], [out[a] for a in ALPHAS], images, tr.exclusion_weight
    )
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
  stage = engine.Stage(
      'separate',
      num_steps,
      two_mixtures_loss if two else additive_loss,
      config.learning_rate,
      early_stop_psnr=early_stop,
  )
  return engine.Problem(generators=generators, inputs=inputs, stages=[stage])


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the `transparency` section (see `config_check.validate`)."""
  tr = config.transparency
  require = config_check.require
  require(tr.mixture in MIXTURES, 'transparency.mixture', f'unknown mixture (one of {list(MIXTURES)})', tr.mixture)
  if tr.mixture == 'two_mixtures':
    require(bool(tr.image2), 'transparency.image2', 'two_mixtures needs a second mixture image', tr.image2)
  require(tr.alpha in ALPHA_MODES, 'transparency.alpha', f'unknown alpha model (one of {list(ALPHA_MODES)})', tr.alpha)
  require(
      bool(tr.gt_layer1) == bool(tr.gt_layer2),
      'transparency.gt_layer2',
      'give both ground-truth layers or neither',
      (tr.gt_layer1, tr.gt_layer2),
  )
  for field in ('exclusion_weight', 'alpha_prior_weight', 'alpha_prior_steps', 'sigma_step'):
    require(tr[field] >= 0, f'transparency.{field}', 'must be >= 0', tr[field])
  require(tr.unmix in UNMIX_MODES, 'transparency.unmix', f'unknown unmixing (one of {list(UNMIX_MODES)})', tr.unmix)
  if tr.unmix == 'colour':
    require(tr.mixture == 'additive', 'transparency.unmix', "'colour' unmixes one additive mixture", tr.unmix)
  elif tr.unmix == 'varying':
    require(tr.mixture == 'two_mixtures', 'transparency.unmix', "'varying' unmixes two mixtures", tr.unmix)
  elif tr.unmix != 'none':
    require(
        tr.mixture == 'two_mixtures' and tr.alpha != 'map',
        'transparency.unmix',
        'unmixing needs two mixtures and scalar alphas (alpha generator or scalar)',
        tr.unmix,
    )
  require(tr.unmix_select in UNMIX_SELECT, 'transparency.unmix_select', f'one of {list(UNMIX_SELECT)}', tr.unmix_select)
  require(0 < tr.refine_radius <= 0.9, 'transparency.refine_radius', 'must be in (0, 0.9]', tr.refine_radius)
  require(0 < tr.unmix_min_gap < 0.9, 'transparency.unmix_min_gap', 'must be in (0, 0.9)', tr.unmix_min_gap)


def _same_size(images: list[np.ndarray], names: list[str], shape: tuple[int, int] | None = None) -> list[np.ndarray]:
  """`images`, which must all have `shape` (default: the first one's).

  Raises:
    image_io.InputError: naming the first of another size.
  """
  shape = shape or images[0].shape[:2]
  for name, img in zip(names, images):
    if img.shape[:2] != shape:
      raise image_io.InputError(
          f'{name} is {img.shape[1]}x{img.shape[0]}, expected {shape[1]}x{shape[0]} like the first mixture'
      )
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
    truths = _same_size(
        [image_io.load_image(p) for p in (tr.gt_layer1, tr.gt_layer2)],
        [repr(tr.gt_layer1), repr(tr.gt_layer2)],
        full[0].shape[:2],
    )
  return Inputs(mixtures=full, truths=truths, name=names[0])


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Separates the mixture(s) of `config` and writes all outputs to `workdir`: files in, `decompose`, files out.

  Returns:
    The metrics written to `metrics.json`.
  """
  return resume.run_decomposition(config, workdir, load_inputs=load_inputs, decompose=decompose)


def _score_layers(
    estimates: tuple[np.ndarray, np.ndarray],
    truths: list[np.ndarray] | None,
    metrics: dict[str, Any],
    panels: list[tuple[str, np.ndarray]],
) -> None:
  """Adds the layers' scores against `truths` to `metrics` and the truths to `panels` (nothing without truths)."""
  if truths is not None:
    scores = metrics_lib.layer_pair_scores(estimates, truths)
    metrics.update(mean_layer_psnr=scores['mean_psnr'], mean_layer_ssim=scores['mean_ssim'], ground_truth=scores)
    order = truths[::-1] if scores['swapped'] else truths
    panels += [('truth of layer 1', order[0]), ('truth of layer 2', order[1])]


def _two_mixture_decomposition(
    full: list[np.ndarray],
    layers: tuple[np.ndarray, np.ndarray],
    alphas: list[np.ndarray],
    truths: list[np.ndarray] | None,
    metrics: dict[str, Any],
    run_metrics: dict[str, Any],
    *,
    maps: bool,
) -> outputs.Decomposition:
  """Two mixtures' result: R, T and both recompositions (the weight maps too if `maps`); `run_metrics` added last."""
  r, t = layers
  recons = [a * r + (1 - a) * t for a in alphas]
  for k, (recon, img) in enumerate(zip(recons, full), start=1):
    metrics[f'recomposed{k}_psnr'] = float(losses.psnr(jnp.asarray(recon)[None], jnp.asarray(img)[None]))
  if metrics['best_recon_psnr'] is None:  # No generators: the kept result is the unmixing.
    metrics['best_recon_psnr'] = metrics['recomposed1_psnr']
  images = {'layer1': r, 'layer2': t, 'recomposed1': recons[0], 'recomposed2': recons[1]}
  if maps:
    images.update({n: a for n, a in zip(ALPHAS, alphas)})
  panels = [('input 1', full[0]), ('input 2', full[1]), ('layer 1', r), ('layer 2', t)]
  _score_layers((r, t), truths, metrics, panels)
  metrics.update(run_metrics)
  return outputs.Decomposition(images=images, metrics=metrics, summary=panels)


def _additive_decomposition(
    image: np.ndarray,
    layers: tuple[np.ndarray, np.ndarray],
    truths: list[np.ndarray] | None,
    metrics: dict[str, Any],
    run_metrics: dict[str, Any],
) -> outputs.Decomposition:
  """One additive mixture's result: R, T, 2R, 2T and R + T, scored against `truths`; `run_metrics` added last."""
  r, t = layers
  recon = r + t
  metrics['recomposed_psnr'] = float(losses.psnr(jnp.asarray(recon)[None], jnp.asarray(image)[None]))
  if metrics['best_recon_psnr'] is None:  # No generators: the kept result is the unmixing.
    metrics['best_recon_psnr'] = metrics['recomposed_psnr']
  estimates = (ADDITIVE_LAYER_SCALE * r, ADDITIVE_LAYER_SCALE * t)
  images = {'layer1': r, 'layer2': t, 'layer1_x2': estimates[0], 'layer2_x2': estimates[1], 'recomposed': recon}
  panels = [('input', image), ('2 x layer 1', estimates[0]), ('2 x layer 2', estimates[1])]
  _score_layers(estimates, truths, metrics, panels)
  metrics.update(run_metrics)
  return outputs.Decomposition(images=images, metrics=metrics, summary=panels)


def decompose(
    config: ml_collections.ConfigDict, inputs: Inputs, *, checkpoints: str | None = None
) -> outputs.Decomposition:
  """Separates the mixture(s) into two layers, in memory (`resume.solve`; checkpoints in `checkpoints` if given)."""
  tr = config.transparency
  two = tr.mixture == 'two_mixtures'
  full, truths = inputs.mixtures, inputs.truths
  shape = full[0].shape[:2]
  working = np.stack([image_io.working_image(img, config.max_side)[0] for img in full])
  if min(working.shape[1:3]) < 8:
    raise image_io.InputError(f'{inputs.name}: the working image needs sides >= 8 pixels')
  additive_options = dict(
      exclusion_weight=tr.exclusion_weight, select=tr.unmix_select, layer_scale=ADDITIVE_LAYER_SCALE
  )
  start = time.perf_counter()
  no_generators = {
      'status': 'ok',
      'mixture': tr.mixture,
      'image_shape': list(shape),
      'working_shape': list(shape),
      'best_recon_psnr': None,
      'best_step': None,
  }
  if two and tr.unmix == 'varying':  # No generators: the unmixing or its smooth-weight refinement.
    (r, t), weights, report, name = unmixing.varying_unmix(np.stack(full), min_gap=tr.unmix_min_gap, truths=truths)
    metrics = dict(no_generators, finalise=report, layers_from=name, generators='not run (unmix=varying)', steps=0)
    if name == 'smooth_alphas':
      metrics.update({f'{n}_mean': float(a.mean()) for n, a in zip(ALPHAS, weights)})
    else:
      metrics.update({n: float(a.item()) for n, a in zip(ALPHAS, weights)})
    return _two_mixture_decomposition(
        full,
        (r, t),
        list(weights),
        truths,
        metrics,
        {'seconds': round(time.perf_counter() - start, 3)},
        maps=name == 'smooth_alphas',
    )
  if not two and tr.unmix == 'colour' and tr.unmix_select == 'fit':
    # Where an unmixing fits, 'fit' discards the generators' layers: do not train them.
    (r, t), report, name = colour_unmixing.finalise_additive(full[0], None, truths, **additive_options)
    if report[name]['model_fits']:
      metrics = dict(
          no_generators, finalise=report, layers_from=name, generators=f'not run: the {name} unmixing fits', steps=0
      )
      return _additive_decomposition(
          full[0], (r, t), truths, metrics, {'seconds': round(time.perf_counter() - start, 3)}
      )
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
          (r, t), alphas, metrics['finalise'], metrics['layers_from'] = transparency_finalise.finalise_by_unmixing(
              config, np.stack(full), (r, t), alphas, truths
          )
        metrics.update({n: float(a.item()) for n, a in zip(ALPHAS, alphas)})
      return _two_mixture_decomposition(full, (r, t), alphas, truths, metrics, result.metrics, maps=tr.alpha == 'map')
    if tr.unmix == 'colour':
      (r, t), metrics['finalise'], metrics['layers_from'] = colour_unmixing.finalise_additive(
          full[0], (r, t), truths, **additive_options
      )
    return _additive_decomposition(full[0], (r, t), truths, metrics, result.metrics)

  return resume.solve(problem, config, key=train_key, finish=finish, checkpoints=checkpoints)

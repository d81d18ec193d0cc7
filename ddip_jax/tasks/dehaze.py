"""Single-image dehazing: I = t * J + (1 - t) * A.

J is the haze-free image, t the transmission map and A the airlight. Generators
'clean' (J, 3 channels) and 'transmission' (t, 1 channel) have independent
noise inputs; the airlight A is, by `dehaze.airlight` (first pass):
  'estimate' (official default): the dark-channel-prior estimate of He et al.
             2009 on the working image, a constant RGB;
  'quadtree': Kim et al. 2013's hierarchical search (`haze_priors`), a
             constant RGB, less drawn to white objects than 'estimate';
  'given':   `dehaze.airlight_rgb`, a constant RGB;
  'learned': a map drawn by a third generator ('airlight', 3 channels) from a
             meshgrid input, tied to the estimate A0 for the first iterations.
Loss, one stage of `num_steps` iterations (Adam):
  MSE(t J + (1 - t) A, I) + w_t * StdLoss(t)
  [learned A: + w_A * StdLoss(A) + (it < tie_steps: MSE(A, A0))]
with the J and A inputs perturbed by N(0, sigma^2) noise every iteration but
the last (t's input never is). The result with the best reconstruction PSNR of
the hazy input is kept (no ground truth is used for selection).

Finalize (at full resolution): t and A are resized to the input's size, t is
refined with a guided filter guided by the full-resolution hazy input and
clipped to [t_min, 1], and J = clip((I - (1 - t) A) / t, 0, 1).

Passes (`dehaze.passes`, official: 2): pass k > 1 dehazes pass k-1's
full-resolution output again, with a learned airlight map tied to pass k-1's
airlight. Pass k's keys are folded from the run's keys with k, so the first
pass of a two-pass run is the one-pass run. The written transmission and
airlight are those of the composed model, I = t J + (1 - t) A with t the product
of the passes' transmissions (see `compose_passes`).
"""

import dataclasses
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ddip_jax import config_check
from ddip_jax import engine
from ddip_jax import filters
from ddip_jax import haze_priors
from ddip_jax import image_io
from ddip_jax import losses
from ddip_jax import metrics as metrics_lib
from ddip_jax import models
from ddip_jax import outputs
from ddip_jax import resume

AIRLIGHT_MODES = ('estimate', 'quadtree', 'given', 'learned')
TRANSMISSION_PRIORS = ('none', 'dark_channel')
# Side of the airlight swatch written when the airlight is one colour.
_SWATCH = 64


def build_problem(
    config: ml_collections.ConfigDict,
    image: np.ndarray,
    airlight0: np.ndarray,
    key: jax.Array,
    *,
    learned_airlight: bool,
    transmission0: np.ndarray | None = None,
) -> engine.Problem:
  """The dehazing problem of one pass.

  Args:
    config: full config (`generator` and `dehaze` sections are read).
    image: (H, W, 3) float in [0, 1], the working-resolution hazy input.
    airlight0: (3,) or (H, W, 3): the airlight, or with `learned_airlight` the
      map it is tied to during the first `dehaze.airlight_tie_steps` iterations.
    key: PRNG key for the noise inputs.
    learned_airlight: add the 'airlight' generator.
    transmission0: optional (H, W) prior transmission (the dark-channel
      estimate); t is pulled to it by `dehaze.transmission_prior_weight` *
      MSE(t, t0) for the first `dehaze.transmission_prior_until` fraction of
      the iterations; with `dehaze.transmission_residual` > 0, t is the prior
      plus a correction of at most that size drawn by the generator.

  Returns:
    An `engine.Problem` with one stage, generators 'clean', 'transmission' and,
    with `learned_airlight`, 'airlight'. The stage's outputs are 'clean' (1, H,
    W, 3), 'transmission' (1, H, W, 1) and, with `learned_airlight`, 'airlight'
    (1, H, W, 3), all in (0, 1).
  """
  dz = config.dehaze
  height, width = image.shape[:2]
  generators = {
      'clean': models.generator_from_config(config.generator, out_channels=3),
      'transmission': models.generator_from_config(config.generator, out_channels=1),
  }
  canvas = models.canvas_shape(height, width, generators['clean'].num_scales)
  inputs = {
      name: models.noise_from_config(config.generator, jax.random.fold_in(key, i), canvas)
      for i, name in enumerate(generators)
  }
  if learned_airlight:
    generators['airlight'] = models.generator_from_config(config.generator, out_channels=3)
    inputs['airlight'] = models.make_noise(key, canvas, config.generator.input_depth, method='meshgrid')
  perturbed = tuple(n for n in ('clean', 'airlight') if n in inputs)  # t's input never is.
  img = jnp.asarray(image, jnp.float32)[None]
  a0 = jnp.broadcast_to(jnp.asarray(airlight0, jnp.float32), img.shape)
  num_steps = config.num_steps
  residual = transmission0 is not None and dz.transmission_residual > 0
  if transmission0 is not None:
    t0 = jnp.asarray(transmission0, jnp.float32)[None, :, :, None]
    prior_steps = round(dz.transmission_prior_until * num_steps)

  def loss_fn(params, batch_stats, step, key):
    sigma = jnp.where(step == num_steps - 1, 0.0, dz.sigma)
    keys = dict(zip(perturbed, jax.random.split(key, len(perturbed))))
    noisy = {n: models.perturb(z, keys[n], sigma) if n in keys else z for n, z in inputs.items()}
    out, stats = models.apply_generators(generators, params, batch_stats, noisy)
    out = {n: models.center_crop(o, height, width) for n, o in out.items()}
    if residual:  # The generator draws a bounded correction of the prior: at 0.5 it is the prior itself.
      out['transmission'] = jnp.clip(t0 + dz.transmission_residual * (2.0 * out['transmission'] - 1.0), dz.t_min, 1.0)
    t, airlight = out['transmission'], out.get('airlight', a0)
    recon = losses.blend(t, out['clean'], airlight)
    loss = losses.mse(recon, img) + dz.transmission_std_weight * losses.std_loss(t)
    if transmission0 is not None:
      loss = loss + jnp.where(step < prior_steps, dz.transmission_prior_weight * losses.mse(t, t0), 0.0)
    if learned_airlight:
      tie = jnp.where(step < dz.airlight_tie_steps, losses.mse(airlight, a0), 0.0)
      loss = loss + dz.airlight_std_weight * losses.std_loss(airlight) + tie
    return loss, (stats, out, losses.psnr(recon, img))

  early_stop = config.early_stop_psnr if config.early_stop_psnr > 0 else None
  stage = engine.Stage('dehaze', num_steps, loss_fn, config.learning_rate, early_stop_psnr=early_stop)
  return engine.Problem(generators=generators, inputs=inputs, stages=[stage])


@dataclasses.dataclass
class PassResult:
  """One finished pass at full resolution.

  Attributes:
    hazy: (H, W, 3) the pass's input.
    dehazed: (H, W, 3) its J.
    transmission: (H, W) refined, clipped t.
    airlight: (3,) constant or (H, W, 3) map A.
    metrics: facts of the pass (airlight, best PSNR, engine metrics).
  """

  hazy: np.ndarray
  dehazed: np.ndarray
  transmission: np.ndarray
  airlight: np.ndarray
  metrics: dict[str, Any]


def finalize_pass(
    result: engine.Result,
    hazy: np.ndarray,
    airlight: np.ndarray,
    *,
    radius: int,
    dz: ml_collections.ConfigDict,
    facts: dict[str, Any],
    prior: tuple[np.ndarray, np.ndarray] | None = None,
) -> PassResult:
  """Brings a pass's best outputs to full size and recovers J (see module docstring).

  Args:
    result: the engine's result (or a stopped run's partial result).
    hazy: (H, W, 3) the pass's full-resolution input, also the guide.
    airlight: the constant (3,) airlight; unused when the result has an
      'airlight' map.
    radius: guided-filter radius in pixels.
    dz: the `dehaze` config section.
    facts: what the caller knows of the pass, first in its metrics.
    prior: (full-size refined prior t, working-size prior t) of a residual
      pass: t is then the full-size prior plus the upsampled correction (its
      edges are the prior's, already guided-filtered; no second filtering).
  """
  shape = hazy.shape[:2]
  best = {n: np.asarray(v)[0] for n, v in result.best.items()}
  t_raw = image_io.resize_image(best['transmission'][..., 0], shape)
  if 'airlight' in best:
    airlight = image_io.resize_image(best['airlight'], shape)
  if prior is not None:
    full_prior, work_prior = prior
    correction = image_io.resize_image(best['transmission'][..., 0] - work_prior, shape)
    t = np.clip(full_prior + correction, dz.t_min, 1.0).astype(np.float32)
  else:
    t = haze_priors.refine_transmission(
        t_raw, hazy, radius=radius, eps=dz.guided_eps, t_min=dz.t_min, opencv_compat=dz.guided_opencv
    )
  metrics = {
      **facts,
      'airlight': np.asarray(airlight, np.float32).reshape(-1, 3).mean(axis=0).tolist(),
      'airlight_is_map': bool(np.ndim(airlight) == 3),
      'transmission_mean': float(t.mean()),
      'best_recon_psnr': result.best_psnr,
      'best_step': result.best_step,
      **result.metrics,
  }
  return PassResult(hazy, haze_priors.recover(hazy, t, airlight), t, np.asarray(airlight, np.float32), metrics)


def compose_passes(passes: list[PassResult]) -> tuple[np.ndarray, np.ndarray]:
  """The transmission and airlight of the passes composed into one model.

  Pass k explains its input as I_k = t_k I_{k+1} + (1 - t_k) A_k, so the
  first input is I_1 = t J + (1 - t) A with t = t_1 t_2 ... and
  (1 - t) A = (1 - t_1) A_1 + t_1 (1 - t_2) A_2 + ....

  Returns:
    (t (H, W), A): A is the first pass's airlight where t is 1 (no haze to
    attribute) and, with one pass, that airlight as it is ((3,) or a map).
  """
  if len(passes) == 1:
    return passes[0].transmission, passes[0].airlight
  t = np.ones_like(passes[0].transmission)
  haze = np.zeros(passes[0].hazy.shape, np.float32)
  for p in passes:
    haze = haze + t[..., None] * (1.0 - p.transmission[..., None]) * p.airlight
    t = t * p.transmission
  veil = (1.0 - t)[..., None]
  airlight = np.where(veil > 1e-6, haze / np.maximum(veil, 1e-6), passes[0].airlight)
  return t, np.clip(airlight, 0.0, 1.0).astype(np.float32)


def airlight_image(airlight: np.ndarray) -> np.ndarray:
  """The airlight as a picture: the map itself, or a swatch of the one colour."""
  if np.ndim(airlight) == 3:
    return airlight
  return np.broadcast_to(np.asarray(airlight, np.float32), (_SWATCH, _SWATCH, 3))


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the `dehaze` section (see `config_check.validate`)."""
  dz = config.dehaze
  require = config_check.require
  require(dz.passes >= 1, 'dehaze.passes', 'must be at least 1', dz.passes)
  require(
      dz.airlight in AIRLIGHT_MODES, 'dehaze.airlight', f'unknown mode (one of {list(AIRLIGHT_MODES)})', dz.airlight
  )
  if dz.airlight == 'given':
    value = dz.airlight_rgb
    ok = value is not None and len(value) == 3 and all(0 < float(v) <= 1 for v in value)
    require(ok, 'dehaze.airlight_rgb', "'given' needs three values in (0, 1]", value)
  require(dz.dcp_patch >= 1 and dz.dcp_patch % 2 == 1, 'dehaze.dcp_patch', 'must be an odd size >= 1', dz.dcp_patch)
  require(0 < dz.dcp_top_fraction <= 1, 'dehaze.dcp_top_fraction', 'must be in (0, 1]', dz.dcp_top_fraction)
  for field in (
      'sigma',
      'transmission_std_weight',
      'airlight_std_weight',
      'airlight_tie_steps',
      'guided_radius',
      'transmission_prior_weight',
  ):
    require(dz[field] >= 0, f'dehaze.{field}', 'must be >= 0', dz[field])
  require(
      dz.transmission_prior in TRANSMISSION_PRIORS,
      'dehaze.transmission_prior',
      f'unknown prior (one of {list(TRANSMISSION_PRIORS)})',
      dz.transmission_prior,
  )
  require(
      0 <= dz.transmission_prior_until <= 1,
      'dehaze.transmission_prior_until',
      'must be in [0, 1]',
      dz.transmission_prior_until,
  )
  require(
      0 <= dz.transmission_residual <= 1, 'dehaze.transmission_residual', 'must be in [0, 1]', dz.transmission_residual
  )
  require(0 < dz.dcp_omega <= 1, 'dehaze.dcp_omega', 'must be in (0, 1]', dz.dcp_omega)
  require(dz.guided_eps > 0, 'dehaze.guided_eps', 'must be positive', dz.guided_eps)
  require(0 < dz.t_min < 1, 'dehaze.t_min', 'must be in (0, 1)', dz.t_min)


@dataclasses.dataclass(frozen=True)
class Inputs:
  """One hazy photo, in memory: (H, W, 3) image in [0, 1], an optional clean ground truth of its size, and what
  to call the image in messages."""

  image: np.ndarray
  gt_clean: np.ndarray | None = None
  name: str = 'the image'


def load_inputs(config: ml_collections.ConfigDict, arrays: dict[str, np.ndarray] | None = None) -> Inputs:
  """Reads `config`'s files (image, dehaze.gt_clean) but those given in `arrays`: the only place the task reads any.

  Raises:
    image_io.InputError: a file cannot be read, or the ground truth has another size.
  """
  arrays = arrays or {}
  full = arrays['image'] if 'image' in arrays else image_io.load_image(config.image)
  name = 'the image array' if 'image' in arrays else repr(config.image)
  # Read before the optimisation: a bad path must not cost (and lose) a whole run.
  truth = image_io.load_image(config.dehaze.gt_clean) if config.dehaze.gt_clean else None
  if truth is not None and truth.shape[:2] != full.shape[:2]:
    raise image_io.InputError(
        f'{config.dehaze.gt_clean!r} is {truth.shape[1]}x{truth.shape[0]}, '
        f'expected {full.shape[1]}x{full.shape[0]} like {name}'
    )
  return Inputs(image=full, gt_clean=truth, name=name)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Dehazes `config.image` and writes all outputs to `workdir`: files in, `decompose`, files out.

  Returns:
    The metrics written to `metrics.json`.
  """
  return resume.run_decomposition(config, workdir, load_inputs=load_inputs, decompose=decompose)


def decompose(
    config: ml_collections.ConfigDict, inputs: Inputs, *, checkpoints: str | None = None
) -> outputs.Decomposition:
  """Dehazes `inputs.image` in `dehaze.passes` passes, in memory.

  One optimisation per pass (`resume.solve_parts`; with a checkpoint each in
  `checkpoints` when a workdir is given: a rerun resumes); a run that stops
  early raises with the best result so far (the stopped pass's, else the last
  finished pass's) as the error's `partial`.
  """
  dz = config.dehaze
  start = time.perf_counter()
  full, truth = inputs.image, inputs.gt_clean
  shape = full.shape[:2]
  min_side = 2 ** len(config.generator.channels_down)
  max_side = config.max_side
  if max_side > 0:  # A small working side must not refuse a wide photo that is big enough at full size.
    max_side = max(max_side, min(max(shape), math.ceil(min_side * max(shape) / min(shape))))
  first, _ = image_io.working_image(full, max_side, path=inputs.name, min_side=min_side)
  work = first.shape[:2]
  radius = filters.radius_px(dz.guided_radius, shape)
  noise_key, train_key = jax.random.split(jax.random.key(config.seed))
  passes: list[PassResult] = []

  def finish(status: str) -> outputs.Decomposition:
    transmission, airlight = compose_passes(passes)
    dehazed = passes[-1].dehazed
    metrics: dict[str, Any] = {
        'status': status,
        'image_shape': list(shape),
        'working_shape': list(work),
        'guided_radius_px': radius,
        'passes_run': len(passes),
        'airlight': passes[0].metrics['airlight'],
        'best_recon_psnr': passes[-1].metrics['best_recon_psnr'],
    }
    images = {'dehazed': dehazed, 'transmission': transmission, 'airlight': airlight_image(airlight)}
    if len(passes) > 1:
      for k, p in enumerate(passes, start=1):
        images.update(
            {
                f'pass{k}_dehazed': p.dehazed,
                f'pass{k}_transmission': p.transmission,
                f'pass{k}_airlight': airlight_image(p.airlight),
            }
        )
    panels = [
        ('hazy', full),
        ('dehazed', dehazed),
        ('transmission', transmission),
        ('airlight', image_io.resize_image(airlight_image(airlight), shape)),
    ]
    if truth is not None:
      metrics.update(metrics_lib.image_scores(dehazed, truth))
      metrics.update({f'hazy_{k}': v for k, v in metrics_lib.image_scores(full, truth).items()})
      for p in passes:
        p.metrics.update(metrics_lib.image_scores(p.dehazed, truth))
      panels.append(('ground truth', truth))
    metrics['passes'] = {f'pass{k}': p.metrics for k, p in enumerate(passes, start=1)}
    metrics['seconds'] = round(time.perf_counter() - start, 3)
    return outputs.Decomposition(images=images, metrics=metrics, summary=panels)

  def problem(index: int) -> engine.Problem:
    hazy = passes[-1].dehazed if passes else full
    working = image_io.resize_image(hazy, work) if index else first
    if index == 0 and dz.airlight == 'given':
      airlight0, learned, mode = np.asarray(dz.airlight_rgb, np.float32), False, 'given'
    elif index == 0:
      source = hazy if dz.prior_full_size else working
      if dz.airlight == 'quadtree':
        airlight0 = haze_priors.quadtree_airlight(source)
      else:
        airlight0 = np.asarray(
            haze_priors.estimate_airlight(jnp.asarray(source), patch=dz.dcp_patch, top_fraction=dz.dcp_top_fraction)
        )
      learned, mode = dz.airlight == 'learned', dz.airlight
    else:  # Tied to the previous pass's airlight.
      previous = passes[-1].airlight
      airlight0 = image_io.resize_image(previous, work) if previous.ndim == 3 else previous
      learned, mode = True, 'learned'
    facts = {
        'pass': index + 1,
        'airlight_mode': mode,
        'airlight_init': np.asarray(airlight0).reshape(-1, 3).mean(axis=0).tolist(),
    }
    transmission0 = prior = None
    if dz.transmission_prior == 'dark_channel' and dz.prior_full_size and np.ndim(airlight0) == 1:
      # He et al.'s estimate where its patch was meant to work, refined by the guided filter, then shrunk.
      raw = haze_priors.prior_transmission(
          hazy, airlight0, patch=dz.dcp_patch, omega=dz.dcp_omega, radiance_bound=dz.radiance_bound
      )
      refined = haze_priors.refine_transmission(
          raw, hazy, radius=radius, eps=dz.guided_eps, t_min=dz.t_min, opencv_compat=dz.guided_opencv
      )
      transmission0 = image_io.resize_image(refined, work)
      if dz.transmission_residual > 0:
        prior = (refined, transmission0)
    elif dz.transmission_prior == 'dark_channel':
      transmission0 = haze_priors.prior_transmission(
          working, airlight0, patch=dz.dcp_patch, omega=dz.dcp_omega, radiance_bound=dz.radiance_bound
      )
    pending[index] = (hazy, airlight0, facts, prior)
    return build_problem(
        config,
        working,
        airlight0,
        jax.random.fold_in(noise_key, index),
        learned_airlight=learned,
        transmission0=transmission0,
    )

  def keep(index: int, result: engine.Result) -> None:
    hazy, airlight0, facts, prior = pending.pop(index)
    passes.append(finalize_pass(result, hazy, airlight0, radius=radius, dz=dz, facts=facts, prior=prior))

  pending: dict[int, tuple[np.ndarray, np.ndarray, dict[str, Any], Any]] = {}
  return resume.solve_parts(
      config,
      num_parts=dz.passes,
      part_name='pass',
      key=train_key,
      problem=problem,
      keep=keep,
      finish=finish,
      checkpoints=checkpoints,
  )

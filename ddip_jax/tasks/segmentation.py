"""Foreground/background segmentation: I = m * fg + (1 - m) * bg.

Three generators (fg, bg: 3 channels; mask: 1 channel); fg and bg share one base
noise, the mask has its own. Two stages, as in the official code:
  step 1 (`hint_steps`): ExtL1(fg, I, fg_hint) + ExtL1(bg, I, bg_hint)
                         + L1(m, ((fg_hint - bg_hint) + 1) / 2)
  step 2 (`num_steps`, fresh Adam): [it <= hint_phase: the two ExtL1 terms]
                         + 0.5 * L1(m*fg + (1-m)*bg, I)
                         + 0.001 * (min(it, 1000) // 100) * GrayLoss(m)
The best step-2 result by reconstruction PSNR is kept; its mask is refined with
a guided filter and thresholded.
"""

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ddip_jax import engine
from ddip_jax import fgbg
from ddip_jax import grow
from ddip_jax import hints as hints_lib
from ddip_jax import image_io
from ddip_jax import losses
from ddip_jax import metrics as metrics_lib
from ddip_jax import models
from ddip_jax import outputs
from ddip_jax import resume


def build_problem(
    config: ml_collections.ConfigDict,
    image: np.ndarray,
    fg_hint: np.ndarray,
    bg_hint: np.ndarray,
    key: jax.Array,
) -> engine.Problem:
  """The segmentation problem for one image.

  Args:
    config: full config (`generator` and `segmentation` sections are read).
    image: (H, W, 3) float in [0, 1], the working-resolution input.
    fg_hint: (H, W) in [0, 1], 1 where the pixel surely belongs to the foreground.
    bg_hint: (H, W) in [0, 1], 1 where it surely belongs to the background.
    key: PRNG key for the noise inputs.

  Returns:
    An `engine.Problem` with generators 'fg', 'bg', 'mask' and two stages.
  """
  height, width = image.shape[:2]
  layer_gen = models.generator_from_config(config.generator, out_channels=3)
  mask_gen = models.generator_from_config(config.generator, out_channels=1)
  canvas = models.canvas_shape(height, width, layer_gen.num_scales)
  noise_layers = models.noise_from_config(config.generator, jax.random.fold_in(key, 0), canvas)
  noise_mask = models.noise_from_config(config.generator, jax.random.fold_in(key, 1), canvas)
  generators = {'fg': layer_gen, 'bg': layer_gen, 'mask': mask_gen}
  inputs = {'fg': noise_layers, 'bg': noise_layers, 'mask': noise_mask}
  layers = fgbg.perturbed_layers(
      generators, inputs, sigma_step=config.segmentation.sigma_step, height=height, width=width
  )
  stages = fgbg.decomposition_stages(
      config,
      image=jnp.asarray(image)[None],
      fg_hint=jnp.asarray(fg_hint, jnp.float32)[None, ..., None],
      bg_hint=jnp.asarray(bg_hint, jnp.float32)[None, ..., None],
      layers=layers,
  )
  return engine.Problem(generators=generators, inputs=inputs, stages=stages)


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the `segmentation` section (`fgbg.validate`)."""
  fgbg.validate(config)


def grown_hints(
    image: np.ndarray,
    fg_hint: np.ndarray,
    bg_hint: np.ndarray,
    seg: ml_collections.ConfigDict,
    *,
    user_fg: bool,
    user_bg: bool,
    start: np.ndarray | None = None,
):
  """The hints the decomposition fits, grown from the resolved ones (`grow.dense_hints`), and those the final mask
  must respect.

  Args:
    image: (H, W, 3) working image in [0, 1].
    fg_hint, bg_hint: (H, W) resolved hints in {0, 1} (`hints.resolve_hints`).
    seg: the `segmentation` config section.
    user_fg, user_bg: whether each hint is the user's (else automatic).
    start: (H, W) bool, a previous mask to correct (`grow.dense_hints`).

  Returns:
    (fg_hint, bg_hint, enforced, grown, mask): the grown hints; (fg, bg or None)
    the final mask respects (`seg.respect_hints`): those grown from a user's fg
    stroke, else only the user's own bg hint (e.g. outside a box), else none;
    what growing did (empty when off); and the foreground growing found, bool
    (H, W) (the fg hint when off): a mask in a fraction of a second.
  """
  enforced = (fg_hint, bg_hint) if user_fg else (np.zeros_like(fg_hint), bg_hint if user_bg else None)
  if seg.grow_hints == 'none':
    return fg_hint, bg_hint, enforced, {}, fg_hint > 0.5
  method = seg.grow_hints
  if method == 'auto':  # A user's fg stroke tells the object's colours; a saliency seed may not.
    method = 'select' if user_fg else 'grabcut'
  allowed = None
  if not user_fg and seg.auto_hints in ('object', 'saliency'):  # Automatic seeds: see grow.dense_hints.
    allowed = np.maximum(hints_lib.saliency_hints(image, bg_hint if user_bg else None)[1], bg_hint)
  fg_hint, bg_hint, mask = grow.dense_hints(
      image, fg_hint, bg_hint, margin=seg.grow_margin, method=method, bg_allowed=allowed, start=start
  )
  if user_fg:
    enforced = (fg_hint, bg_hint)
  info = {'method': method, 'fg_fraction': float(fg_hint.mean()), 'bg_fraction': float(bg_hint.mean())}
  return fg_hint, bg_hint, enforced, info, mask


def with_schedule(config: ml_collections.ConfigDict, user_hints: bool | None = None) -> ml_collections.ConfigDict:
  """The config with the schedule that applies: at most `user_*_steps` when a hint file is given.

  A user's hints are grown into dense hints that the layers fit within a few
  hundred iterations; the longer default schedule only lets them drift. A
  shorter `hint_steps` / `num_steps` still applies. The learning rate is then
  `user_learning_rate` (if > 0): the rate that short schedule was measured with.
  """
  seg = config.segmentation
  if user_hints is None:
    user_hints = bool(config.fg_hint or config.bg_hint)
  if not user_hints or seg.user_hint_steps <= 0 or seg.user_num_steps <= 0:
    return config
  config = config.copy_and_resolve_references()
  config.segmentation.hint_steps = min(seg.hint_steps, seg.user_hint_steps)
  config.num_steps = min(config.num_steps, seg.user_num_steps)
  if seg.user_learning_rate > 0:
    config.learning_rate = seg.user_learning_rate
  return config


@dataclasses.dataclass(frozen=True)
class Inputs:
  """One photo's inputs, in memory.

  Attributes:
    image: (H, W, 3) float32 in [0, 1], at full size.
    fg_hint, bg_hint: a user's hints, (h, w) in [0, 1] of any size (resized as
      hint files are: `hints.given_hints`), or None (automatic).
    gt_mask: (H, W) ground truth to score against, or None.
    names: what to call the image and hints in messages (a path, 'the fg_hint array').
  """

  image: np.ndarray
  fg_hint: np.ndarray | None = None
  bg_hint: np.ndarray | None = None
  gt_mask: np.ndarray | None = None
  names: dict[str, str] = dataclasses.field(default_factory=dict)


def load_inputs(config: ml_collections.ConfigDict, arrays: dict[str, np.ndarray] | None = None) -> Inputs:
  """Reads `config`'s files (image, fg_hint, bg_hint, gt_mask) but those given in `arrays` (float32 in [0, 1],
  by field): the only place the task reads any.

  Raises:
    image_io.InputError: a file cannot be read.
  """
  arrays = arrays or {}
  image = arrays['image'] if 'image' in arrays else image_io.load_image(config.image)
  # Read before the optimisation: a bad path must not cost (and lose) a whole run.
  gt = arrays.get('gt_mask')
  if gt is None and config.gt_mask:
    gt = image_io.load_mask(config.gt_mask, shape=image.shape[:2])
  hints = {
      name: arrays[name] if name in arrays else image_io.load_mask(config[name], shape=None, keep_thin=True)
      for name in ('fg_hint', 'bg_hint')
      if name in arrays or config[name]
  }
  names = {
      field: f'the {field} array' if field in arrays else (repr(config.image) if field == 'image' else config[field])
      for field in ('image', *hints)
  }
  return Inputs(image=image, gt_mask=gt, names=names, **hints)


def decompose(
    config: ml_collections.ConfigDict, inputs: Inputs, *, checkpoints: str | None = None
) -> outputs.Decomposition:
  """Segments `inputs.image`, in memory (`resume.solve`; with checkpoints in `checkpoints` when a workdir is given).

  Raises:
    image_io.InputError: bad hints or image size.
    engine.NumericalError, engine.Interrupted: with the best result so far as the error's `partial`.
  """
  seg = config.segmentation
  full = inputs.image
  image, _ = image_io.working_image(
      full,
      config.max_side,
      path=inputs.names.get('image', 'the image'),
      min_side=2 ** len(config.generator.channels_down),
  )
  t0 = time.perf_counter()
  given = {
      name: (hint, inputs.names.get(name, f'the {name} array'))
      for name, hint in (('fg_hint', inputs.fg_hint), ('bg_hint', inputs.bg_hint))
      if hint is not None
  }
  fg_hint, bg_hint, hint_info = hints_lib.given_hints(image, given, method=seg.auto_hints)
  fg_hint, bg_hint, enforced, grown = grown_hints(
      image, fg_hint, bg_hint, seg, user_fg='fg_hint' in given, user_bg='bg_hint' in given
  )[:4]
  if grown:
    hint_info['grown'] = grown
  hint_seconds = time.perf_counter() - t0
  noise_key, train_key = jax.random.split(jax.random.key(config.seed))
  problem = build_problem(with_schedule(config, user_hints=bool(given)), image, fg_hint, bg_hint, noise_key)

  def finish(result: engine.Result, status: str) -> outputs.Decomposition:
    best = {n: np.asarray(v)[0] for n, v in result.best.items()}
    images = fgbg.full_size_layers(full, best, fg_hint, seg, enforced)
    metrics = {
        'status': status,
        'image_shape': list(full.shape[:2]),
        'working_shape': list(image.shape[:2]),
        'hints': hint_info,
        'hint_seconds': round(hint_seconds, 3),
        'best_recon_psnr': result.best_psnr,
        'best_step': result.best_step,
        'recomposed_psnr': float(losses.psnr(jnp.asarray(images['recomposed'])[None], jnp.asarray(full)[None])),
        'foreground_fraction': float(images['mask_binary'].mean()),
        **result.metrics,
    }
    if inputs.gt_mask is not None:
      metrics.update(metrics_lib.mask_scores(images, inputs.gt_mask))
    del images['mask_whole']
    images['bg_hint'] = image_io.resize_image(bg_hint, full.shape[:2])
    panels = [
        ('input', full),
        ('fg', images['fg']),
        ('bg', images['bg']),
        ('mask', images['mask']),
        ('cut-out', images['cutout']),
    ]
    return outputs.Decomposition(images=images, metrics=metrics, summary=panels)

  return resume.solve(problem, config, key=train_key, finish=finish, checkpoints=checkpoints)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Segments `config.image` and writes all outputs to `workdir`: files in, `decompose`, files out.

  Returns:
    The metrics written to `metrics.json`.
  """
  return resume.run_decomposition(config, workdir, load_inputs=load_inputs, decompose=decompose)

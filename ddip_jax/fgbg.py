"""The foreground/background machinery that segmentation and video share.

The decomposition I = m * fg + (1 - m) * bg of one image or of a clip's frames
(tasks/segmentation.py's docstring has the losses): the generators' layers
with perturbed inputs (`perturbed_layers`), the two stages (`decomposition_stages`),
the full-size outputs with the refined and thresholded mask (`full_size_layers`),
and the checks of the `segmentation` config section both tasks read.
"""

from collections.abc import Callable
import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from scipy import ndimage

from ddip_jax import config_check
from ddip_jax import engine
from ddip_jax import filters
from ddip_jax import hints as hints_lib
from ddip_jax import image_io
from ddip_jax import losses
from ddip_jax import models


def perturbed_layers(
    generators: dict[str, nn.Module],
    inputs: dict[str, jax.Array],
    *,
    sigma_step: float,
    height: int,
    width: int,
) -> Callable[..., tuple[engine.Outputs, Any]]:
  """The layers as a function of the parameters, each input perturbed every step.

  Args:
    generators: name -> generator.
    inputs: name -> its noise input, (N, canvas H, canvas W, D).
    sigma_step: perturbation schedule (`models.perturbation_sigma`).
    height, width: the image size the outputs are centre-cropped to.

  Returns:
    layers(params, batch_stats, step, key, num_steps) -> (outputs, batch_stats),
    outputs keyed like `inputs`, each (N, height, width, C).
  """

  def layers(params, batch_stats, step, key, num_steps):
    sigma = models.perturbation_sigma(step, num_steps, sigma_step)
    keys = jax.random.split(key, len(inputs))
    noisy = {n: models.perturb(z, k, sigma) for (n, z), k in zip(inputs.items(), keys)}
    out, stats = models.apply_generators(generators, params, batch_stats, noisy)
    return {n: models.center_crop(o, height, width) for n, o in out.items()}, stats

  return layers


def stage_data(
    fg_hint: jax.Array,
    bg_hint: jax.Array,
    num_steps: int,
    *,
    hint_until: float,
    mask_fit: float,
    recon: float,
    gray: float,
    extra: float,
) -> dict[str, jax.Array]:
  """A decomposition stage's data: the hints (N, H, W, 1), the mask's target, the terms' weights and its length."""
  return {
      'fg_hint': fg_hint,
      'bg_hint': bg_hint,
      'mask_target': ((fg_hint - bg_hint) + 1.0) / 2.0,
      'weights': jnp.asarray([hint_until, mask_fit, recon, gray, extra], jnp.float32),
      'total': jnp.asarray([num_steps], jnp.int32),
  }


def correction_stage(stage: engine.Stage, fg_hint: jax.Array, bg_hint: jax.Array, num_steps: int) -> engine.Stage:
  """Step 2 of `decomposition_stages` continued on new hints (N, H, W, 1) for `num_steps` steps, the hint terms
  on throughout and no early stop (an interactive correction): the same loss function on other data, so the
  engine runs its compiled program again without tracing it."""
  weights = stage.data['weights'].at[0].set(CORRECTION_HINT_UNTIL)
  data = {
      **stage_data(fg_hint, bg_hint, num_steps, hint_until=0.0, mask_fit=0.0, recon=0.0, gray=0.0, extra=0.0),
      'weights': weights,
  }
  return dataclasses.replace(stage, name='correction', num_steps=num_steps, early_stop_psnr=None, data=data)


CORRECTION_HINT_UNTIL = 1e9  # A correction's hint phase: its whole length.


def decomposition_stages(
    config: ml_collections.ConfigDict,
    *,
    image: jax.Array,
    fg_hint: jax.Array,
    bg_hint: jax.Array,
    layers: Callable[..., tuple[engine.Outputs, Any]],
    extra_loss: Callable[[engine.Outputs], jax.Array] | None = None,
) -> list[engine.Stage]:
  """Segmentation's two stages (module docstring) for layers 'fg', 'bg', 'mask'.

  Args:
    config: full config (`segmentation`, `num_steps`, `learning_rate`,
      `early_stop_psnr` are read).
    image: (N, H, W, 3) the images to decompose (N > 1: the frames of a clip).
    fg_hint: (N, H, W, 1) foreground hints in [0, 1].
    bg_hint: (N, H, W, 1) background hints.
    layers: as returned by `perturbed_layers`; fg, bg (N, H, W, 3), mask (N, H, W, 1).
    extra_loss: a term of the outputs added to step 2's loss (e.g. temporal).

  Returns:
    The non-empty stages among step 1 and step 2.
  """
  seg = config.segmentation

  # Both steps are one loss function whose hints, term weights and length come
  # as the stage's data: the engine then runs one compiled program for both
  # stages, traced once (about half the start-up; issue 17), and a correction
  # with new hints (`with_hints`) runs it again without tracing it.
  def hint_terms(out, data):
    return losses.extended_l1(out['fg'], image, data['fg_hint']) + losses.extended_l1(out['bg'], image, data['bg_hint'])

  def loss_fn(params, batch_stats, step, key, data):
    out, stats = layers(params, batch_stats, step, key, data['total'][0])
    weights = data['weights']
    recon_image = losses.blend(out['mask'], out['fg'], out['bg'])
    loss = (
        jnp.where(step.astype(jnp.float32) <= weights[0], hint_terms(out, data), 0.0)
        + weights[1] * losses.l1(out['mask'], data['mask_target'])
        + weights[2] * losses.l1(recon_image, image)
        + weights[3] * (jnp.minimum(step, 1000) // 100) * losses.gray_loss(out['mask'])
    )
    if extra_loss is not None:
      loss += weights[4] * extra_loss(out)
    return loss, (stats, out, losses.psnr(recon_image, image))

  # Step 1 fits the hints (hint terms always on, the mask to the hint target);
  # step 2 recomposes the image, keeping the hint terms for it <= hint_phase.
  step1 = stage_data(
      fg_hint, bg_hint, seg.hint_steps, hint_until=math.inf, mask_fit=1.0, recon=0.0, gray=0.0, extra=0.0
  )
  step2 = stage_data(
      fg_hint,
      bg_hint,
      config.num_steps,
      hint_until=seg.hint_phase,
      mask_fit=0.0,
      recon=seg.recon_weight,
      gray=seg.gray_weight,
      extra=1.0,
  )
  early_stop = config.early_stop_psnr if config.early_stop_psnr > 0 else None
  # Step 1 tracks its best result too: the step functions are then the same program.
  stages = [
      engine.Stage('step1_hints', seg.hint_steps, loss_fn, config.learning_rate, data=step1),
      engine.Stage(
          'step2_decompose', config.num_steps, loss_fn, config.learning_rate, early_stop_psnr=early_stop, data=step2
      ),
  ]
  return [s for s in stages if s.num_steps > 0]


def refine_mask(mask: np.ndarray, guide: np.ndarray, *, radius_fraction: float, eps: float) -> np.ndarray:
  """Guided-filter refinement of a soft mask (the official post-processing).

  Args:
    mask: (H, W) soft mask in [0, 1].
    guide: (H, W, 3) image in [0, 1], same size.
    radius_fraction: radius as a fraction of the longer side (0 disables).
    eps: guided-filter regulariser.

  Returns:
    (H, W) refined mask clipped to [0, 1].
  """
  radius = filters.radius_px(radius_fraction, mask.shape)
  if radius <= 0:
    return mask
  out = filters.guided_filter(np.asarray(guide, np.float32), np.asarray(mask, np.float32), radius=radius, eps=eps)
  return np.clip(out, 0.0, 1.0)


def keep_hinted_components(binary: np.ndarray, fg_hint: np.ndarray) -> np.ndarray:
  """Keeps the connected regions of a binary mask that touch the foreground hint.

  Double-DIP's mask can pick up a second, unhinted region (e.g. a textured tree
  at the border) when its layers explain it slightly better as foreground. The
  hint says which object is wanted, so regions that do not touch it are dropped.

  Args:
    binary: (H, W) mask, foreground where > 0.5.
    fg_hint: (H, W) hint, same size; if it is empty the mask is returned as is.

  Returns:
    (H, W) float32 mask in {0, 1}.
  """
  fg = binary > 0.5
  hint = fg_hint > 0.5
  if not hint.any():
    return fg.astype(np.float32)
  labels, _ = ndimage.label(fg)
  kept = np.unique(labels[hint & (labels > 0)])
  return np.isin(labels, kept).astype(np.float32)


def full_size_layers(
    full: np.ndarray,
    best: dict[str, np.ndarray],
    fg_hint: np.ndarray,
    seg: ml_collections.ConfigDict,
    enforced: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> dict[str, np.ndarray]:
  """One image's outputs at full size, from its working-resolution layers.

  The layers are resized to the image, the mask refined with the guided filter
  (guide: the image), thresholded, and its regions not touching the fg hint
  dropped (`seg.keep_hinted_components`); with `seg.respect_hints`, the pixels
  of the `enforced` hints then keep their hint's side (the guided filter and
  Double-DIP's mask otherwise lose thin parts and take in clutter).

  Args:
    full: (H, W, 3) the full-size input.
    best: 'fg', 'bg' (h, w, 3) and 'mask' (h, w, 1) at working resolution.
    fg_hint: (h, w) the foreground hint used.
    seg: the `segmentation` config section.
    enforced: (fg, bg) hints (h, w) the final binary mask must respect (bg may
      be None); None: none (`seg.respect_hints` is ignored).

  Returns:
    (H, W[, 3]) images: 'fg', 'bg', 'mask' (refined), 'mask_raw', 'mask_whole'
    (thresholded), 'mask_binary' (after keep_hinted_components), 'recomposed',
    'cutout', 'fg_hint'.
  """
  shape = full.shape[:2]
  fg = image_io.resize_image(best['fg'], shape)
  bg = image_io.resize_image(best['bg'], shape)
  mask_raw = image_io.resize_image(best['mask'][..., 0], shape)
  mask = refine_mask(mask_raw, full, radius_fraction=seg.guided_radius, eps=seg.guided_eps)
  whole = (mask > seg.threshold).astype(np.float32)
  fg_hint = image_io.resize_image(fg_hint, shape)
  binary = keep_hinted_components(whole, fg_hint) if seg.keep_hinted_components else whole
  if seg.respect_hints and enforced is not None:
    sure_fg, sure_bg = enforced
    binary = np.maximum(binary, image_io.resize_image(sure_fg, shape) > 0.5)
    if sure_bg is not None:
      binary = binary * (image_io.resize_image(sure_bg, shape) <= 0.5)
    binary = binary.astype(np.float32)
  return {
      'fg': fg,
      'bg': bg,
      'mask': mask,
      'mask_raw': mask_raw,
      'mask_whole': whole,
      'mask_binary': binary,
      'recomposed': mask_raw[..., None] * fg + (1 - mask_raw[..., None]) * bg,
      'cutout': full * binary[..., None] + 0.5 * (1 - binary[..., None]),
      'fg_hint': fg_hint,
  }


GROW_METHODS = ('none', 'auto', 'select', 'grabcut')


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the `segmentation` section, which segmentation and video read.

  Raises:
    config_check.ConfigError: naming the first invalid field.
  """
  seg = config.segmentation
  require = config_check.require
  require(seg.hint_steps >= 0, 'segmentation.hint_steps', 'must be >= 0', seg.hint_steps)
  require(0 < seg.threshold < 1, 'segmentation.threshold', 'must be in (0, 1)', seg.threshold)
  require(seg.guided_radius >= 0, 'segmentation.guided_radius', 'must be >= 0', seg.guided_radius)
  require(seg.guided_eps > 0, 'segmentation.guided_eps', 'must be positive', seg.guided_eps)
  require(seg.grow_hints in GROW_METHODS, 'segmentation.grow_hints', f'one of {GROW_METHODS}', seg.grow_hints)
  require(0 <= seg.grow_margin < 0.5, 'segmentation.grow_margin', 'must be in [0, 0.5)', seg.grow_margin)
  require(seg.user_hint_steps >= 0, 'segmentation.user_hint_steps', 'must be >= 0', seg.user_hint_steps)
  require(seg.user_num_steps >= 0, 'segmentation.user_num_steps', 'must be >= 0', seg.user_num_steps)
  require(seg.user_learning_rate >= 0, 'segmentation.user_learning_rate', 'must be >= 0', seg.user_learning_rate)
  require(
      seg.auto_hints in hints_lib.METHODS,
      'segmentation.auto_hints',
      f'unknown method (one of {sorted(hints_lib.METHODS)})',
      seg.auto_hints,
  )

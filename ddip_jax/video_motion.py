"""A clip's camera motion and motion masks: the frames aligned (`align`), the automatic 'motion' hints' options
and background (`video_hints`), and the final mask made from the motion map where Double-DIP is unsure.

A task helper of the video task (`tasks/video.py`).
"""

from typing import Any

import ml_collections
import numpy as np

from ddip_jax import align
from ddip_jax import fgbg
from ddip_jax import hints as hints_lib
from ddip_jax import image_io
from ddip_jax import video_hints

ALIGN_MODES = ('auto', 'off')
HINT_SIDE = 256  # Longest side of the frames camera motion and hints are found on (at most the frames').


def camera_motion(config: ml_collections.ConfigDict, frames: np.ndarray) -> np.ndarray:
  """Each frame's transform onto the middle frame (`align.camera_motion`); identities with `video.align` 'off'.

  Returns:
    (F, 3, 3) in the pixel coordinates of `frames` (F, H, W, 3).
  """
  if config.video.align == 'off':
    return np.tile(np.eye(3), (len(frames), 1, 1))
  return align.camera_motion(frames)


def rescaled(transforms: np.ndarray, source: tuple[int, int], target: tuple[int, int]) -> np.ndarray:
  """Transforms (F, 3, 3) between frames of size `source` (H, W), for frames of size `target`."""
  scale = np.diag([target[1] / source[1], target[0] / source[0], 1.0])
  return scale @ transforms @ np.linalg.inv(scale)


def clip_hint_options(
    config: ml_collections.ConfigDict, transforms: np.ndarray, shape: tuple[int, int]
) -> dict[str, Any]:
  """The 'motion' hints' options (`hints.motion_hints`) for frames warped by `transforms`."""
  if config.video.auto_hints not in hints_lib.CLIP_METHODS:
    return {}
  valid = None if align.is_static(transforms) else align.coverage(transforms, shape)
  return {
      'valid': valid,
      'match_lighting': config.video.match_lighting,
      'estimate_background': background_model(config),
  }


BACKGROUND_MODELS = ('mode', 'median')


def background_model(config: ml_collections.ConfigDict):
  """The 'motion' hints' background (`hints.background_change`'s `estimate_background`): `video.background` 'mode'
  (`video_hints.mode_background`) or 'median' (None: the default)."""
  return video_hints.mode_background if config.video.background == 'mode' else None


def motion_mask(config: ml_collections.ConfigDict, frames: np.ndarray, *, high: float = 12.0) -> np.ndarray:
  """What the automatic 'motion' hints start from, as a mask: change above `high` Delta E (`hints.background_change`),
  on frames aligned as `decompose` aligns them and warped back.

  Args:
    frames: (F, H, W, 3) in [0, 1].

  Returns:
    (F, H, W) float32 in {0, 1}.
  """
  transforms = camera_motion(config, frames)
  aligned = align.to_reference(frames, transforms)
  options = clip_hint_options(config, transforms, frames.shape[1:3])
  change = hints_lib.background_change(
      aligned,
      valid=options.get('valid'),
      match_lighting=config.video.match_lighting,
      estimate_background=background_model(config),
  )
  return align.from_reference((change > high).astype(np.float32), transforms, nearest=True)


def refined_motion_mask(config: ml_collections.ConfigDict, frames: np.ndarray) -> np.ndarray:
  """The final mask with Double-DIP unsure everywhere (no optimisation): the motion map refined, thresholded and
  kept to the hints as `with_motion_mask` does, on frames aligned as `decompose` aligns them, warped back.

  Args:
    frames: (F, H, W, 3) in [0, 1] (hints found at this size).

  Returns:
    (F, H, W) float32 in {0, 1}.
  """
  transforms = camera_motion(config, frames)
  aligned = align.to_reference(frames, transforms)
  options = clip_hint_options(config, transforms, frames.shape[1:3])
  fg, bg = hints_lib.motion_hints(aligned, **options)
  motion = video_hints.motion_map(
      hints_lib.background_change(
          aligned,
          valid=options['valid'],
          match_lighting=options['match_lighting'],
          estimate_background=options['estimate_background'],
      )
  )
  unsure = {'mask_raw': np.full(frames.shape[1:3], 0.5, np.float32)}
  masks = [
      with_motion_mask({**unsure, 'fg_hint': fg[f]}, aligned[f], motion[f], (fg[f], bg[f]), config)['mask_binary']
      for f in range(len(frames))
  ]
  return align.from_reference(np.stack(masks), transforms, nearest=True)


def motion_map(config: ml_collections.ConfigDict, frames: np.ndarray, transforms: np.ndarray) -> np.ndarray | None:
  """The automatic 'motion' hints' soft mask (`video_hints.motion_map`) of the (aligned) `frames`, (F, H, W);
  None when `video.confident_mask` is unset or the hints are not all automatic 'motion' ones."""
  vid = config.video
  if vid.confident_mask is None or vid.auto_hints not in hints_lib.CLIP_METHODS or config.fg_hint or config.bg_hint:
    return None
  options = clip_hint_options(config, transforms, frames.shape[1:3])
  change = hints_lib.background_change(
      frames,
      valid=options['valid'],
      match_lighting=options['match_lighting'],
      estimate_background=options['estimate_background'],
  )
  return video_hints.motion_map(change)


def with_motion_mask(
    layers: dict[str, np.ndarray],
    full: np.ndarray,
    motion: np.ndarray,
    enforced: tuple[np.ndarray, np.ndarray],
    config: ml_collections.ConfigDict,
) -> dict[str, np.ndarray]:
  """One frame's `fgbg.full_size_layers` with the final mask made from the motion map and Double-DIP's soft mask
  where it is sure (`video_hints.confident_blend`), refined, thresholded and kept to the hints as there.

  Args:
    layers: `fgbg.full_size_layers`' output for the frame (its 'mask_raw' is Double-DIP's).
    full: (H, W, 3) the frame (the guided filter's guide).
    motion: (h, w) the frame's motion map.
    enforced: (fg, bg) hints (h, w).
  """
  seg = config.segmentation
  shape = full.shape[:2]
  soft = video_hints.confident_blend(
      layers['mask_raw'],
      image_io.resize_image(motion, shape),
      config.video.confident_mask,
      remove=config.video.confident_removes,
  )
  mask = fgbg.refine_mask(soft, full, radius_fraction=seg.guided_radius, eps=seg.guided_eps)
  whole = (mask > seg.threshold).astype(np.float32)
  binary = fgbg.keep_hinted_components(whole, layers['fg_hint']) if seg.keep_hinted_components else whole
  if seg.respect_hints:
    sure_fg, sure_bg = (image_io.resize_image(h, shape) > 0.5 for h in enforced)
    binary = (np.maximum(binary, sure_fg) * ~sure_bg).astype(np.float32)
  return {
      **layers,
      'mask': mask,
      'mask_whole': whole,
      'mask_binary': binary,
      'cutout': full * binary[..., None] + 0.5 * (1 - binary[..., None]),
  }


def unwarped(layers: dict[str, np.ndarray], full: np.ndarray, transform: np.ndarray) -> dict[str, np.ndarray]:
  """One frame's `fgbg.full_size_layers`, made in the reference frame's coordinates, warped back onto `full`.

  Args:
    layers: name -> (H, W[, C]) in the reference frame's coordinates.
    full: (H, W, 3) the frame itself.
    transform: (3, 3) the frame's transform onto the reference frame.

  Returns:
    The same names, in the frame's coordinates; 'cutout' cut from `full`.
  """
  out = {
      name: align.from_reference(value[None], transform[None], nearest=name.startswith('mask_'))[0]
      for name, value in layers.items()
  }
  binary = out['mask_binary'][..., None]
  out['cutout'] = full * binary + 0.5 * (1 - binary)
  return out

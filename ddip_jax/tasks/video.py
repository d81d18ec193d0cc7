"""Video foreground/background decomposition: I_f = m_f * fg_f + (1 - m_f) * bg_f.

The input (`config.image`) is a folder of frames or an animated GIF. Frames are
processed in overlapping windows (`video.window_size`, `video.window_overlap`),
so memory stays bounded for long clips; each window is one optimisation whose
frames go through the generators as one batch (shared parameters):
  fg, mask: one generator each, fed temporally coherent noise (frame f's input
            is frame f-1's, scaled by `video.noise_correlation`, plus a small
            increment, `models.make_video_noise`), so neighbouring frames get
            neighbouring inputs;
  bg:       one generator with one input for every frame (a static camera sees
            one background; `video.static_background`), or coherent noise too.
Hints are the user's (a folder of per-frame masks, or one mask for all frames)
or automatic: 'motion' (the clip's median is the background, what differs from
it moves) or a single-image method frame by frame (`ddip_jax/hints.py`).

The losses are segmentation's (`tasks/segmentation.py`: step 1 fits the hints,
step 2 adds the reconstruction and the GrayLoss ramp; the `segmentation`
config section sets them) over all frames of the window. Step 2 adds
  background_weight * mean(b_f * m_f),  b_f = exp(-e_f^2 / (2 sigma^2)),
e_f the largest colour difference between frame f and the shared background
layer (held constant in the gradient): where fg and bg could both draw a pixel
the reconstruction does not care about the mask, but what the background
already draws is background. And, optionally,
  temporal_weight * mean(w_f * |m_f - m_{f-1}|),  w_f = exp(-d_f^2 / (2 sigma^2)),
d_f the largest colour change of a pixel between frames f-1 and f: where the
input does not change, neither should the mask.

The windows' soft layers are blended linearly over their overlaps; then each
frame's mask is refined and thresholded as in segmentation.
"""

import dataclasses
import os
import time
from typing import Any

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ddip_jax import align
from ddip_jax import clip_io
from ddip_jax import config_check
from ddip_jax import engine
from ddip_jax import fgbg
from ddip_jax import hints as hints_lib
from ddip_jax import image_io
from ddip_jax import losses
from ddip_jax import metrics as metrics_lib
from ddip_jax import models
from ddip_jax import outputs
from ddip_jax import resume
from ddip_jax import summary_picture
from ddip_jax import video_motion

# Per-frame outputs: a folder of PNGs and a GIF each (fg_hint, bg_hint: PNGs only).
FRAME_LAYERS = ('fg', 'bg', 'mask', 'mask_binary', 'cutout')
_SUMMARY_ROWS = (('input', None), ('fg', 'fg'), ('bg', 'bg'), ('mask', 'mask'), ('cut-out', 'cutout'))


def windows(num_frames: int, size: int, overlap: int) -> list[tuple[int, int]]:
  """The (start, end) frame ranges of the optimisation windows.

  Windows of `size` frames start every `size - overlap` frames; the last one
  ends at the last frame (so it may overlap its neighbour by more), and every
  window has the same size.

  Args:
    num_frames: F.
    size: frames per window; 0 or >= F: one window for the whole clip.
    overlap: frames shared by consecutive windows, 0 <= overlap < size.

  Returns:
    Increasing (start, end) pairs covering range(F).
  """
  if size <= 0 or size >= num_frames:
    return [(0, num_frames)]
  starts = list(range(0, num_frames - size, size - overlap)) + [num_frames - size]
  return [(s, s + size) for s in starts]


def blend_windows(
    spans: list[tuple[int, int]], layers: list[dict[str, np.ndarray]]
) -> dict[int, dict[str, np.ndarray]]:
  """Each frame's layers, blended linearly where windows overlap.

  A window weighs a frame by its distance to the window's nearer end (frames
  at a window's edge were fitted with fewer neighbours).

  Args:
    spans: the windows' (start, end).
    layers: per window, name -> (end - start, H, W, C) array.

  Returns:
    frame index -> name -> (H, W, C), for every frame of some window.
  """
  sums: dict[int, dict[str, np.ndarray]] = {}
  totals: dict[int, float] = {}
  for (start, end), window in zip(spans, layers):
    for f in range(start, end):
      weight = float(min(f - start + 1, end - f))
      frame = sums.setdefault(f, {})
      for name, value in window.items():
        frame[name] = frame.get(name, 0.0) + weight * np.asarray(value[f - start], np.float32)
      totals[f] = totals.get(f, 0.0) + weight
  return {f: {n: v / totals[f] for n, v in frame.items()} for f, frame in sorted(sums.items())}


def colour_match(a: jax.Array, b: jax.Array, sigma: float) -> jax.Array:
  """How alike two images are, pixel by pixel: exp(-d^2 / (2 sigma^2)), d = max_c |a - b|.

  Args:
    a, b: (N, H, W, 3) images in [0, 1].
    sigma: colour difference (largest over channels) at which the match is exp(-1/2).

  Returns:
    (N, H, W, 1) in (0, 1].
  """
  chex.assert_equal_shape([a, b])
  difference = jnp.max(jnp.abs(a - b), axis=-1, keepdims=True)
  return jnp.exp(-jnp.square(difference) / (2 * sigma**2))


def still_weights(frames: jax.Array, sigma: float) -> jax.Array:
  """Weights of the temporal term: near 1 where a pixel keeps its colour between frames.

  Returns:
    (F - 1, H, W, 1) `colour_match` of consecutive frames (F, H, W, 3).
  """
  return colour_match(frames[1:], frames[:-1], sigma)


def clip_noise(
    config: ml_collections.ConfigDict, key: jax.Array, num_frames: int, shape: tuple[int, int]
) -> dict[str, jax.Array]:
  """The generators' inputs for a whole clip (windows take slices of them).

  Returns:
    'fg', 'mask': (F, canvas H, canvas W, D) coherent noise; 'bg': the same
    shape, or (1, ...) with `video.static_background`.
  """
  gen, vid = config.generator, config.video
  canvas = models.canvas_shape(*shape, len(gen.channels_down))

  def coherent(k):
    return models.video_noise_from_config(
        gen, jax.random.fold_in(key, k), canvas, num_frames=num_frames, correlation=vid.noise_correlation
    )

  bg = models.noise_from_config(gen, jax.random.fold_in(key, 2), canvas) if vid.static_background else coherent(2)
  return {'fg': coherent(0), 'bg': bg, 'mask': coherent(1)}


def build_problem(
    config: ml_collections.ConfigDict,
    frames: np.ndarray,
    fg_hint: np.ndarray,
    bg_hint: np.ndarray,
    inputs: dict[str, jax.Array],
) -> engine.Problem:
  """The decomposition problem of one window of frames.

  Args:
    config: full config (`generator`, `segmentation`, `video` are read).
    frames: (F, H, W, 3) float in [0, 1], the window's working-resolution frames.
    fg_hint: (F, H, W) in [0, 1], 1 where a pixel is surely foreground.
    bg_hint: (F, H, W) in [0, 1], 1 where it is surely background.
    inputs: 'fg', 'mask' (F, canvas H, canvas W, D) and 'bg' (1 or F, ...) noise.

  Returns:
    An `engine.Problem` with generators 'fg', 'bg', 'mask' (outputs (F, H, W, C)).
  """
  vid = config.video
  num_frames, height, width = frames.shape[:3]
  layer_gen = models.generator_from_config(config.generator, out_channels=3)
  mask_gen = models.generator_from_config(config.generator, out_channels=1)
  generators = {'fg': layer_gen, 'bg': layer_gen, 'mask': mask_gen}
  layers = fgbg.perturbed_layers(
      generators, inputs, sigma_step=config.segmentation.sigma_step, height=height, width=width
  )

  def frame_layers(params, batch_stats, step, key, num_steps):
    out, stats = layers(params, batch_stats, step, key, num_steps)
    # A static background is drawn once and shared by every frame.
    return {**out, 'bg': jnp.broadcast_to(out['bg'], (num_frames, height, width, 3))}, stats

  img = jnp.asarray(frames)
  still = still_weights(img, vid.colour_sigma)

  def extra_loss(out):
    loss = 0.0
    if vid.background_weight > 0:
      # Where the shared background already draws the frame, the pixel is background.
      drawn = colour_match(img, jax.lax.stop_gradient(out['bg']), vid.colour_sigma)
      loss += vid.background_weight * jnp.mean(drawn * out['mask'])
    if vid.temporal_weight > 0:
      loss += vid.temporal_weight * losses.temporal_consistency(out['mask'], still)
    return loss

  stages = fgbg.decomposition_stages(
      config,
      image=img,
      fg_hint=jnp.asarray(fg_hint, jnp.float32)[..., None],
      bg_hint=jnp.asarray(bg_hint, jnp.float32)[..., None],
      layers=frame_layers,
      extra_loss=extra_loss,
  )
  return engine.Problem(generators=generators, inputs=inputs, stages=stages)


def summary_strip(full: np.ndarray, frames: dict[int, dict[str, np.ndarray]], count: int) -> np.ndarray:
  """`summary.png`: rows input, fg, bg, mask, cut-out; columns `count` frames spread over the clip.

  Args:
    full: (F, H, W, 3) the input frames.
    frames: frame index -> `fgbg.full_size_layers` output, for the frames done.
    count: columns (at most the frames done).

  Returns:
    (rows, columns, 3) float32 in [0, 1].
  """
  done = sorted(frames)
  picks = [done[round(i)] for i in np.linspace(0, len(done) - 1, min(count, len(done)))]
  height = min(full.shape[1], 160)
  rows = []
  for title, name in _SUMMARY_ROWS:
    panels = [(f'{title} {f}', full[f] if name is None else frames[f][name]) for f in picks]
    rows.append(summary_picture.make_summary(panels, height=height))
  gap = np.ones((4, rows[0].shape[1], 3), np.float32)
  return np.concatenate([part for row in rows for part in (row, gap)][:-1])


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the `video` section and the `segmentation` fields it uses."""
  fgbg.validate(config)
  vid = config.video
  require = config_check.require
  methods = sorted({**hints_lib.METHODS, **hints_lib.CLIP_METHODS})
  require(vid.auto_hints in methods, 'video.auto_hints', f'unknown method (one of {methods})', vid.auto_hints)
  require(
      vid.window_size == 0 or vid.window_size >= 2,
      'video.window_size',
      'must be 0 (whole clip) or at least 2 frames',
      vid.window_size,
  )
  require(
      vid.window_overlap >= 0 and (vid.window_size == 0 or vid.window_overlap < vid.window_size),
      'video.window_overlap',
      'must be >= 0 and smaller than video.window_size',
      vid.window_overlap,
  )
  require(vid.align in video_motion.ALIGN_MODES, 'video.align', f'one of {video_motion.ALIGN_MODES}', vid.align)
  require(
      vid.background in video_motion.BACKGROUND_MODELS,
      'video.background',
      f'one of {video_motion.BACKGROUND_MODELS}',
      vid.background,
  )
  confident = vid.confident_mask
  require(confident is None or 0 <= confident <= 0.5, 'video.confident_mask', 'must be in [0, 0.5]', confident)
  require(0 <= vid.noise_correlation <= 1, 'video.noise_correlation', 'must be in [0, 1]', vid.noise_correlation)
  for field in ('temporal_weight', 'background_weight'):
    require(vid[field] >= 0, f'video.{field}', 'must be >= 0', vid[field])
  require(vid.colour_sigma > 0, 'video.colour_sigma', 'must be positive', vid.colour_sigma)
  require(vid.gif_duration_ms >= 1, 'video.gif_duration_ms', 'must be at least 1', vid.gif_duration_ms)
  require(vid.summary_frames >= 1, 'video.summary_frames', 'must be at least 1', vid.summary_frames)


@dataclasses.dataclass(frozen=True)
class Inputs:
  """A clip, in memory.

  Attributes:
    frames: (F, H, W, 3) float32 in [0, 1] at full size.
    names: each frame's name (its file's, or 'frame k').
    gt_mask: (F, H, W) ground truth to score against, or None.
    name: what to call the clip in messages.
  """

  frames: np.ndarray
  names: list[str]
  gt_mask: np.ndarray | None = None
  name: str = 'the frames'


def load_inputs(config: ml_collections.ConfigDict, arrays: dict[str, np.ndarray] | None = None) -> Inputs:
  """Reads `config`'s files (the clip `image`, hints are read by `decompose`, `gt_mask`) but the clip when
  `arrays` gives it (as `image`, (F, H, W, 3)): the only place the task reads frames.

  Raises:
    image_io.InputError: a file cannot be read.
  """
  arrays = arrays or {}
  if 'image' in arrays:
    full = np.asarray(arrays['image'], np.float32)
    names, name = [f'frame {k}' for k in range(len(full))], 'the frames'
  else:
    full, names = clip_io.load_frames(config.image)
    name = repr(config.image)
  # Read before the optimisation: a bad path must not cost (and lose) a whole run.
  gt = clip_io.load_masks(config.gt_mask, count=len(full), shape=full.shape[1:3]) if config.gt_mask else None
  return Inputs(frames=full, names=names, gt_mask=gt, name=name)


def write(result: outputs.Decomposition, config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes the frames of every layer (and a GIF of each), the summary and metrics.json to `workdir`."""
  for name in FRAME_LAYERS:
    clip_io.save_gif(
        os.path.join(workdir, f'{name}.gif'), result.frames(name), duration_ms=config.video.gif_duration_ms
    )
  outputs.write(result, config, workdir)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Decomposes the clip `config.image` and writes all outputs to `workdir`: files in, `decompose`, files out.

  Returns:
    The metrics written to `metrics.json`.
  """
  return resume.run_decomposition(config, workdir, load_inputs=load_inputs, decompose=decompose, write=write)


def decompose(
    config: ml_collections.ConfigDict, inputs: Inputs, *, checkpoints: str | None = None
) -> outputs.Decomposition:
  """Decomposes a clip, in memory.

  One optimisation per window (`resume.solve_parts`; with a checkpoint each in
  `checkpoints` when a workdir is given: a rerun resumes); a run that stops
  early raises with the frames done so far as the error's `partial`.
  """
  vid = config.video
  start = time.perf_counter()
  full, names, gt = inputs.frames, inputs.names, inputs.gt_mask
  num_frames, shape = len(full), full.shape[1:3]
  first, _ = image_io.working_image(
      full[0], config.max_side, path=inputs.name, min_side=2 ** len(config.generator.channels_down)
  )
  work = first.shape[:2]
  t0 = time.perf_counter()
  # Camera motion and hints at up to video_motion.HINT_SIDE pixels, whatever the generators' working size: both lose
  # thin parts and matches when the frames shrink, and both are cheap next to the optimisation.
  sharp = np.stack([image_io.working_image(f, max(video_motion.HINT_SIDE, config.max_side))[0] for f in full])
  hint_shape = sharp.shape[1:3]
  # A moving camera: everything below works in the middle frame's coordinates; `finish` warps back.
  transforms = video_motion.camera_motion(config, sharp)
  moving = not align.is_static(transforms)
  full_transforms = video_motion.rescaled(transforms, hint_shape, shape)
  seen = full
  if moving:
    sharp = align.to_reference(sharp, transforms)
    seen = align.to_reference(full, full_transforms)
  sure_fg, sure_bg, hint_info = hints_lib.resolve_hints(
      sharp,
      fg_path=config.fg_hint,
      bg_path=config.bg_hint,
      method=vid.auto_hints,
      clip_options=video_motion.clip_hint_options(config, transforms, hint_shape),
  )
  motion = video_motion.motion_map(config, sharp, transforms)
  frames = np.stack([image_io.resize_image(f, work) for f in sharp])
  fg_hint, bg_hint = (
      (np.stack([image_io.resize_image(h, work) for h in hint]) > 0.5).astype(np.float32) for hint in (sure_fg, sure_bg)
  )
  hint_seconds = time.perf_counter() - t0
  noise_key, train_key = jax.random.split(jax.random.key(config.seed))
  noise = clip_noise(config, noise_key, num_frames, work)
  spans = windows(num_frames, vid.window_size, vid.window_overlap)
  done: list[tuple[tuple[int, int], engine.Result]] = []

  def finish(status: str) -> outputs.Decomposition:
    blended = blend_windows([span for span, _ in done], [r.best for _, r in done])
    # The hints' sure pixels keep their side (`segmentation.respect_hints`): the decomposition decides the
    # band between them, so its mask cannot lose what the hints already had (issue 28).
    per_frame = {
        f: fgbg.full_size_layers(seen[f], layers, sure_fg[f], config.segmentation, enforced=(sure_fg[f], sure_bg[f]))
        for f, layers in blended.items()
    }
    if motion is not None:
      per_frame = {
          f: video_motion.with_motion_mask(layers, seen[f], motion[f], (sure_fg[f], sure_bg[f]), config)
          for f, layers in per_frame.items()
      }
    if moving:
      per_frame = {f: video_motion.unwarped(layers, full[f], full_transforms[f]) for f, layers in per_frame.items()}
    order = sorted(per_frame)
    images = {}
    for name in FRAME_LAYERS + ('fg_hint',):
      images.update({f'{name}/{f:04d}': per_frame[f][name] for f in order})
    bg_hints = {f: image_io.resize_image(sure_bg[f], shape) for f in order}
    if moving:
      bg_hints = {
          f: align.from_reference(h[None], full_transforms[f][None], nearest=True)[0] for f, h in bg_hints.items()
      }
    images.update({f'bg_hint/{f:04d}': bg_hints[f] for f in order})
    recomposed_psnr = [
        float(losses.psnr(jnp.asarray(per_frame[f]['recomposed'])[None], jnp.asarray(full[f])[None])) for f in order
    ]
    seconds = time.perf_counter() - start
    metrics: dict[str, Any] = {
        'status': status,
        'num_frames': num_frames,
        'frames_done': len(order),
        'frame_names': names,
        'frame_shape': list(shape),
        'working_shape': list(work),
        'windows': [list(span) for span, _ in done],
        'windows_planned': len(spans),
        'hints': hint_info,
        'camera_moves': moving,
        'camera_corner_motion_px': round(align.corner_motion(full_transforms, shape), 2),
        'hint_seconds': round(hint_seconds, 3),
        'recomposed_psnr': float(np.mean(recomposed_psnr)),
        'foreground_fraction': float(np.mean([per_frame[f]['mask_binary'].mean() for f in order])),
    }
    if gt is not None:
      scores = [metrics_lib.mask_scores(per_frame[f], gt[f]) for f in order]
      metrics.update({k: float(np.mean([s[k] for s in scores])) for k in scores[0]})  # Means over frames.
      metrics['iou_per_frame'] = [s['iou'] for s in scores]
    metrics['window_runs'] = [
        {'frames': list(span), 'best_recon_psnr': r.best_psnr, 'best_step': r.best_step, **r.metrics}
        for span, r in done
    ]
    metrics['seconds'] = round(seconds, 3)
    metrics['frames_per_second'] = round(len(order) / seconds, 4)
    return outputs.Decomposition(
        images=images, metrics=metrics, summary=summary_strip(full, per_frame, vid.summary_frames)
    )

  def problem(index: int) -> engine.Problem:
    a, b = spans[index]
    inputs = {n: z[a:b] if z.shape[0] == num_frames else z for n, z in noise.items()}
    return build_problem(config, frames[a:b], fg_hint[a:b], bg_hint[a:b], inputs)

  return resume.solve_parts(
      config,
      num_parts=len(spans),
      part_name='window',
      key=train_key,
      problem=problem,
      keep=lambda index, result: done.append((spans[index], result)),
      finish=finish,
      checkpoints=checkpoints,
  )

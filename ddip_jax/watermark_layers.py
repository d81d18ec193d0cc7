"""From the watermark runs' layers to the task's final images, summary panels and scores.

Each run's layers are its networks' outputs at the last iteration
(`run_layers`); the final layers are the per-pixel medians over the runs
(`blending.median_layers`), turned into the output images at full size
(`compose`) and scored against the ground truth if there is one (`final_images`).

Outputs ('hint'): clean.png = (1 - h) I + h median(C) (or the de-blended
image, `clean_from`); clean_deblend.png, the input de-blended with median(M)
and median(W) inside the box; clean_fit.png, the input de-blended per pixel
towards one opacity and colour fitted against median(C) (`blending.fit_blend`,
`blending.deblend_fitted`; both in metrics.json; with `clean_from='fit'`, clean.png keeps the input instead
when `self_check` does not trust the fit, and metrics.json's `self_check` says whether it passed and why
not; with 'fit_tv' and 'cut' the de-blending of `watermark_tv` and `watermark_cut` instead, also checked);
clean_soft.png, which
keeps I wherever h median(M) < keep_threshold; clean_raw.png = median(C);
watermark.png = h median(W M); mask.png = median(M) ('fit': the fitted per-pixel opacity and that
times the fitted colour, none when the self-check fell back); hint.png. Runs without step 2
(`num_steps` = 0, for the `clean_from` not in NEED_STEP2) have C alone: no clean_deblend.png nor
clean_soft.png, which are made of M and W.
('many'): clean<k>.png = median(C_k) where median(W M) >= keep_threshold
(`keep_from='watermark'`, official; 'effect': where the watermark changes C_k
by at least effect_threshold, max_c |M (W - C_k)|, which also finds a dark
watermark; 'both': where either says so), the input elsewhere;
clean<k>_raw.png; watermark.png (median(W M), 0 below the threshold);
mask.png. With ground truth, PSNR/SSIM of the result and of the
input itself, overall and inside the box (the bounding box of the hint, or of
`eval_box`).
"""

from typing import Any

import ml_collections
import numpy as np
from scipy import ndimage

from ddip_jax import blending
from ddip_jax import image_io
from ddip_jax import metrics as metrics_lib
from ddip_jax import watermark_cut
from ddip_jax import watermark_io
from ddip_jax import watermark_tv

# The self-check of a fitted de-blending (`self_check`): the limits of a decomposition we trust. A mark
# must stand out in the box (stroke contrast), its fitted blend must be one a watermark can have (opacity;
# colour within 0.6 of [0, 1]: a and w trade off on thin strokes) and explain its strokes (consistency:
# the share of stroke pixels whose own opacity is within [1/2, 3/2] of the fitted one), and, where the
# box's mean grey level is close to its surroundings' (within HOMOGENEOUS: a photo even at the box's
# scale), the removal must not push the box further off to the side it already is off to (by more than
# the tolerance): a mark pushes an even box towards its own colour, so its removal pulls the box back,
# whereas removing the gaps between the strokes (the wrong polarity) pushes it further. Chosen on
# benchmarks/eval_watermark.py's set (docs/watermark.md).
MIN_STROKE_CONTRAST = 1.6
OPACITY_RANGE = (0.08, 0.85)
COLOUR_RANGE = (-0.6, 1.6)
MIN_CONSISTENCY = 0.75
HOMOGENEOUS = 0.05
SURROUNDINGS_TOLERANCE = 0.01
# Width of the ring around the box that stands for the box's surroundings, pixels.
RING_WIDTH = 6
# The `clean_from` whose clean.png, watermark.png and mask.png are step 2's M and W; the others are fits
# against C (step 1's, or step 2's if it trains C) or the input alone, and may skip step 2.
NEED_STEP2 = ('generator', 'deblend')


def self_check(
    image: np.ndarray,
    result: np.ndarray,
    clean: np.ndarray,
    strokes: np.ndarray,
    box: np.ndarray,
    *,
    opacity: float,
    colour: np.ndarray,
    stroke_contrast: float | None,
) -> dict[str, Any]:
  """Whether a fitted de-blending can be trusted, without ground truth.

  Args:
    image: (H, W, 3) the watermarked input.
    result: (H, W, 3) the de-blended result.
    clean: (H, W, 3) the clean estimate the blend was fitted against (C).
    strokes: (H, W) the strokes found in the box (the region of the fit).
    box: (H, W) the user's box.
    opacity, colour: the fitted blend (`blending.fit_blend`).
    stroke_contrast: `watermark_io.stroke_contrast` of the strokes, or None (not checked).

  Returns:
    {'passed': bool, 'reasons': the failed checks (empty when passed), and the measured values}.
  """
  inside, on = box > 0.5, strokes > 0.5
  towards = colour - clean
  own = np.sum((image - clean) * towards, axis=-1) / np.maximum(np.sum(towards**2, axis=-1), 1e-3)
  consistency = float(np.mean((own[on] >= opacity / 2) & (own[on] <= 1.5 * opacity))) if on.any() else 0.0
  ring = ndimage.binary_dilation(inside, iterations=RING_WIDTH) & ~inside
  if ring.any():  # The box's mean grey level less its surroundings', before and after.
    around = float(image[ring].mean())
    input_gap, result_gap = float(image[inside].mean()) - around, float(result[inside].mean()) - around
  else:
    input_gap = result_gap = 0.0
  values = {
      'stroke_contrast': None if stroke_contrast is None else round(float(stroke_contrast), 4),
      'opacity_consistency': round(consistency, 4),
      'input_gap': round(input_gap, 4),
      'result_gap': round(result_gap, 4),
  }
  reasons = []
  if stroke_contrast is not None and stroke_contrast < MIN_STROKE_CONTRAST:
    reasons.append(
        f'the strokes barely stand out of the photo (contrast {stroke_contrast:.2f} < ' f'{MIN_STROKE_CONTRAST})'
    )
  if not OPACITY_RANGE[0] <= opacity <= OPACITY_RANGE[1]:
    reasons.append(f'fitted opacity {opacity:.2f} outside {list(OPACITY_RANGE)}')
  if np.any(colour < COLOUR_RANGE[0]) or np.any(colour > COLOUR_RANGE[1]):
    reasons.append(f'fitted colour {[round(float(c), 2) for c in colour]} outside {list(COLOUR_RANGE)}')
  if consistency < MIN_CONSISTENCY:
    reasons.append(f'the strokes do not follow one opacity (consistency {consistency:.3f} < {MIN_CONSISTENCY})')
  if (
      abs(input_gap) < HOMOGENEOUS
      and input_gap * (result_gap - input_gap) > 0
      and abs(result_gap) > abs(input_gap) + SURROUNDINGS_TOLERANCE
  ):
    reasons.append(
        f'the result is further from the surroundings than the input (box less surroundings, grey: '
        f'{result_gap:+.3f} against {input_gap:+.3f})'
    )
  return {'passed': not reasons, 'reasons': reasons, **values}


def clean_names(num_images: int) -> tuple[str, ...]:
  """Names of the clean generators: ('clean',) for one image, else 'clean1', 'clean2', ..."""
  return ('clean',) if num_images == 1 else tuple(f'clean{k}' for k in range(1, num_images + 1))


def run_layers(outputs: dict[str, Any]) -> list[dict[str, np.ndarray]]:
  """Each run's layers from the outputs of a last iteration.

  Args:
    outputs: the last stage's outputs at its final step (`engine.Result.last`:
      unaugmented, unperturbed, the official code's result), (1, H, W, C)
      per layer, or (R, 1, H, W, C) for R batched runs.

  Returns:
    One dict per run mapping generator names to (H, W, C) float32 layers.
  """
  some = np.asarray(next(iter(outputs.values())))
  if some.ndim == 4:  # One run.
    return [{name: np.asarray(o, np.float32)[0] for name, o in outputs.items()}]
  return [{name: np.asarray(o, np.float32)[r, 0] for name, o in outputs.items()} for r in range(some.shape[0])]


def compose(
    inputs: watermark_io.Inputs,
    medians: dict[str, np.ndarray],
    *,
    threshold: float,
    clean_from: str = 'generator',
    keep_from: str = 'watermark',
    effect_threshold: float = 0.2,
    max_opacity: float = 0.9,
    info: dict[str, Any] | None = None,
) -> dict[str, np.ndarray]:
  """The output images at full size from the runs' medians (see the module docstring).

  `clean_from` ('hint' mode): whether `clean` inside the box is the median of
  C ('generator'), the input de-blended with the medians of M and W
  ('deblend', `deblend` with `max_opacity`; in `clean_deblend` if there are M and W) or the
  input de-blended per pixel towards one colour and opacity fitted against
  median(C) on the hint ('fit', `fit_blend` and `deblend_fitted`; always in
  `clean_fit`). The fitted opacity and colour go to `info` if given. With 'fit', `self_check` decides
  whether `clean` is the fit or the input (its verdict goes to `info['self_check']`), and `mask` and
  `watermark` are the fit's per-pixel opacity and opacity times colour (zero after a fallback). 'fit_tv'
  de-blends with `watermark_tv.fit_blend_tv` on the strokes (`info['tv_fit']`), 'cut' with the mark
  `watermark_cut.find_mark` found (`inputs.mark`, `info['cut']`), each changing only the pixels its mark
  covers; 'cut' is judged by `watermark_cut.cut_check` (against median(C)), 'fit' and 'fit_tv' by `self_check`.
  """
  shape = inputs.full.shape[1:3]
  up = {name: image_io.resize_image(layer, shape) for name, layer in medians.items()}
  up = {name: layer if layer.ndim == 3 else layer[..., None] for name, layer in up.items()}
  if inputs.hint is not None:
    h, image = inputs.hint[..., None], inputs.full[0]
    step2 = 'mask' in up  # Else the runs skipped step 2 (num_steps = 0): C alone, no M and W.
    if not step2 and clean_from in NEED_STEP2:
      raise ValueError(f"clean_from={clean_from!r} needs step 2's M and W (num_steps >= 1)")
    deblended = blending.deblend(image, h * up['mask'], up['watermark'], max_opacity=max_opacity) if step2 else None
    opacity, colour = blending.fit_blend(image, up['clean'], inputs.hint, max_opacity=max_opacity)
    fitted = blending.deblend_fitted(
        image, up['clean'], inputs.hint, opacity=opacity, colour=colour, max_opacity=max_opacity
    )
    if info is not None:
      info.update(fit_opacity=round(opacity, 4), fit_colour=[round(float(c), 4) for c in colour])
    box = inputs.box_hint if inputs.box_hint is not None else inputs.hint
    mask = blending.fitted_opacity(image, up['clean'], inputs.hint, opacity=opacity, colour=colour)[..., None]
    mark_colour = np.clip(colour, 0.0, 1.0)
    if clean_from == 'fit_tv':  # Ours: the blend by total variation, its coverage in place of the projection.
      tv_opacity, mark_colour, coverage = watermark_tv.fit_blend_tv(image, inputs.hint, box)
      mask = (tv_opacity * coverage)[..., None]
      fitted = np.clip(watermark_tv.deblend_alpha(image, mask[..., 0], mark_colour), 0.0, 1.0).astype(np.float32)
      if info is not None:
        info['tv_fit'] = {
            'opacity': round(tv_opacity, 4),
            'colour': [round(float(c), 4) for c in mark_colour],
            'covered_pixels': round(float(coverage.sum()), 2),
        }
    if clean_from == 'cut':  # Ours: the mark found by the graph cut (`watermark_cut`), judged by its own check.
      if inputs.mark is None:
        raise ValueError("clean_from='cut' needs the inputs' mark (watermark_io.load_inputs with clean_from='cut')")
      fitted = watermark_cut.remove(image, inputs.mark)
      mask = (inputs.mark.opacity * inputs.mark.coverage)[..., None]
      mark_colour = inputs.mark.colour
      if info is not None:
        info['cut'] = inputs.mark.info()
    clean = {'generator': up['clean'], 'deblend': deblended, 'fit': fitted, 'fit_tv': fitted, 'cut': fitted}[clean_from]
    watermark = h * up['masked_watermark'] if step2 else None  # 'fit', 'fit_tv', 'cut': the fit's (below).
    if clean_from == 'cut':
      # Double-DIP's C (its inpainting of the mark's pixels) is the check's clean reference.
      check = watermark_cut.cut_check(image, fitted, up['clean'], inputs.mark)
    elif clean_from in ('fit', 'fit_tv'):  # Ours: keep the input where the decomposition cannot be trusted.
      # The check judges the least-squares fit against C (its thresholds were chosen on it).
      check = self_check(
          image,
          blending.deblend_fitted(
              image, up['clean'], inputs.hint, opacity=opacity, colour=colour, max_opacity=max_opacity
          ),
          up['clean'],
          inputs.hint,
          box,
          opacity=opacity,
          colour=colour,
          stroke_contrast=inputs.stroke_contrast,
      )
    else:
      check = None
      mask = up['mask']
    if check is not None:
      check['fallback'] = 'none' if check['passed'] else 'input'
      # The watermark as the fit removed it (none after a fallback), not step 2's M and W.
      mask = mask * check['passed']
      watermark = mask * mark_colour
      if not check['passed']:
        clean = image
      if info is not None:
        info['self_check'] = check
    # 'fit_tv' changes the strokes and the pixel around them (the marks' edges; elsewhere its coverage is 0),
    # 'cut' the pixels its mark covers.
    images = {
        'clean': clean if clean_from in ('fit_tv', 'cut') else (1 - h) * image + h * clean,
        'clean_deblend': (1 - h) * image + h * deblended if step2 else None,
        'clean_fit': fitted,
        'clean_soft': np.where(h * up['mask'] < threshold, image, clean) if step2 else None,
        'clean_raw': up['clean'],
        'watermark': watermark,
        'mask': mask,
        'hint': inputs.hint,
    }
    return {name: layer for name, layer in images.items() if layer is not None}
  faint = up['masked_watermark'] < threshold  # Per channel, as the official code.
  images = {'watermark': np.where(faint, 0.0, up['masked_watermark']), 'mask': up['mask']}
  for k, (name, image) in enumerate(zip(clean_names(len(inputs.full)), inputs.full), start=1):
    # Ours: how much the watermark changes C_k (W M < threshold everywhere if W is black).
    effect = np.max(np.abs(up['mask'] * (up['watermark'] - up[name])), axis=-1, keepdims=True)
    keep = {
        'watermark': faint,
        'effect': np.broadcast_to(effect < effect_threshold, image.shape),
        'both': faint & (effect < effect_threshold),
    }[keep_from]
    images[f'clean{k}'] = np.where(keep, image, up[name])
    images[f'clean{k}_raw'] = up[name]
  return images


def final_images(
    inputs: watermark_io.Inputs,
    layers: list[dict[str, np.ndarray]],
    wm: ml_collections.ConfigDict,
    metrics: dict[str, Any],
) -> tuple[dict[str, np.ndarray], list[tuple[str, np.ndarray]]]:
  """The output images and summary panels from the runs' layers; their scores go to `metrics`.

  Args:
    inputs: the task's inputs.
    layers: one dict per run (`run_layers`), at least one.
    wm: the config's `watermark` section.
    metrics: updated in place with the fitted blend (mode 'hint'), the metric
      box and, with ground truth, the scores of the result and of the input.

  Returns:
    (images, panels): `compose`'s images and the summary picture's (title, image) panels.
  """
  images = compose(
      inputs,
      blending.median_layers(layers),
      threshold=wm.keep_threshold,
      clean_from=wm.clean_from,
      keep_from=wm.keep_from,
      effect_threshold=wm.effect_threshold,
      max_opacity=wm.max_opacity,
      info=metrics,
  )
  if inputs.hint is not None:
    results = {'clean': images['clean']}
    panels = [
        ('input', inputs.full[0]),
        ('hint', inputs.hint),
        ('clean', images['clean']),
        ('watermark', images['watermark']),
        ('mask', images['mask']),
    ]
  else:
    results = {f'clean{k}': images[f'clean{k}'] for k in range(1, len(inputs.full) + 1)}
    panels = [(f'input {k}', img) for k, img in enumerate(inputs.full, start=1)]
    panels += [(f'clean {k}', img) for k, img in enumerate(results.values(), start=1)]
    panels += [('watermark', images['watermark']), ('mask', images['mask'])]
  if inputs.box is not None:
    metrics['box'] = [inputs.box[0].start, inputs.box[1].start, inputs.box[0].stop, inputs.box[1].stop]
  if inputs.truths is not None:
    per_image = []
    for result, image, truth in zip(results.values(), inputs.full, inputs.truths):
      per_image.append(
          {
              'result': metrics_lib.box_scores(result, truth, inputs.box),
              'input': metrics_lib.box_scores(image, truth, inputs.box),
          }
      )
    for name in ('clean_soft', 'clean_deblend', 'clean_fit') if inputs.hint is not None else ():
      if name in images:  # Not clean_soft and clean_deblend without step 2.
        per_image[0][name] = metrics_lib.box_scores(images[name], inputs.truths[0], inputs.box)
    for key in per_image[0]['result']:
      values = [s['result'][key] for s in per_image]
      metrics[key] = None if None in values else float(np.mean(values))
      values = [s['input'][key] for s in per_image]
      metrics[f'input_{key}'] = None if None in values else float(np.mean(values))
    metrics['ground_truth'] = per_image
    panels += [('ground truth', inputs.truths[0])]
  return images, panels

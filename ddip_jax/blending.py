"""Layers blended with an opacity, I = M W + (1 - M) C: inverting the blend, fitting it, and the
per-pixel median of several runs' layers (the watermark task's maths, on numpy arrays)."""

import chex
import numpy as np


def deblend(image: np.ndarray, mask: np.ndarray, watermark_layer: np.ndarray, *, max_opacity: float) -> np.ndarray:
  """Inverts I = M W + (1 - M) C for C: (I - M W) / (1 - M), M clipped to `max_opacity`, C to [0, 1].

  Args:
    image: (H, W, 3) the watermarked image I.
    mask: (H, W, 1) the opacity M (0 where there is no watermark: C = I there).
    watermark_layer: (H, W, 3) the watermark's colour W.
    max_opacity: upper bound of M, < 1 (noise and 8-bit rounding grow as 1 / (1 - M)).

  Returns:
    (H, W, 3) float32 clean image in [0, 1].
  """
  chex.assert_rank([image, mask, watermark_layer], 3)
  chex.assert_equal_shape_prefix([image, mask, watermark_layer], 2)
  m = np.clip(mask, 0.0, max_opacity)
  return np.clip((image - m * watermark_layer) / (1 - m), 0.0, 1.0).astype(np.float32)


def _pixel_opacity(image: np.ndarray, clean: np.ndarray, colour: np.ndarray) -> np.ndarray:
  """Each pixel's opacity towards `colour`: the projection of I - C on w - C, (H, W)."""
  towards = colour - clean
  return np.sum((image - clean) * towards, axis=-1) / np.maximum(np.sum(towards**2, axis=-1), 1e-3)


def fit_blend(
    image: np.ndarray, clean: np.ndarray, region: np.ndarray, *, max_opacity: float, refits: int = 2
) -> tuple[float, np.ndarray]:
  """One opacity a and colour w with I = (1 - a) C + a w on a region, by least squares.

  I - C = -a C + a w is linear in (a, a w): 4 unknowns over the region's
  pixels and channels. Where C is a good guess of the clean image under the
  watermark's strokes, this finds the watermark's blend without its shape.
  Pixels of the region that the watermark does not cover (I = C) would pull
  a towards 0, so the fit is redone `refits` times on the pixels whose own
  opacity (`deblend_fitted`) is at least half the fitted one.

  Args:
    image: (H, W, 3) watermarked image I.
    clean: (H, W, 3) estimate C of the clean image (e.g. an inpainting).
    region: (H, W) in {0, 1}, the pixels to fit on (the strokes).
    max_opacity: a is clipped to [0.05, max_opacity].
    refits: trimmed refits after the first fit.

  Returns:
    (a, w): the opacity and the (3,) colour (not clipped to [0, 1]: a and w
    trade off where the strokes are thin).
  """
  chex.assert_rank([image, clean, region], [3, 3, 2])
  chex.assert_equal_shape([image, clean])
  inside = region > 0.5
  opacity, colour = 0.0, np.zeros(3, np.float32)
  for _ in range(refits + 1):
    if inside.sum() < 4:
      break
    c, r = clean[inside].astype(np.float64), (image - clean)[inside].astype(np.float64)  # (N, 3) each.
    design = np.zeros((c.size, 4))
    design[:, 0] = -c.ravel()
    design[:, 1:] = np.tile(np.eye(3), (len(c), 1))
    (a, *aw), *_ = np.linalg.lstsq(design, r.ravel(), rcond=None)
    opacity = float(np.clip(a, 0.05, max_opacity))
    colour = np.asarray(aw, np.float32) / opacity
    inside = (region > 0.5) & (_pixel_opacity(image, clean, colour) >= opacity / 2)
  return opacity, colour


def deblend_fitted(
    image: np.ndarray, clean: np.ndarray, region: np.ndarray, *, opacity: float, colour: np.ndarray, max_opacity: float
) -> np.ndarray:
  """De-blends each pixel of a region by its own opacity towards a fitted colour.

  A pixel's opacity is the projection of I - C on w - C, clipped to
  [0, opacity] (0 outside the region): a pixel C already explains stays as it
  is, a stroke's is de-blended exactly, so the photo's own texture under the
  watermark survives, unlike in an inpainting.

  Returns:
    (H, W, 3) float32 clean image in [0, 1].
  """
  alpha = fitted_opacity(image, clean, region, opacity=opacity, colour=colour)
  return deblend(image, alpha[..., None], np.broadcast_to(colour, image.shape), max_opacity=max_opacity)


def fitted_opacity(
    image: np.ndarray, clean: np.ndarray, region: np.ndarray, *, opacity: float, colour: np.ndarray
) -> np.ndarray:
  """Each pixel's opacity towards a fitted colour, as `deblend_fitted` uses it: (H, W) in [0, opacity].

  The projection of I - C on w - C, clipped to [0, opacity], 0 outside the region: the watermark's
  mask as the fit sees it.
  """
  chex.assert_rank([image, clean, region, colour], [3, 3, 2, 1])
  return (np.clip(_pixel_opacity(image, clean, colour), 0.0, opacity) * (region > 0.5)).astype(np.float32)


def median_layers(runs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  """Per-pixel medians over runs of every layer and of the visible watermark W * M.

  Args:
    runs: one dict per run with (H, W, C) layers, among them 'watermark' (C = 3)
      and 'mask' (C = 1), unless the runs had no W and M (a watermark run without step 2).

  Returns:
    The same keys, each the median over runs, plus 'masked_watermark', the
    median of W * M (not the product of the medians), (H, W, 3), where there are W and M.
  """
  if not runs:
    raise ValueError('median_layers needs at least one run')
  medians = {name: np.median(np.stack([r[name] for r in runs]), axis=0).astype(np.float32) for name in runs[0]}
  if 'watermark' in runs[0] and 'mask' in runs[0]:
    medians['masked_watermark'] = np.median(np.stack([r['watermark'] * r['mask'] for r in runs]), axis=0).astype(
        np.float32
    )
  return medians

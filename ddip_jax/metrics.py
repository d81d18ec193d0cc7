"""Scores of a result against its ground truth: one place for every task and benchmark.

Masks: IoU of binary masks. Images: dm-pix PSNR (capped at `PSNR_CAP`) and SSIM
(11-pixel window), overall and inside a box. Layer pairs (transparency):
PSNR/SSIM with the estimates matched to the truths. The training loop's own
PSNR (`losses.psnr`, traced) floors the MSE at the same cap.
"""

from typing import Any

import dm_pix as pix
import jax.numpy as jnp
import numpy as np

PSNR_CAP = 100.0  # dB: identical images score this, not infinity.
SSIM_WINDOW = 11  # dm-pix's SSIM filter size: a box with a shorter side has no SSIM.


def iou(pred: np.ndarray, target: np.ndarray) -> float:
  """Intersection over union of two binary masks (same shape, foreground > 0.5); 1 when both are empty."""
  pred, target = pred > 0.5, target > 0.5
  union = np.logical_or(pred, target).sum()
  return float(np.logical_and(pred, target).sum() / union) if union else 1.0


def mask_scores(layers: dict[str, np.ndarray], gt: np.ndarray) -> dict[str, float]:
  """IoUs of a segmentation's masks ('mask_binary', 'mask_whole', 'mask_raw', each (H, W)) against `gt` (H, W)."""
  return {
      'iou': iou(layers['mask_binary'], gt),
      'iou_whole_mask': iou(layers['mask_whole'], gt),  # Before keep_hinted_components.
      'iou_raw_mask': iou(layers['mask_raw'], gt),  # The generator's mask, unrefined.
  }


def _pair(estimate: np.ndarray, truth: np.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  return jnp.asarray(np.clip(estimate, 0.0, 1.0), jnp.float32), jnp.asarray(truth, jnp.float32)


def psnr(estimate: np.ndarray, truth: np.ndarray) -> float:
  """dm-pix PSNR in dB (data range 1, capped at `PSNR_CAP`) of (H, W, C) `estimate`, clipped to [0, 1], vs `truth`."""
  return min(float(pix.psnr(*_pair(estimate, truth))), PSNR_CAP)


def ssim(estimate: np.ndarray, truth: np.ndarray) -> float:
  """dm-pix SSIM (data range 1) of (H, W, C) `estimate`, clipped to [0, 1], against `truth`."""
  return float(pix.ssim(*_pair(estimate, truth), max_val=1.0))


def image_scores(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
  """{'psnr', 'ssim'} of an (H, W, 3) image in [0, 1] against the truth."""
  return {'psnr': psnr(estimate, truth), 'ssim': ssim(estimate, truth)}


def bounding_box(region: np.ndarray) -> tuple[slice, slice]:
  """The smallest rectangle holding every pixel of `region` (H, W) > 0.5, as (rows, cols) slices.

  Raises:
    ValueError: the region is empty.
  """
  rows = np.flatnonzero(np.any(region > 0.5, axis=1))
  cols = np.flatnonzero(np.any(region > 0.5, axis=0))
  if not rows.size:
    raise ValueError('the region is empty')
  return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def box_scores(estimate: np.ndarray, truth: np.ndarray, box: tuple[slice, slice] | None) -> dict[str, Any]:
  """PSNR / SSIM of (H, W, 3) `estimate` against `truth`, overall and inside `box`.

  Returns:
    {'psnr', 'ssim'} and, with a box, {'psnr_box', 'ssim_box'} (SSIM None when
    a side of the box is shorter than the `SSIM_WINDOW`).
  """
  result = image_scores(estimate, truth)
  if box is not None:
    inside = image_scores(estimate[box], truth[box])
    small = min(truth[box].shape[:2]) < SSIM_WINDOW
    result.update(psnr_box=inside['psnr'], ssim_box=None if small else inside['ssim'])
  return result


def layer_pair_scores(
    estimates: tuple[np.ndarray, np.ndarray], truths: tuple[np.ndarray, np.ndarray]
) -> dict[str, Any]:
  """PSNR / SSIM of two recovered layers against the true ones, in whichever order matches better.

  Args:
    estimates: two (H, W, 3) float images (clipped to [0, 1] here).
    truths: two (H, W, 3) float images in [0, 1], same size.

  Returns:
    {'swapped': whether estimates[0] matches truths[1], 'psnr': [dB of the
    estimate matched to truths[0], ... truths[1]], 'ssim': [same order],
    'mean_psnr', 'mean_ssim'}; PSNRs capped at `PSNR_CAP`.
  """
  straight = [psnr(estimates[0], truths[0]), psnr(estimates[1], truths[1])]
  crossed = [psnr(estimates[1], truths[0]), psnr(estimates[0], truths[1])]
  swapped = sum(crossed) > sum(straight)
  matched = estimates[::-1] if swapped else estimates
  psnrs = crossed if swapped else straight
  ssims = [ssim(m, g) for m, g in zip(matched, truths)]
  return {
      'swapped': bool(swapped),
      'psnr': psnrs,
      'ssim': ssims,
      'mean_psnr': float(np.mean(psnrs)),
      'mean_ssim': float(np.mean(ssims)),
  }

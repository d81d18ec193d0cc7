"""The Python API's results: one frozen dataclass per application, float32 arrays at the input's size and the
run's metrics (what metrics.json holds). `ddip_jax.api` makes them; `ddip_jax` re-exports them."""

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Segmentation:
  """`segment`'s result; images (H, W[, 3]) float32 in [0, 1] at the input's size.

  Attributes:
    fg, bg: the foreground and background layers.
    mask: the refined soft mask.
    mask_binary: the final mask, in {0, 1}.
    recomposed: mask * fg + (1 - mask) * bg with the generator's mask.
    metrics: what metrics.json holds (PSNRs, IoUs with a ground truth, timings, ...).
  """

  fg: np.ndarray
  bg: np.ndarray
  mask: np.ndarray
  mask_binary: np.ndarray
  recomposed: np.ndarray
  metrics: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Separation:
  """`separate`'s result: the two layers (H, W, 3), each mixture's recomposition (None where absent), metrics."""

  layer1: np.ndarray
  layer2: np.ndarray
  recomposed1: np.ndarray
  recomposed2: np.ndarray | None
  metrics: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Dehazing:
  """`dehaze`'s result: the dehazed image and the transmission (H, W[, 3]), the airlight picture, metrics."""

  dehazed: np.ndarray
  transmission: np.ndarray
  airlight: np.ndarray
  metrics: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class WatermarkRemoval:
  """`remove_watermark`'s result.

  Attributes:
    clean: (H, W, 3) the image without its watermark.
    others_clean: the `others` images without it, same order (mode 'many').
    watermark: (h, w, 3) the recovered watermark colour layer.
    mask: (h, w) its opacity.
    metrics: what metrics.json holds.
  """

  clean: np.ndarray
  others_clean: tuple[np.ndarray, ...]
  watermark: np.ndarray
  mask: np.ndarray
  metrics: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class VideoDecomposition:
  """`decompose_video`'s result: (F, H, W, 3) fg and bg, (F, H, W) mask and mask_binary, metrics."""

  fg: np.ndarray
  bg: np.ndarray
  mask: np.ndarray
  mask_binary: np.ndarray
  metrics: dict[str, Any]

"""A clip's background for the video task's 'motion' hints: the colour a pixel keeps longest.

The per-pixel median over frames (`hints.background_change`'s default) is the
background only where a pixel shows it in most frames. A slow object covers
the same pixels in most frames, and an object that stops for a while leaves
its colour in the median there: the change from the median then misses the
object's core and marks a "ghost" where it stood. While an object passes
over a pixel, the pixel's colour keeps changing (the object's texture slides
by); while the background shows, it stays the same. So the background is
the pixel's *mode*: of the frames' colours, the one that the most frames
come within `tolerance` of (Delta E), averaged over those frames.
"""

import numpy as np

MIN_TOLERANCE = 2.0  # Delta E: the tolerance of a noise-free clip.
NOISE_FACTOR = 3.0  # The tolerance is this times the clip's noise (`noise_level`), at least MIN_TOLERANCE.


def noise_level(lab: np.ndarray, valid: np.ndarray | None = None) -> float:
  """The clip's noise in Delta E: the median colour change of a pixel between consecutive frames.

  Most pixels show a still background, so the median change is the noise's
  (a noise-free clip: about 0).

  Args:
    lab: (F, H, W, 3) CIE Lab frames, F >= 2.
    valid: (F, H, W) bool, the pixels each frame sees; None: all.
  """
  change = np.sqrt(((lab[1:] - lab[:-1]) ** 2).sum(-1))
  if valid is not None:
    change = change[valid[1:] & valid[:-1]]
  return float(np.median(change)) if change.size else 0.0


def mode_background(
    lab: np.ndarray, valid: np.ndarray | None = None, *, tolerance: float | None = None, max_frames: int = 32
) -> np.ndarray:
  """Each pixel's background colour: the mean of the largest set of frames within `tolerance` of one of them.

  Args:
    lab: (F, H, W, 3) CIE Lab frames.
    valid: (F, H, W) bool, the pixels each frame sees (frames warped onto a
      reference frame); None: all. A pixel no frame sees gets 0.
    tolerance: Delta E within which two frames show the same colour; None:
      NOISE_FACTOR times `noise_level`, at least MIN_TOLERANCE.
    max_frames: at most this many frames, evenly spread, are compared (the
      cost is quadratic in them, so a long clip's stays linear in its frames).

  Returns:
    (H, W, 3) float32 Lab.
  """
  num_frames = len(lab)
  if tolerance is None:
    tolerance = max(MIN_TOLERANCE, NOISE_FACTOR * noise_level(lab, valid))
  picks = np.unique(np.round(np.linspace(0, num_frames - 1, min(num_frames, max_frames))).astype(int))
  sample = lab[picks].astype(np.float32)
  seen = np.ones(sample.shape[:3], bool) if valid is None else np.asarray(valid, bool)[picks]
  best_count = np.full(sample.shape[1:3], -1.0, np.float32)
  best = np.zeros(sample.shape[1:], np.float32)
  for candidate, candidate_seen in zip(sample, seen):
    close = (np.sqrt(((sample - candidate[None]) ** 2).sum(-1)) < tolerance) & seen  # (K, H, W)
    count = np.where(candidate_seen, close.sum(0), -1).astype(np.float32)
    mean = (sample * close[..., None]).sum(0) / np.maximum(close.sum(0), 1)[..., None]
    better = count > best_count  # Ties keep the earlier frame.
    best_count = np.where(better, count, best_count)
    best = np.where(better[..., None], mean, best)
  return best


def motion_map(change: np.ndarray, *, low: float = 6.0, high: float = 12.0) -> np.ndarray:
  """A soft mask from the change to the background (Delta E): 0 below `low`, 1 above `high`, linear between.

  `low` and `high` are `hints.motion_hints`' thresholds: the hints' sure background and sure foreground.
  """
  return np.clip((np.asarray(change, np.float32) - low) / (high - low), 0.0, 1.0)


def confident_blend(dip_mask: np.ndarray, motion: np.ndarray, confident: float, *, remove: bool = False) -> np.ndarray:
  """The motion map, raised to Double-DIP's soft mask where that is sure of foreground (above 1 - `confident`);
  with `remove`, Double-DIP's soft mask wherever it is sure (below `confident` too).

  Double-DIP's mask after a short schedule is mostly right where it is sure (it
  fills an object's core that never leaves its pixels, which no background
  model sees) and blurred across edges elsewhere; the change to the background
  follows edges to the pixel. Its sure background helps on the moving-camera
  clips and cuts into the fish that stops (docs/video.md).

  Args:
    dip_mask, motion: same shape, in [0, 1].
    confident: in [0, 0.5]; 0: the motion map alone.
    remove: Double-DIP's sure background decides too.
  """
  dip_mask = np.asarray(dip_mask, np.float32)
  motion = np.asarray(motion, np.float32)
  if remove:  # Double-DIP's mask wherever it is sure.
    return np.where(np.minimum(dip_mask, 1.0 - dip_mask) < confident, dip_mask, motion).astype(np.float32)
  return np.where(dip_mask > 1.0 - confident, np.maximum(dip_mask, motion), motion).astype(np.float32)

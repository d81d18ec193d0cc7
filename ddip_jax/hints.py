"""Hints: foreground/background for segmentation (the user's, or automatic ones), watermark strokes.

Hints are (H, W) maps in [0, 1]: `fg_hint` is 1 where a pixel surely belongs to
the foreground, `bg_hint` where it surely belongs to the background; pixels in
neither are left to Double-DIP. The official code thresholded a saliency map from
an external MATLAB tool; we compute our own (no downloads, no MATLAB).

Automatic method 'saliency' (boundary-prior colour contrast):
  1. work on a copy whose longer side is at most 128 px, in CIE Lab, lightly blurred;
  2. the image border is assumed to be background: each pixel's saliency is its
     colour distance to the nearest border colours (a robust minimum: the
     mean of the k nearest border samples);
  3. the map is normalised and smoothed; the foreground hint is the most salient
     connected region above a high threshold (Otsu's, raised), eroded; the
     background hint is the border band plus pixels of low saliency.
Method 'object' (default): the same fg hint, and only the border band as bg
hint, for hints that `ddip_jax/grow.py` grows before the decomposition.
Method 'border': only the border band as background hint (no fg hint).
When only a bg hint is given (e.g. the outside of a box), 'saliency' and
'object' measure saliency against the colours of the hinted background instead
of the border's, and take the fg hint outside it.
For a video clip, these work frame by frame, and one more method uses the clip:
'motion' (static camera): what moves is foreground (see `motion_hints`).

Watermark removal uses `stroke_hint`: the thin strokes of a watermark inside
the user's rough box (a top-hat cut at Otsu's threshold).
"""

from collections.abc import Callable

from absl import logging
import numpy as np
from scipy import ndimage

from ddip_jax import clip_io
from ddip_jax import image_io


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
  """sRGB (H, W, 3) in [0, 1] -> CIE Lab (D65), L in [0, 100]."""
  c = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
  m = np.array(
      [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
  )
  xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
  f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
  return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def box_blur(x: np.ndarray, radius: int) -> np.ndarray:
  """Mean over a (2r+1)^2 window with edge replication, (H, W) or (H, W, C)."""
  if radius <= 0:
    return x
  size = (2 * radius + 1, 2 * radius + 1) + (1,) * (x.ndim - 2)
  return ndimage.uniform_filter(x, size=size, mode='nearest')


def otsu(values: np.ndarray) -> float:
  """Otsu's threshold of values in [0, 1]."""
  hist, edges = np.histogram(values, bins=64, range=(0.0, 1.0))
  p = hist / max(hist.sum(), 1)
  omega = np.cumsum(p)
  mu = np.cumsum(p * (edges[:-1] + edges[1:]) / 2)
  between = (mu[-1] * omega - mu) ** 2 / np.maximum(omega * (1 - omega), 1e-12)
  return float(edges[1:][np.argmax(between)])


def saliency_map(
    image: np.ndarray, *, work_side: int = 128, border: float = 0.05, k: int = 8, background: np.ndarray | None = None
) -> np.ndarray:
  """Boundary-prior colour-contrast saliency (see the module docstring).

  Args:
    image: (H, W, 3) float in [0, 1].
    work_side: longer side of the working copy.
    border: border band width as a fraction of the shorter side.
    k: border samples averaged for the robust nearest-colour distance.
    background: (H, W) pixels known to be background (e.g. outside a user's
      box), sampled instead of the border band; None: the border band.

  Returns:
    (H, W) saliency in [0, 1].
  """
  h, w = image.shape[:2]
  scale = min(1.0, work_side / max(h, w))
  small = image_io.resize_image(image, (max(8, round(h * scale)), max(8, round(w * scale))))
  lab = box_blur(rgb_to_lab(np.clip(small, 0, 1)), 1)
  sh, sw = lab.shape[:2]
  b = max(2, round(border * min(sh, sw)))
  ring = np.ones((sh, sw), bool)
  ring[b:-b, b:-b] = False
  if background is not None and (background > 0.5).any():
    ring = image_io.resize_image(np.asarray(background, np.float32), (sh, sw)) > 0.5
    if not ring.any():  # A thin user hint can vanish when downscaled.
      ring = image_io.resize_image(np.asarray(background, np.float32), (sh, sw)) > 0
  samples = lab[ring]
  samples = samples[:: max(1, len(samples) // 512)]
  pixels = lab.reshape(-1, 3)
  d = np.sqrt(((pixels[:, None, :] - samples[None, :, :]) ** 2).sum(-1))
  k = min(k, d.shape[1])
  sal = np.partition(d, k - 1, axis=1)[:, :k].mean(1).reshape(sh, sw)
  sal = box_blur(sal, max(1, round(0.01 * max(sh, sw))))
  lo, hi = np.percentile(sal, 2), np.percentile(sal, 99.5)
  sal = np.clip((sal - lo) / max(hi - lo, 1e-6), 0, 1)
  return image_io.resize_image(sal, (h, w)).clip(0, 1)


def saliency_hints(
    image: np.ndarray, background: np.ndarray | None = None, *, low_saliency_bg: bool = True
) -> tuple[np.ndarray, np.ndarray]:
  """Automatic hints from `saliency_map` (see the module docstring).

  Args:
    image: (H, W, 3) float in [0, 1].
    background: (H, W) pixels known to be background (a user's bg hint):
      saliency is measured against their colours, and the foreground hint is
      taken outside them. None: the border band is the known background.
    low_saliency_bg: also mark pixels of low saliency as background (for a
      decomposition that uses the hints as they are); False: only the known
      background (for hints that `grow.dense_hints` grows: low saliency also
      covers the dull parts of many objects).

  Returns:
    (fg_hint, bg_hint), each (H, W) float32 in {0, 1}.
  """
  h, w = image.shape[:2]
  known_bg = None if background is None else np.asarray(background) > 0.5
  sal = saliency_map(image, background=known_bg)
  if known_bg is not None:
    sal = np.where(known_bg, 0.0, sal)
  high = min(0.9, max(0.5, otsu(sal) + 0.15))
  fg = sal > high
  labels, n = ndimage.label(fg)
  if n > 1:
    scores = np.bincount(labels.ravel(), weights=sal.ravel())[1:]
    fg = labels == (np.argmax(scores) + 1)
  r = max(1, round(0.01 * max(h, w)))
  fg = ndimage.binary_erosion(fg, structure=np.ones((2 * r + 1, 2 * r + 1)))
  band = max(2, round(0.02 * min(h, w)))
  bg = sal < min(0.25, otsu(sal) * 0.5) if low_saliency_bg else np.zeros((h, w), bool)
  if known_bg is None:
    bg[:band], bg[-band:], bg[:, :band], bg[:, -band:] = True, True, True, True
  else:
    bg |= known_bg
  bg &= ~fg
  return fg.astype(np.float32), bg.astype(np.float32)


def border_hints(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Background hint = the border band only; no foreground hint."""
  h, w = image.shape[:2]
  band = max(2, round(0.02 * min(h, w)))
  bg = np.zeros((h, w), np.float32)
  bg[:band], bg[-band:], bg[:, :band], bg[:, -band:] = 1, 1, 1, 1
  return np.zeros((h, w), np.float32), bg


def _masked_median(values: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
  """Per-pixel median over frames (F, H, W, C) of the frames that see the pixel (`valid` (F, H, W))."""
  if valid is None:
    return np.median(values, axis=0)
  with np.errstate(all='ignore'):
    median = np.nanmedian(np.where(valid[..., None], values, np.nan), axis=0)
  return np.nan_to_num(median)


def background_change(
    frames: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    match_lighting: bool = False,
    estimate_background: Callable[..., np.ndarray] | None = None,
) -> np.ndarray:
  """How far each pixel of a static-camera clip is from the clip's background.

  The background is the per-pixel median over the frames (right wherever a
  pixel shows the background in most frames); the change is the CIE Lab
  distance (Delta E) to it, after a 3x3 blur. With `match_lighting`, each
  frame is first divided by its gain per channel (the median ratio of its
  pixels to the background's, then the median again): a clip that brightens
  or darkens as a whole does not move.

  Args:
    frames: (F, H, W, 3) float in [0, 1], F >= 2.
    valid: (F, H, W) bool, the pixels each frame sees (frames warped onto a
      reference frame: `align.coverage`); None: all. The median uses those only.
    match_lighting: divide out each frame's global gain first.
    estimate_background: f(lab (F, H, W, 3), valid) -> (H, W, 3), the clip's
      background in Lab (e.g. `video_hints.mode_background`); None: the median.

  Returns:
    (F, H, W) float, Delta E.
  """
  if frames.ndim != 4 or frames.shape[0] < 2 or frames.shape[-1] != 3:
    raise ValueError(f'need (F, H, W, 3) frames with F >= 2, got {frames.shape}')
  if match_lighting:
    for _ in range(2):
      background = _masked_median(frames, valid)
      ratio = frames / np.maximum(background, 0.02)[None]
      if valid is not None:
        ratio = np.where(valid[..., None], ratio, np.nan)
      gain = np.nanmedian(ratio.reshape(len(frames), -1, 3), axis=1)
      frames = np.clip(frames / np.maximum(gain, 0.05)[:, None, None, :], 0.0, 1.0)
  lab = np.stack([rgb_to_lab(np.clip(f, 0, 1)) for f in frames])
  reference = _masked_median(lab, valid) if estimate_background is None else estimate_background(lab, valid)
  change = np.sqrt(((lab - reference) ** 2).sum(-1))
  return np.stack([box_blur(c, 1) for c in change])


def motion_hints(
    frames: np.ndarray,
    *,
    high: float = 12.0,
    low: float = 6.0,
    margin: float = 0.01,
    min_area: float = 5e-4,
    valid: np.ndarray | None = None,
    match_lighting: bool = False,
    estimate_background: Callable[..., np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """Hints of a clip from a static camera: what moves is foreground.

  1. `background_change`: each pixel's colour distance to the clip's per-pixel
     median, which is the background when the objects move by more than their
     own size over the clip.
  2. Foreground hint: change > `high` (Delta E), regions smaller than
     `min_area` of the frame dropped (noise), eroded by 1% of the longer side
     (the hint must not spill over the object's edge).
     Background hint: outside the region where change > `low`, closed, its holes
     filled (an object's pixels that match the background by chance lie inside
     it) and dilated by `margin` of the longer side.

  Args:
    frames: (F, H, W, 3) float in [0, 1], F >= 2.
    high: change (Delta E) above which a pixel is surely foreground.
    low: change below which, away from moving regions, a pixel is background.
    margin: band left unhinted around moving regions, fraction of the longer side.
    min_area: smallest foreground-hint region kept, fraction of the frame.
    valid, match_lighting, estimate_background: as in `background_change`.

  Returns:
    (fg_hint, bg_hint), each (F, H, W) float32 in {0, 1}.
  """
  h, w = frames.shape[1:3]
  change = background_change(
      frames, valid=valid, match_lighting=match_lighting, estimate_background=estimate_background
  )
  erode = max(1, round(0.01 * max(h, w)))
  dilate = max(1, round(margin * max(h, w)))
  min_pixels = min_area * h * w
  fg_hints, bg_hints = [], []
  for c in change:
    labels, n = ndimage.label(c > high)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    kept = np.nonzero(sizes >= min_pixels)[0]
    fg = np.isin(labels, kept[kept > 0])
    fg = ndimage.binary_erosion(fg, structure=np.ones((2 * erode + 1, 2 * erode + 1)))
    moving = ndimage.binary_closing(c > low, structure=np.ones((3, 3)), iterations=dilate)
    moving = ndimage.binary_dilation(ndimage.binary_fill_holes(moving), iterations=dilate)
    fg_hints.append(fg)
    bg_hints.append(~moving & ~fg)
  return np.stack(fg_hints).astype(np.float32), np.stack(bg_hints).astype(np.float32)


def object_hints(image: np.ndarray, background: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
  """The most salient region as fg hint, only the border band (or `background`) as bg hint.

  For hints that are grown before the decomposition (`grow.dense_hints`).
  """
  return saliency_hints(image, background, low_saliency_bg=False)


METHODS: dict[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    'object': object_hints,
    'saliency': saliency_hints,
    'border': border_hints,
}
# Methods that need a whole clip, (F, H, W, 3) -> (F, H, W) hints.
CLIP_METHODS: dict[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    'motion': motion_hints,
}


def automatic_hints(image: np.ndarray, method: str, clip_options: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
  """The automatic hints of an image (H, W, 3) or a clip (F, H, W, 3).

  A clip takes a `CLIP_METHODS` method (with keyword arguments `clip_options`,
  e.g. 'motion''s `valid`, `match_lighting`) or any of `METHODS`, applied frame by frame.

  Returns:
    (fg_hint, bg_hint), each float32 of the input's shape less its channels.
  """
  if method in CLIP_METHODS:
    if image.ndim != 4:
      raise ValueError(f'automatic hints {method!r} need a clip (F, H, W, 3), got {image.shape}')
    return CLIP_METHODS[method](image, **(clip_options or {}))
  if image.ndim == 4:
    fg, bg = zip(*(METHODS[method](frame) for frame in image))
    return np.stack(fg), np.stack(bg)
  return METHODS[method](image)


def resolve_hints(
    image: np.ndarray,
    *,
    fg_path: str | None,
    bg_path: str | None,
    method: str,
    clip_options: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
  """The hints for one image or clip: user files where given, automatic ones otherwise.

  User hint PNGs are binarised at 0.5 and resized to the image (nearest
  neighbour when enlarged; when shrunk, a pixel is hinted if any pixel of its
  block is, so that thin strokes survive). Pixels marked in both hints are dropped from both (with a warning).

  Args:
    image: (H, W, 3) working image in [0, 1], or a clip (F, H, W, 3).
    fg_path: foreground hint PNG or None; for a clip, a folder of one PNG per
      frame or one PNG for every frame (`clip_io.load_masks`).
    bg_path: background hint, likewise.
    method: automatic method for hints not given (`automatic_hints`).
    clip_options: keyword arguments of a clip method (`automatic_hints`).

  Returns:
    (fg_hint, bg_hint, info): float32 maps in {0, 1} of the image's shape less
    its channels, and a dict saying where each came from and what fraction of
    pixels it marks.

  Raises:
    image_io.InputError: a hint file cannot be read, marks no pixel or every
      pixel, or marks only pixels that the other hint marks too.
  """
  shape = image.shape[-3:-1]
  given = {}
  for name, path in (('fg_hint', fg_path), ('bg_hint', bg_path)):
    if path:
      if image.ndim == 4:
        given[name] = (clip_io.load_masks(path, count=image.shape[0], shape=shape), path)
      else:
        given[name] = (image_io.load_mask(path, shape=shape, keep_thin=True), path)
  return given_hints(image, given, method=method, clip_options=clip_options)


def given_hints(
    image: np.ndarray, given: dict[str, tuple[np.ndarray, str]], *, method: str, clip_options: dict | None = None
) -> tuple[np.ndarray, np.ndarray, dict]:
  """`resolve_hints` on hints given as arrays: name -> (mask, what to call it in messages).

  A mask of one image may have another size than `image` (e.g. the full-size
  photo's): it is resized as a hint file is (`image_io.resize_mask`, thin
  strokes kept). Binarised at 0.5.

  Raises:
    image_io.InputError: a hint marks no pixel or every pixel, or only pixels that the other hint marks too.
  """
  user, info = {}, {}
  for name, (hint, source) in given.items():
    if image.ndim == 3:
      hint = image_io.resize_mask(hint, image.shape[:2], keep_thin=True)
    hint = (np.asarray(hint) > 0.5).astype(np.float32)
    if not hint.any():
      raise image_io.InputError(f'{source}: the {name} marks no pixel (white = hinted region)')
    if hint.all():
      raise image_io.InputError(f'{source}: the {name} marks every pixel; it must leave the other layer some room')
    user[name] = hint
    info[name] = {'source': source}
  return complete_hints(image, user, info, method=method, clip_options=clip_options)


def complete_hints(
    image: np.ndarray,
    user: dict[str, np.ndarray],
    info: dict[str, dict],
    *,
    method: str,
    clip_options: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
  """The user's hints (arrays, in memory), completed by automatic ones where missing (`resolve_hints`).

  Args:
    image: (H, W, 3) working image in [0, 1], or a clip (F, H, W, 3).
    user: 'fg_hint' and / or 'bg_hint' -> float32 (H, W) (or (F, H, W)) in {0, 1}, each marking some pixel.
    info: for each of `user`'s hints, {'source': what to call it in messages}.
    method: automatic method for the hints not given.

  Returns:
    As `resolve_hints`.

  Raises:
    image_io.InputError: a user's hint marks only pixels the other hint marks too.
  """
  user, info = dict(user), {name: dict(value) for name, value in info.items()}
  if len(user) < 2:
    if 'bg_hint' in user and method in ('saliency', 'object') and image.ndim == 3:
      # Only a background (say, the outside of a box): look for the object against it.
      auto = dict(zip(('fg_hint', 'bg_hint'), METHODS[method](image, user['bg_hint'])))
      method = f'{method} (against the bg_hint)'
    else:
      auto = dict(zip(('fg_hint', 'bg_hint'), automatic_hints(image, method, clip_options)))
    for name in ('fg_hint', 'bg_hint'):
      if name not in user:
        user[name] = auto[name]
        info[name] = {'source': f'auto:{method}'}
  fg, bg = user['fg_hint'], user['bg_hint']
  check_automatic_hints(fg, bg, info)
  overlap = (fg > 0) & (bg > 0)
  if overlap.any():
    logging.warning('%d pixels are marked in both hints; they are left unhinted', int(overlap.sum()))
    fg, bg = fg * ~overlap, bg * ~overlap
    # A user's hint that the other hint covers completely would silently vanish.
    for name, hint, other in (('fg_hint', fg, 'bg_hint'), ('bg_hint', bg, 'fg_hint')):
      if not info[name]['source'].startswith('auto:') and not hint.any():
        raise image_io.InputError(
            f'{info[name]["source"]}: every pixel the {name} marks is also marked in the {other} '
            f'({info[other]["source"]}); the two hints must mark different pixels'
        )
  info['fg_hint']['fraction'] = float(fg.mean())
  info['bg_hint']['fraction'] = float(bg.mean())
  info['overlap_pixels'] = int(overlap.sum())
  return fg.astype(np.float32), bg.astype(np.float32), info


# Automatic methods that give no foreground hint by design.
BACKGROUND_ONLY_METHODS = ('border',)


def check_automatic_hints(fg: np.ndarray, bg: np.ndarray, info: dict) -> None:
  """Refuses automatic hints that mark no pixel (or every pixel), as a user's hint files are refused.

  Args:
    fg, bg: the hints as resolved, before clearing their overlap (a user's
      hint may cover the automatic one: the user's choice).
    info: where each came from (`resolve_hints`).
  """
  for name, hint in (('fg_hint', fg), ('bg_hint', bg)):
    method = info[name]['source'].removeprefix('auto:')
    if method == info[name]['source'] or (name == 'fg_hint' and method in BACKGROUND_ONLY_METHODS):
      continue  # A user's file (checked when read), or empty by design.
    if not hint.any() or hint.all():
      raise image_io.InputError(
          f'the automatic hints ({method}) mark {"every" if hint.any() else "no"} pixel as '
          f'{"foreground" if name == "fg_hint" else "background"}: nothing stands out of the image; '
          'give hint files (--config.fg_hint, --config.bg_hint)'
      )

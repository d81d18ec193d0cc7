"""Growing sparse segmentation hints (a stroke, a box, a saliency seed) into dense ones.

Double-DIP decides well which layer a pixel belongs to near the hints, but a
thin stroke or a small seed leaves most of the object unhinted, and there the
background generator is free to draw the object (issue: a correct 2% hint ended
at IoU 0.10). So before the decomposition the hints are grown:

  1. Geodesic split: each unhinted pixel goes to the hint it is closer to along
     the image, where a path costs its length plus the CIE Lab colour change it
     crosses (so a region of one colour joins the hint inside it, and an edge
     stops the growth).
  2. GrabCut (OpenCV's `cv2.grabCut`: colour GMMs and a graph cut) started from
     that split as "probable" labels, with the hints as fixed labels.
  3. GrabCut is also run from an all-"probable background" start: it grows only
     what the fg hint's colours explain, so it does not swallow a second object
     the bg hint does not cover, but it collapses when the fg hint is too small
     to model the object's colours; it is kept unless it did ('select').
  4. The grown mask, eroded by a margin, becomes the new fg hint and its
     complement, eroded likewise, the new bg hint. The user's own hints are
     always kept. The band of `margin` around the grown boundary stays unhinted:
     that is where Double-DIP decides.

OpenCV's GrabCut is used rather than our own graph cut: it is the reference
implementation of the method (GMM fitting + max-flow), fast, and a well-kept
wheel (`opencv-python-headless`). Its k-means start uses OpenCV's global RNG,
which is seeded before each call, so results are deterministic.
"""

import chex
import cv2
import numpy as np
from scipy import ndimage
from scipy import sparse
from scipy.sparse import csgraph

from ddip_jax import hints as hints_lib
from ddip_jax import image_io

# 'select': the background start counts as collapsed below this fraction of the geodesic start's area.
COLLAPSED = 0.3
# (dy, dx) of the 8-neighbourhood's four forward directions.
_STEPS = ((0, 1), (1, 0), (1, 1), (1, -1))


def geodesic_distance(lab: np.ndarray, seeds: np.ndarray, *, length_cost: float = 1.0) -> np.ndarray:
  """Shortest-path distance of every pixel to the seed pixels.

  A step between 8-neighbours costs (its Lab colour change + `length_cost`) times
  its length (1 or sqrt 2).

  Args:
    lab: (H, W, 3) image in CIE Lab.
    seeds: (H, W) bool, at least one True.
    length_cost: cost per pixel of path length, in Lab units.

  Returns:
    (H, W) float64 distances, 0 on the seeds (inf where unreachable: never on a grid).
  """
  h, w = seeds.shape
  index = np.arange(h * w).reshape(h, w)
  flat = lab.reshape(-1, 3)
  src, dst, cost = [], [], []
  for dy, dx in _STEPS:
    if dx >= 0:
      a, b = index[: h - dy, : w - dx].ravel(), index[dy:, dx:].ravel()
    else:
      a, b = index[: h - dy, -dx:].ravel(), index[dy:, : w + dx].ravel()
    step = np.hypot(dy, dx)
    src.append(a)
    dst.append(b)
    cost.append((np.sqrt(((flat[a] - flat[b]) ** 2).sum(-1)) + length_cost) * step)
  source = h * w  # A virtual node joined to every seed at no cost.
  seed_index = index[seeds]
  rows = np.concatenate(src + [np.full(seed_index.size, source)])
  cols = np.concatenate(dst + [seed_index])
  vals = np.concatenate(cost + [np.full(seed_index.size, 1e-9)])
  graph = sparse.coo_matrix((vals, (rows, cols)), shape=(h * w + 1, h * w + 1)).tocsr()
  return csgraph.dijkstra(graph, directed=False, indices=source)[: h * w].reshape(h, w)


def grabcut(image: np.ndarray, labels: np.ndarray, *, iterations: int = 5) -> np.ndarray:
  """OpenCV's GrabCut from a label map.

  Args:
    image: (H, W, 3) RGB in [0, 1].
    labels: (H, W) uint8 in {cv2.GC_BGD, GC_FGD, GC_PR_BGD, GC_PR_FGD}; both a
      background and a foreground label must occur.
    iterations: GrabCut iterations.

  Returns:
    (H, W) bool foreground.
  """
  cv2.setRNGSeed(0)
  bgr = np.ascontiguousarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)[..., ::-1])
  out = np.ascontiguousarray(labels, np.uint8).copy()
  cv2.grabCut(bgr, out, None, np.zeros((1, 65)), np.zeros((1, 65)), iterations, cv2.GC_INIT_WITH_MASK)
  return (out == cv2.GC_FGD) | (out == cv2.GC_PR_FGD)


def snap(
    image: np.ndarray,
    mask: np.ndarray,
    fg: np.ndarray,
    bg: np.ndarray,
    *,
    reach: float | None = 0.05,
    max_side: int = 256,
) -> np.ndarray:
  """A mask snapped to the image: one GrabCut started from it, its pixels probable fg, the rest probable bg.

  GrabCut fits colour models to the mask's two sides and moves the boundary to
  the image's colour edges, where the mask's own boundary (a decomposition's
  threshold) may run beside them or skip a thin part. Pixels farther than
  `reach` from the mask's boundary keep their side: the boundary moves, regions
  of the object's colour elsewhere do not flip, and what is not near the edge
  stays the decomposition's decision (on data/segbench an unlimited reach gave
  the same IoU: docs/segmentation.md). Photos longer than `max_side`
  are snapped at that size and the result enlarged.

  Args:
    image: (H, W, 3) RGB in [0, 1].
    mask: (H, W) bool, the mask to snap.
    fg, bg: (H, W) bool, pixels fixed to each side (a user's strokes).
    reach: how far the boundary may move, a fraction of the longer side (at least 1 px); None: anywhere.
    max_side: the longest side GrabCut runs at.

  Returns:
    (H, W) bool, True on `fg` and False on `bg`; `mask` (with them) when one side is empty.
  """
  chex.assert_rank([image, mask, fg, bg], [3, 2, 2, 2])
  mask = (np.asarray(mask, bool) | fg) & ~bg
  if mask.all() or not mask.any():
    return mask
  shape = image.shape[:2]
  small = shape
  if max(shape) > max_side:
    scale = max_side / max(shape)
    small = (max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale)))
  shrink = lambda m: m if small == shape else image_io.resize_image(m.astype(np.float32), small) > 0.5
  start = shrink(mask)
  labels = np.where(start, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
  if reach is not None:
    r = max(1, round(reach * max(small)))
    disk = np.hypot(*np.mgrid[-r : r + 1, -r : r + 1]) <= r
    labels[ndimage.binary_erosion(start, disk, border_value=1)] = cv2.GC_FGD
    labels[ndimage.binary_erosion(~start, disk, border_value=1)] = cv2.GC_BGD
  labels[shrink(bg)], labels[shrink(fg)] = cv2.GC_BGD, cv2.GC_FGD
  snapped = grabcut(image if small == shape else image_io.resize_image(image, small), labels)
  if small != shape:
    snapped = image_io.resize_image(snapped.astype(np.float32), shape) > 0.5
  return (snapped | fg) & ~bg


def grow_masks(image: np.ndarray, fg_hint: np.ndarray, bg_hint: np.ndarray) -> dict[str, np.ndarray]:
  """The foreground grown from the hints by GrabCut from two starts (module docstring).

  Args:
    image: (H, W, 3) RGB in [0, 1].
    fg_hint, bg_hint: (H, W) in [0, 1]; each must mark at least one pixel.

  Returns:
    (H, W) bool masks, each True on every fg-hint pixel and False on every
    bg-hint pixel: 'geodesic' (unhinted pixels start on the geodesically
    closer side) and 'background' (they start as probable background: grows
    little).
  """
  chex.assert_rank([image, fg_hint, bg_hint], [3, 2, 2])
  fg, bg = fg_hint > 0.5, bg_hint > 0.5
  lab = hints_lib.box_blur(hints_lib.rgb_to_lab(np.clip(image, 0, 1)), 1)
  closer_to_fg = geodesic_distance(lab, fg) < geodesic_distance(lab, bg)
  starts = {
      'geodesic': np.where(closer_to_fg, cv2.GC_PR_FGD, cv2.GC_PR_BGD),
      'background': np.full(fg.shape, cv2.GC_PR_BGD),
  }
  grown = {}
  for name, labels in starts.items():
    labels = labels.astype(np.uint8)
    labels[bg] = cv2.GC_BGD
    labels[fg] = cv2.GC_FGD
    grown[name] = (grabcut(image, labels) | fg) & ~bg
  return grown


# Pixels a click's region may reach beyond twice the click's distance from the mask's other side.
REACH_MARGIN = 3.0


def corrected_start(
    image: np.ndarray, start: np.ndarray, *, new_fg: np.ndarray, new_bg: np.ndarray, fg: np.ndarray, bg: np.ndarray
) -> np.ndarray:
  """A previous mask with the region each new click points at flipped to the click's side (`dense_hints`'s start).

  A click on a region the mask got wrong flips the pixels of that side that are
  geodesically closer (along the image: `geodesic_distance`) to the click than to
  every stroke of the other side: the region of the click's colour up to its
  edges, and no further than halfway to what the user marked the other way.

  Args:
    image: (H, W, 3) RGB in [0, 1].
    start: (H, W) bool, the previous mask.
    new_fg, new_bg: (H, W) bool, this correction's new strokes (either may be empty).
    fg, bg: (H, W) bool, all strokes, the new ones included.

  Returns:
    (H, W) bool.
  """
  start = np.asarray(start, bool).copy()
  lab = None
  for new, others, side in ((new_fg, bg, True), (new_bg, fg, False)):
    if not new.any():
      continue
    if lab is None:
      lab = hints_lib.box_blur(hints_lib.rgb_to_lab(np.clip(image, 0, 1)), 1)
    # What the click points at reaches about as far from it again as it lies from the mask's other side (a click
    # is placed inside what is wrong); beyond that the previous mask's side competes with it, as strokes do.
    wrong = start != side
    depth = ndimage.distance_transform_edt(wrong)[new].max(initial=0.0)
    far = ndimage.distance_transform_edt(~new) > 2.0 * depth + REACH_MARGIN
    competing = others | (wrong & far)
    to_click = geodesic_distance(lab, new)
    to_others = geodesic_distance(lab, competing) if competing.any() else np.full(start.shape, np.inf)
    start |= new if side else False
    flip = (start != side) & (to_click < to_others)
    start[flip] = side
    if not side:
      start &= ~new
  return start


def dense_hints(
    image: np.ndarray,
    fg_hint: np.ndarray,
    bg_hint: np.ndarray,
    *,
    margin: float,
    method: str = 'select',
    bg_allowed: np.ndarray | None = None,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Dense hints from sparse ones (module docstring, step 3).

  Args:
    image: (H, W, 3) RGB in [0, 1].
    fg_hint, bg_hint: (H, W) in [0, 1]. With no fg or no bg pixel there is
      nothing to grow from and the hints are returned as they are.
    margin: width of the unhinted band on each side of the grown boundary, as a
      fraction of the longer side (at least 1 px).
    method: 'select': the background start's mask, unless it collapsed to
      under `COLLAPSED` of the geodesic start's area (then the geodesic
      start's): fg where it says so, bg elsewhere. 'grabcut': the geodesic
      start's mask likewise (docs/segmentation.md has the measurements, and a
      'consensus' variant that was dropped).
    bg_allowed: (H, W) where the grown bg hint may be (None: anywhere). For
      automatic seeds, whose GrabCut can miss parts of the object (a zebra's
      white belly against clouds), e.g. the pixels of low saliency: the bg hint
      is then what both say is background.
    start: (H, W) bool, a previous result to correct (an interactive cut-out's
      last mask): one GrabCut from it, its pixels probable foreground and the
      rest probable background, the hints fixed; `method` is then not used. A
      click changes the mask where the image says it should, not everywhere.

  Returns:
    (fg_hint, bg_hint, grown): float32 (H, W) in {0, 1}, and the grown mask.
  """
  fg, bg = fg_hint > 0.5, bg_hint > 0.5
  if not fg.any() or not bg.any():
    return fg.astype(np.float32), bg.astype(np.float32), fg.copy()
  if start is not None:
    labels = np.where(np.asarray(start, bool), cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    labels[bg], labels[fg] = cv2.GC_BGD, cv2.GC_FGD
    grown = (grabcut(image, labels) | fg) & ~bg
    sure_fg, sure_bg = grown, ~grown
  elif method == 'select':
    masks = grow_masks(image, fg_hint, bg_hint)
    grown = masks['geodesic']
    if masks['background'].sum() >= COLLAPSED * grown.sum():
      grown = masks['background']
    sure_fg, sure_bg = grown, ~grown
  elif method == 'grabcut':
    grown = grow_masks(image, fg_hint, bg_hint)['geodesic']
    sure_fg, sure_bg = grown, ~grown
  else:
    raise ValueError(f'unknown method {method!r}')
  r = max(1, round(margin * max(fg.shape)))
  disk = np.hypot(*np.mgrid[-r : r + 1, -r : r + 1]) <= r
  new_fg = ndimage.binary_erosion(sure_fg, structure=disk, border_value=1) | fg
  new_bg = ndimage.binary_erosion(sure_bg, structure=disk, border_value=1)
  if bg_allowed is not None:
    new_bg &= np.asarray(bg_allowed) > 0.5
  new_bg |= bg
  new_fg &= ~bg
  new_bg &= ~fg
  return new_fg.astype(np.float32), new_bg.astype(np.float32), grown

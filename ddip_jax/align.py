"""Global motion of a clip's camera: each frame's transform to a reference frame.

A hand-held, panning or zooming camera moves the whole background between
frames, so a per-pixel median is no background and one background layer cannot
draw every frame. We estimate, for every frame, the similarity transform (shift,
rotation, zoom; as a 3x3 matrix) that maps its pixels onto the reference
(middle) frame's from ORB features matched to the reference frame's (RANSAC
rejects the moving object's matches), warp the frames
there, decompose, and warp the results back (`to_reference`, `from_reference`).
A clip whose estimated motion moves no image corner by `still_px` or more is
taken as static: identity transforms, so a static camera's results stay
exactly as without alignment.
"""

import cv2
import numpy as np


def _grey(frame: np.ndarray) -> np.ndarray:
  return cv2.cvtColor(np.round(np.clip(frame, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def camera_motion(
    frames: np.ndarray,
    *,
    reference: int | None = None,
    min_inliers: int = 12,
    still_px: float = 1.0,
    consensus_sets: int = 3,
) -> np.ndarray:
  """Each frame's similarity transform onto the reference frame, as a 3x3 matrix.

  Args:
    frames: (F, H, W, 3) float in [0, 1].
    reference: the frame the others are warped onto; None: the middle one.
    min_inliers: fewer RANSAC inliers than this: the frame keeps the identity.
    still_px: largest corner displacement under which the camera counts as static.
    consensus_sets: motions RANSAC looks for in turn among a frame's matches;
      the one whose matches cover the largest area is the camera's.

  Returns:
    (F, 3, 3) float64, H_f maps (x, y, 1) of frame f to the reference frame.
  """
  num_frames, h, w = frames.shape[:3]
  reference = num_frames // 2 if reference is None else reference
  # Small frames: a smaller patch and border than ORB's defaults (31), or 128x96 keeps few features.
  orb = cv2.ORB_create(nfeatures=1500, edgeThreshold=8, patchSize=15, fastThreshold=10, scaleFactor=1.15, nlevels=6)
  matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
  features = [orb.detectAndCompute(_grey(frame), None) for frame in frames]

  def step(f: int, g: int) -> np.ndarray:
    """Frame f onto frame g (the identity when too few matches agree)."""
    if f == g:
      return np.eye(3)
    (points, desc), (ref_points, ref_desc) = features[f], features[g]
    if desc is None or ref_desc is None:
      return np.eye(3)
    matches = matcher.match(desc, ref_desc)
    if len(matches) < min_inliers:
      return np.eye(3)
    src = np.float32([points[m.queryIdx].pt for m in matches])
    dst = np.float32([ref_points[m.trainIdx].pt for m in matches])
    # A similarity (shift, rotation, zoom): what a panning, zooming or shaking camera does to a far
    # scene, and far steadier than a full homography from a small frame's few matches. A textured
    # object can hold more matches than a plain background (a duck on a night sky), so RANSAC is run
    # again on what it left over, and the motion whose matches spread over the larger area wins:
    # the background fills the frame, an object is compact.
    best, best_area = np.eye(3), 0.0
    for _ in range(consensus_sets):
      if len(src) < min_inliers:
        break
      similarity, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.5)
      if similarity is None or int(inliers.sum()) < min_inliers:
        break
      inliers = inliers[:, 0].astype(bool)
      area = cv2.contourArea(cv2.convexHull(src[inliers]))
      if area > best_area:
        best, best_area = np.vstack([similarity, [0.0, 0.0, 1.0]]), area
      src, dst = src[~inliers], dst[~inliers]
    return best

  # Each frame straight onto the reference (chaining neighbours' transforms drifted more, measured).
  result = np.stack([step(f, reference) for f in range(num_frames)])
  if corner_motion(result, (h, w)) < still_px:
    return np.tile(np.eye(3), (num_frames, 1, 1))
  return result


def corner_motion(transforms: np.ndarray, shape: tuple[int, int]) -> float:
  """The largest distance (pixels) any of the image's corners moves under any of `transforms` (N, 3, 3)."""
  h, w = shape
  corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], np.float64).T
  moved = transforms @ corners
  moved = moved[:, :2] / moved[:, 2:]
  return float(np.abs(moved - corners[None, :2]).max())


def is_static(transforms: np.ndarray) -> bool:
  """Whether the transforms are all the identity (`homographies` found no camera motion)."""
  return bool(np.allclose(transforms, np.eye(3)))


def warp(images: np.ndarray, transforms: np.ndarray, *, nearest: bool = False) -> np.ndarray:
  """Warps image f by transform f, keeping the size; pixels from outside repeat the border.

  Args:
    images: (F, H, W) or (F, H, W, C) float.
    transforms: (F, 3, 3) from the images' coordinates to the output's.
    nearest: nearest-neighbour sampling (masks) instead of bilinear.

  Returns:
    float32, the shape of `images`.
  """
  h, w = images.shape[1:3]
  flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
  out = [
      cv2.warpPerspective(np.asarray(image, np.float32), t, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
      for image, t in zip(images, transforms)
  ]
  return np.stack(out).reshape(images.shape).astype(np.float32)


def coverage(transforms: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  """(F, H, W) bool: which pixels of the reference frame frame f sees (warped with `transforms`)."""
  ones = np.ones((len(transforms), *shape), np.float32)
  h, w = shape
  seen = [
      cv2.warpPerspective(o, t, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
      for o, t in zip(ones, transforms)
  ]
  return np.stack(seen) > 0.5


def to_reference(images: np.ndarray, transforms: np.ndarray, **kwargs) -> np.ndarray:
  """Frames (or masks) warped onto the reference frame (`warp` with `transforms`)."""
  return warp(images, transforms, **kwargs)


def from_reference(images: np.ndarray, transforms: np.ndarray, **kwargs) -> np.ndarray:
  """Images in the reference frame warped back to their own frames (`warp` with the inverses)."""
  return warp(images, np.linalg.inv(transforms), **kwargs)

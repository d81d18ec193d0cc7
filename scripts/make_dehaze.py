r"""Builds the dehazing demo from scikit-image's bundled stereo pair (exact ground truth).

  PYTHONPATH=. python scripts/make_dehaze.py [--out_dir=data]

writes
  dehaze_clean.png         the haze-free image J (motorcycle_left, cropped, 256x160)
  dehaze_transmission.png  the true transmission t = exp(-beta d)
  dehaze_hazy.png          I = t J + (1 - t) A
with d the scene depth from the ground-truth disparity, normalised to [0, 1],
beta = 1.2 and A = (0.85, 0.87, 0.9). scikit-image is needed only here (and by
benchmarks/eval_dehaze.py, which makes more hazy images with these functions);
the PNGs are committed. Sources and licence: data/README.md.

`EVAL_SET` (issue 31) is the evaluation set of benchmarks/eval_dehaze.py,
made in memory by `eval_scene` (nothing committed): 14 hazy images at 128 and
256 px, of three kinds of depth:
  moto_*:   the motorcycle's measured depth (Middlebury ground truth), four crops;
  segbench composites (data/segbench/<case>/image.png, a cut-out over an
            outdoor photo): a *synthesised* depth, a vertical ramp from 1 at the
            top row (sky, far hills) to 0 at the bottom row (the ground at the
            camera), with the pasted object standing at the ramp's depth of its
            lowest row (where it meets the ground), so depth jumps at its edges;
  rocket:   scikit-image's rocket.jpg under the same ramp (sky at the top).
Hazes range from light (beta 0.6) to dense (2.5), airlights grey, white,
bluish, warm and clearly coloured. Scenes were chosen for depth that a ramp
can stand for (outdoor, horizon or sky at the top), not for how any method does.
"""

from __future__ import annotations

import hashlib
import os
import sys

from absl import app
from absl import flags
import numpy as np
from PIL import Image
from scipy import ndimage

# Run as a plain script, so make the repository root importable.
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO_ROOT)
from ddip_jax import image_io  # pylint: disable=g-import-not-at-top
from ddip_jax import writing  # pylint: disable=g-import-not-at-top

_OUT_DIR = flags.DEFINE_string('out_dir', os.path.join(_REPO_ROOT, 'data'), 'Where the PNGs are written.')

# Calibration of the bundled (4x downsampled) Middlebury 2014 pair, from the
# `skimage.data.stereo_motorcycle` docstring: depth = f * baseline / (disparity + doffs).
FOCAL_PX = 994.978
BASELINE_MM = 193.001
DOFFS_PX = 31.086
# Crop (left, top, right, bottom) of the 741x500 image to the demo's 1.6 aspect
# ratio (some floor cut at the bottom), then resized to SHAPE.
CROP = (0, 10, 741, 473)
SHAPE = (160, 256)  # (H, W): sides multiples of 32, small enough for a CPU run of minutes.
DEMO_BETA = 1.2
DEMO_AIRLIGHT = (0.85, 0.87, 0.9)


def skimage_data_dir() -> str:
  """The folder of the data bundled with scikit-image (no download)."""
  import skimage  # pylint: disable=g-import-not-at-top

  return os.path.join(os.path.dirname(skimage.__file__), 'data')


def scene_depth(disparity: np.ndarray) -> np.ndarray:
  """Depth normalised to [0, 1] (0 nearest) from a disparity map with holes.

  Pixels without ground truth (non-finite disparity: occlusions) take the
  disparity of the nearest pixel that has one.

  Args:
    disparity: (H, W) disparity in pixels; inf / NaN where unknown.

  Returns:
    float32 (H, W), linear in metric depth.
  """
  known = np.isfinite(disparity)
  _, (rows, cols) = ndimage.distance_transform_edt(~known, return_indices=True)
  filled = disparity[rows, cols]
  depth = FOCAL_PX * BASELINE_MM / (filled + DOFFS_PX)
  return ((depth - depth.min()) / (depth.max() - depth.min())).astype(np.float32)


def load_scene(shape: tuple[int, int] = SHAPE, crop: tuple[int, int, int, int] = CROP) -> tuple[np.ndarray, np.ndarray]:
  """The clean motorcycle image and its normalised depth, cropped and resized.

  Returns:
    (clean (H, W, 3), depth (H, W)), float32 in [0, 1]; depth is normalised
    over the crop after resizing (Pillow LANCZOS in float).
  """
  folder = skimage_data_dir()
  with Image.open(os.path.join(folder, 'motorcycle_left.png')) as im:
    clean = np.asarray(im.convert('RGB'), np.float32) / 255.0
  with np.load(os.path.join(folder, 'motorcycle_disp.npz')) as data:
    depth = scene_depth(data['arr_0'])
  left, top, right, bottom = crop
  clean = image_io.resize_image(clean[top:bottom, left:right], shape)
  depth = image_io.resize_image(depth[top:bottom, left:right], shape)
  depth = (depth - depth.min()) / (depth.max() - depth.min())
  return np.clip(clean, 0.0, 1.0), depth.astype(np.float32)


def add_haze(
    clean: np.ndarray, depth: np.ndarray, *, beta: float, airlight: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
  """The atmospheric scattering model: I = t J + (1 - t) A, t = exp(-beta d).

  Returns:
    (hazy (H, W, 3), transmission (H, W)), float32.
  """
  t = np.exp(-beta * depth).astype(np.float32)
  hazy = t[..., None] * clean + (1.0 - t[..., None]) * np.asarray(airlight, np.float32)
  return hazy.astype(np.float32), t


# name -> (source, (H, W), beta, airlight). Sources: 'moto:<left,top,right,bottom>' (a crop of the
# stereo pair, true depth), 'segbench:<case>' (ramp + object depth), 'skimage:<file>' (ramp).
EVAL_SET = {
    'moto_full_128': ('moto:0,10,741,473', (80, 128), 1.0, (0.8, 0.8, 0.8)),
    'moto_left_128': ('moto:0,0,400,300', (96, 128), 2.0, (0.95, 0.95, 0.95)),
    'moto_right_256': ('moto:341,100,741,400', (192, 256), 0.6, (0.75, 0.82, 0.92)),
    'moto_full_256': ('moto:0,10,741,473', (160, 256), 1.5, (0.92, 0.86, 0.74)),
    'beetle_road_128': ('segbench:beetle_road', (96, 128), 1.2, (0.75, 0.82, 0.92)),
    'crow_sky_128': ('segbench:crow_sky', (96, 128), 0.7, (0.95, 0.95, 0.95)),
    'hen_forest_128': ('segbench:hen_forest', (96, 128), 2.5, (0.8, 0.8, 0.8)),
    'heron_hills_128': ('segbench:heron_hills', (96, 128), 1.0, (0.9, 0.85, 0.6)),
    'drake_stream_128': ('segbench:drake_stream', (96, 128), 1.5, (0.95, 0.95, 0.95)),
    'ostrich_mountains_256': ('segbench:ostrich_mountains', (192, 256), 1.8, (0.75, 0.82, 0.92)),
    'peacock_hills_256': ('segbench:peacock_hills', (192, 256), 0.8, (0.92, 0.86, 0.74)),
    'trumpet_sky_256': ('segbench:trumpet_sky', (192, 256), 1.2, (0.85, 0.85, 0.85)),
    'grinder_sunset_256': ('segbench:grinder_sunset', (192, 256), 1.0, (0.95, 0.8, 0.6)),
    'rocket_256': ('skimage:rocket.jpg', (170, 256), 1.3, (0.95, 0.95, 0.95)),
}


def ramp_depth(shape: tuple[int, int], mask: np.ndarray | None = None) -> np.ndarray:
  """A plausible outdoor depth: 1 at the top row, 0 at the bottom; an object (mask) at its lowest row's depth.

  Args:
    shape: (H, W).
    mask: optional (H, W) bool, a foreground object standing on the ground.

  Returns:
    float32 (H, W) in [0, 1].
  """
  height, width = shape
  depth = np.broadcast_to(np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None], shape).copy()
  if mask is not None and mask.any():
    lowest = np.nonzero(mask.any(axis=1))[0].max()
    depth[mask] = depth[lowest, 0]
  return depth


def eval_scene(name: str) -> tuple[np.ndarray, np.ndarray, float, tuple[float, float, float]]:
  """One image of `EVAL_SET`: (clean (H, W, 3), depth (H, W), beta, airlight); needs scikit-image."""
  source, shape, beta, airlight = EVAL_SET[name]
  kind, arg = source.split(':')
  if kind == 'moto':
    clean, depth = load_scene(shape, tuple(int(v) for v in arg.split(',')))
  elif kind == 'segbench':
    folder = os.path.join(_REPO_ROOT, 'data', 'segbench', arg)
    clean = np.clip(image_io.resize_image(image_io.load_image(os.path.join(folder, 'image.png')), shape), 0, 1)
    mask = image_io.resize_image(image_io.load_image(os.path.join(folder, 'mask.png'))[..., 0], shape) >= 0.5
    depth = ramp_depth(shape, mask)
  else:
    with Image.open(os.path.join(skimage_data_dir(), arg)) as im:
      clean = np.asarray(im.convert('RGB'), np.float32) / 255.0
    clean = np.clip(image_io.resize_image(clean, shape), 0, 1)
    depth = ramp_depth(shape)
  return clean.astype(np.float32), depth, beta, airlight


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  clean, depth = load_scene()
  hazy, t = add_haze(clean, depth, beta=DEMO_BETA, airlight=DEMO_AIRLIGHT)
  files = {'dehaze_clean.png': clean, 'dehaze_transmission.png': t, 'dehaze_hazy.png': hazy}
  for name, array in files.items():
    path = os.path.join(_OUT_DIR.value, name)
    writing.save_image(path, array)
    with open(path, 'rb') as f:
      print(f'{name:24s} sha256 {hashlib.sha256(f.read()).hexdigest()}')


if __name__ == '__main__':
  app.run(main)

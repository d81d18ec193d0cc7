"""Where the demo data comes from: files of Debian packages and photos bundled with scikit-image.

Shared by the scripts that make the demo data (`make_*.py`) and by the
benchmarks that make more inputs the same way. No flags here, so any of those
scripts can import it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from typing import Any

from absl import app
import numpy as np
from PIL import Image

from ddip_jax import image_io


def sha256(path: str) -> str:
  with open(path, 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()


def _fetch(package: str, pkg_root: str, rel: str, workdir: str) -> str:
  """Downloads and unpacks `package` into `workdir`; returns the file `rel`."""
  print(f'{rel} not found; fetching {package} with apt-get download ...')
  try:
    subprocess.run(['apt-get', 'download', package], cwd=workdir, check=True)
    debs = [f for f in os.listdir(workdir) if f.startswith(package + '_') and f.endswith('.deb')]
    if len(debs) != 1:
      raise RuntimeError(f'expected one {package}_*.deb, found {debs}')
    deb = os.path.join(workdir, debs[0])
    version = subprocess.run(
        ['dpkg-deb', '-f', deb, 'Version'], check=True, capture_output=True, text=True
    ).stdout.strip()
    print(f'  {package} version {version}')
    subprocess.run(['dpkg-deb', '-x', deb, os.path.join(workdir, 'root')], check=True)
  except (OSError, subprocess.CalledProcessError, RuntimeError) as e:
    raise app.UsageError(
        f'could not fetch {package} ({e}). Install it, or download it with '
        f'`apt-get download {package}`, unpack it with `dpkg-deb -x FILE.deb '
        f'DIR` and pass the directory {pkg_root!r} inside DIR as the flag.'
    )
  path = os.path.join(workdir, 'root', pkg_root, rel)
  if not os.path.isfile(path):
    raise app.UsageError(f'{package} does not contain {pkg_root}/{rel}')
  return path


def package_file(spec: tuple[str, str, str], root: str, workdir: str, known_sha256: str) -> str:
  """The file `spec` = (package, path inside its install root, path below `root`).

  Looked for below `root`; if absent, the package is fetched into `workdir`
  (`apt-get download`, then `dpkg-deb -x`; no root needed). Warns if the file's
  sha256 is not `known_sha256` (the file data/ was made from).
  """
  package, pkg_root, rel = spec
  path = os.path.join(root, rel)
  if not os.path.isfile(path):
    path = _fetch(package, pkg_root, rel, workdir)
  digest = sha256(path)
  if digest != known_sha256:
    print(f'warning: {path} differs from the file data/ was made from ' f'(sha256 {digest}); the result will differ.')
  return path


def scaled_cutout(stamp: Image.Image, width: int) -> tuple[np.ndarray, np.ndarray]:
  """A stamp scaled to `width` pixels (aspect kept), as premultiplied colour and alpha.

  Resampled as premultiplied colour in float (LANCZOS), so the colour of fully
  transparent pixels (arbitrary in the stamp) cannot bleed into the edge as a
  fringe.

  Returns:
    colour: float32 (h, width, 3), premultiplied, in [0, alpha].
    alpha: float32 (h, width, 1) in [0, 1].
  """
  rgba = np.asarray(stamp.convert('RGBA'), np.float32) / 255.0
  alpha = rgba[..., 3:]
  premultiplied = np.concatenate([rgba[..., :3] * alpha, alpha], axis=-1)
  height = round(width * stamp.height / stamp.width)
  small = image_io.resize_image(premultiplied, (height, width))
  alpha = np.clip(small[..., 3:], 0.0, 1.0)
  return np.clip(small[..., :3], 0.0, alpha), alpha


def skimage_data_dir() -> str:
  """The folder of the images bundled with scikit-image (no download)."""
  import skimage  # pylint: disable=g-import-not-at-top

  return os.path.join(os.path.dirname(skimage.__file__), 'data')


def load_photo(filename: str, box: tuple[int, int, int, int], tint: Any, size: tuple[int, int]) -> np.ndarray:
  """A photo bundled with scikit-image, cropped, resized (LANCZOS in float) and tinted.

  Args:
    filename: the file in skimage/data.
    box: crop box (left, top, right, bottom).
    tint: None, or an RGB colour that multiplies the photo's grey level.
    size: (H, W) of the output.

  Returns:
    float32 (H, W, 3) in [0, 1].
  """
  with Image.open(os.path.join(skimage_data_dir(), filename)) as im:
    pixels = np.asarray(im.convert('RGB').crop(box), np.float32) / 255.0
  layer = image_io.resize_image(pixels, size)
  if tint is not None:
    layer = layer.mean(axis=-1, keepdims=True) * np.asarray(tint, np.float32)
  return np.clip(layer, 0.0, 1.0).astype(np.float32)

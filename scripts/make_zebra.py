r"""Builds the zebra segmentation example: data/zebra.png and data/zebra_mask.png.

A real-photo zebra cut-out (Tux Paint stamp, Debian package
tuxpaint-stamps-default, GPL-2+) is composited onto a meadow photo (OpenCV HFS
sample, Debian package opencv-doc). Because we composite, the exact foreground
mask is known, which gives a ground truth for Double-DIP segmentation.

Usage (from the repository root):

  python scripts/make_zebra.py \
    --stamps_root=/tmp/debx/usr/share/tuxpaint/stamps \
    --opencv_doc_root=/tmp/debx/usr/share/doc/opencv-doc

The defaults are where the two packages install their files. When a source file
is not there, the script runs `apt-get download` for the package into a temporary
directory and unpacks it with `dpkg-deb -x` (no root needed). Output is
deterministic for a given Pillow / libjpeg build; see data/README.md.
"""

from __future__ import annotations

import os
import sys
import tempfile

from absl import app
from absl import flags
import numpy as np
from PIL import Image

# Run as a plain script, so make the repository root importable.
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO_ROOT)
from ddip_jax import writing  # pylint: disable=g-import-not-at-top
from scripts import sources  # pylint: disable=g-import-not-at-top

_STAMPS_ROOT = flags.DEFINE_string(
    "stamps_root", "/usr/share/tuxpaint/stamps", "Tux Paint stamps directory (package tuxpaint-stamps-default)."
)
_OPENCV_DOC_ROOT = flags.DEFINE_string(
    "opencv_doc_root", "/usr/share/doc/opencv-doc", "opencv-doc documentation directory (package opencv-doc)."
)
_OUT_DIR = flags.DEFINE_string(
    "out_dir", os.path.join(_REPO_ROOT, "data"), "Where zebra.png and zebra_mask.png are written."
)

# (package, path inside the package's install root, path below the flag's root).
_ZEBRA = ("tuxpaint-stamps-default", "usr/share/tuxpaint/stamps", "animals/mammals/equines/zebra.png")
_MEADOW = ("opencv-doc", "usr/share/doc/opencv-doc", "examples/hfs/data/002.jpg")
# The files data/ was made from; another version still works but is reported.
_KNOWN_SHA256 = {
    _ZEBRA[2]: "f4a1329606b3d77b7064c8c42d3e247f522f1a48f852ef787a963ecf819f0a8c",
    _MEADOW[2]: "21b07a5287dec0306846191abf720c352e57b2c6b42bb30885c9deb02664ada7",
}

# The meadow's left part (sky, clouds, grass and the tips of the tree's branches
# at the right edge): the zebra is the scene's one salient object, and the demo
# stays small enough to run in a few minutes on two CPU cores.
_CROP = (0, 110, 190, 254)  # (left, top, right, bottom) in the 380x254 photo.
_SIZE = (256, 192)  # (W, H) of the output; divisible by 32 for the U-Nets.
_ZEBRA_WIDTH = 150  # Pixels.
_ZEBRA_LEFT = 24  # x of the cut-out's left edge.
_FEET_Y = 182  # y of the lowest opaque pixel (the hooves), on the grass.


def compose(zebra: Image.Image, meadow: Image.Image) -> tuple[np.ndarray, np.ndarray]:
  """Places the zebra on the meadow's grass.

  Args:
    zebra: RGBA cut-out.
    meadow: RGB background.

  Returns:
    image: float32 (192, 256, 3) in [0, 1], the composite.
    mask: float32 (192, 256) in {0, 1}, 1 where the zebra's alpha >= 0.5.
  """
  bg = np.asarray(meadow.convert("RGB").crop(_CROP).resize(_SIZE, Image.Resampling.LANCZOS), np.float32) / 255.0
  height = round(_ZEBRA_WIDTH * zebra.height / zebra.width)
  colour, alpha = sources.scaled_cutout(zebra, _ZEBRA_WIDTH)

  rows = np.nonzero(alpha[..., 0].max(axis=1) >= 0.5)[0]
  top = _FEET_Y - rows.max()
  window = (slice(top, top + height), slice(_ZEBRA_LEFT, _ZEBRA_LEFT + _ZEBRA_WIDTH))
  image = bg.copy()
  image[window] = colour + image[window] * (1.0 - alpha)
  mask = np.zeros(bg.shape[:2], np.float32)
  mask[window] = alpha[..., 0] >= 0.5
  return image, mask


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with tempfile.TemporaryDirectory() as workdir:
    zebra_path = sources.package_file(_ZEBRA, _STAMPS_ROOT.value, workdir, _KNOWN_SHA256[_ZEBRA[2]])
    meadow_path = sources.package_file(_MEADOW, _OPENCV_DOC_ROOT.value, workdir, _KNOWN_SHA256[_MEADOW[2]])
    with Image.open(zebra_path) as zebra, Image.open(meadow_path) as meadow:
      image, mask = compose(zebra, meadow)
  for name, array in (("zebra.png", image), ("zebra_mask.png", mask)):
    path = os.path.join(_OUT_DIR.value, name)
    writing.save_image(path, array)
    print(f"wrote {path}  sha256 {sources.sha256(path)}")


if __name__ == "__main__":
  app.run(main)

r"""Builds the video decomposition demo clips: a cut-out animal moving over a photo.

  PYTHONPATH=. python scripts/make_video.py [--clips=horse] [--out_dir=data/video] \
      [--stamps_root=/tmp/tps/usr/share/tuxpaint/stamps]

writes, per clip, `<out_dir>/<clip>/frames/frame_00.png ...` (the frames) and
`<out_dir>/<clip>/masks/frame_00.png ...` (exact ground-truth masks: the
cut-out's alpha >= 0.5). An animal stamp (Tux Paint, Debian package
tuxpaint-stamps-default, GPL-2+; fetched with `apt-get download` when not
under --stamps_root, as scripts/make_zebra.py does) moves along a straight
line over a photo bundled with scikit-image, with a small vertical bob (a
walk or a wing beat); the background never moves (static camera). The demo
(`configs/video.py`) is the 'horse' clip; `benchmarks/eval_video.py` also uses
'duck'. Sources and licences: data/README.md.
"""

from __future__ import annotations

import dataclasses
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

_CLIPS = flags.DEFINE_list('clips', ['horse'], 'Clips to write (keys of CLIPS).')
_OUT_DIR = flags.DEFINE_string('out_dir', os.path.join(_REPO_ROOT, 'data', 'video'), 'Where the clips go.')
_STAMPS = flags.DEFINE_string('stamps_root', '/usr/share/tuxpaint/stamps',
                              'Tux Paint stamps directory (package tuxpaint-stamps-default).')

_PACKAGE = ('tuxpaint-stamps-default', 'usr/share/tuxpaint/stamps')
# Backgrounds from skimage/data: (file, crop box (left, top, right, bottom) of aspect 4:3, tint).
BACKGROUNDS = {
    'garage': ('motorcycle_left.png', (37, 0, 704, 500), None),
    'launch_pad': ('rocket.jpg', (36, 0, 605, 427), None),
}


@dataclasses.dataclass(frozen=True)
class Clip:
  """A cut-out moving in a straight line over a still background.

  Attributes:
    stamp: the stamp's path below the stamps root.
    stamp_sha256: sha256 of the stamp file the shipped clip was made from.
    background: a key of BACKGROUNDS.
    width: the cut-out's width in pixels.
    start: (x, y) of the cut-out's top-left corner in the first frame.
    end: (x, y) in the last frame (positions in between are interpolated and
      rounded to whole pixels, so the masks are exact).
    bob: amplitude in pixels of a vertical sine, two periods over the clip.
    num_frames: F.
    size: (H, W) of the frames.
    flip: mirror the stamp left-right (to face the direction of motion).
  """

  stamp: str
  stamp_sha256: str
  background: str
  width: int
  start: tuple[int, int]
  end: tuple[int, int]
  bob: float = 0.0
  num_frames: int = 12
  size: tuple[int, int] = (96, 128)
  flip: bool = False


CLIPS = {
    # A horse walks left to right across a garage floor, in front of a motorcycle.
    'horse': Clip('animals/mammals/equines/horse.png',
                  '1c14aee30e0af4984fcfed4ec9b13769b4e16bb0eb49f95ccef65126b424c6fd',
                  'garage', width=38, start=(0, 59), end=(90, 61), bob=1.0),
    # A duck flies up and right over a night-time launch pad, entering at the left edge.
    'duck': Clip('animals/birds/duck.png',
                 '7770d71308241fe7f0a4f99fc2aabe8ac16e4cfff6e37d13e61fab459c8aed33',
                 'launch_pad', width=36, start=(-12, 62), end=(96, 8), bob=3.0, flip=True),
}


def render(clip: Clip, stamp: Image.Image, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Composites the moving cut-out over the background, frame by frame.

  Args:
    clip: what moves where.
    stamp: the RGBA stamp.
    background: (H, W, 3) float in [0, 1].

  Returns:
    frames: float32 (F, H, W, 3) in [0, 1].
    masks: float32 (F, H, W) in {0, 1}, 1 where the cut-out's alpha >= 0.5.
  """
  if clip.flip:
    stamp = stamp.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
  colour, alpha = sources.scaled_cutout(stamp, clip.width)
  h, w = background.shape[:2]
  sh, sw = alpha.shape[:2]
  frames, masks = [], []
  for f in range(clip.num_frames):
    t = f / max(clip.num_frames - 1, 1)
    x = round(clip.start[0] + t * (clip.end[0] - clip.start[0]))
    y = round(clip.start[1] + t * (clip.end[1] - clip.start[1]) + clip.bob * np.sin(4 * np.pi * t))
    # The part of the cut-out inside the frame (it may enter or leave at an edge).
    top, left, bottom, right = max(y, 0), max(x, 0), min(y + sh, h), min(x + sw, w)
    window = (slice(top, bottom), slice(left, right))
    inner = (slice(top - y, bottom - y), slice(left - x, right - x))
    frame = background.copy()
    frame[window] = colour[inner] + frame[window] * (1.0 - alpha[inner])
    mask = np.zeros((h, w), np.float32)
    mask[window] = alpha[inner][..., 0] >= 0.5
    frames.append(frame)
    masks.append(mask)
  return np.stack(frames).astype(np.float32), np.stack(masks)


def make_clip(name: str, stamps_root: str, workdir: str) -> tuple[np.ndarray, np.ndarray]:
  """The frames and masks of `CLIPS[name]` (see `render`); the stamp is fetched if absent."""
  clip = CLIPS[name]
  path = sources.package_file((*_PACKAGE, clip.stamp), stamps_root, workdir, clip.stamp_sha256)
  background = sources.load_photo(*BACKGROUNDS[clip.background], clip.size)
  with Image.open(path) as stamp:
    return render(clip, stamp, background)


def write_clip(folder: str, frames: np.ndarray, masks: np.ndarray) -> None:
  """Writes `folder`/frames/frame_<k>.png and `folder`/masks/frame_<k>.png."""
  for k, (frame, mask) in enumerate(zip(frames, masks)):
    writing.save_image(os.path.join(folder, 'frames', f'frame_{k:02d}.png'), frame)
    writing.save_image(os.path.join(folder, 'masks', f'frame_{k:02d}.png'), mask)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  unknown = set(_CLIPS.value) - set(CLIPS)
  if unknown:
    raise app.UsageError(f'unknown clips {sorted(unknown)} (known: {", ".join(CLIPS)})')
  with tempfile.TemporaryDirectory() as workdir:
    for name in _CLIPS.value:
      frames, masks = make_clip(name, _STAMPS.value, workdir)
      folder = os.path.join(_OUT_DIR.value, name)
      write_clip(folder, frames, masks)
      print(f'{name}: {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]} in {folder}, '
            f'foreground {masks.mean():.1%} of the pixels')


if __name__ == '__main__':
  app.run(main)

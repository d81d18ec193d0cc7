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
from scipy import ndimage

# Run as a plain script, so make the repository root importable.
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO_ROOT)
from ddip_jax import writing  # pylint: disable=g-import-not-at-top
from scripts import sources  # pylint: disable=g-import-not-at-top

_CLIPS = flags.DEFINE_list('clips', ['horse'], 'Clips to write (keys of CLIPS).')
_OUT_DIR = flags.DEFINE_string('out_dir', os.path.join(_REPO_ROOT, 'data', 'video'), 'Where the clips go.')
_STAMPS = flags.DEFINE_string(
    'stamps_root', '/usr/share/tuxpaint/stamps', 'Tux Paint stamps directory (package tuxpaint-stamps-default).'
)

_PACKAGE = ('tuxpaint-stamps-default', 'usr/share/tuxpaint/stamps')
# Backgrounds from skimage/data: (file, crop box (left, top, right, bottom) of aspect 4:3, tint).
BACKGROUNDS = {
    'garage': ('motorcycle_left.png', (37, 0, 704, 500), None),
    'launch_pad': ('rocket.jpg', (36, 0, 605, 427), None),
    'garage_right': ('motorcycle_right.png', (37, 0, 704, 500), None),
    'coffee': ('coffee.png', (33, 0, 567, 400), None),
    'astronaut': ('astronaut.png', (0, 64, 512, 448), None),
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
    cutout: '' (the Tux Paint `stamp`), or a cut-out shipped in data/:
      'segbench/<case>' (its image.png with mask.png as alpha) or
      'video/horse' (the demo's horse, frame 5 with its mask); `stamp_sha256`
      is then unused.
    pause: frames [a, b) in which the cut-out stands still (it walks on after).
    gain: (first, last) brightness factor of the whole frame (lighting change),
      linear over the clip.
    camera: None (static camera), or how the camera moves (`Camera`).
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
  cutout: str = ''
  pause: tuple[int, int] = (0, 0)
  gain: tuple[float, float] = (1.0, 1.0)
  camera: 'Camera | None' = None


@dataclasses.dataclass(frozen=True)
class Camera:
  """A camera that moves over a photo larger than the frame (a window cropped out of it).

  The photo (the clip's background) is resized to `world` times the frame size;
  frame f shows the window centred at `centre` (in world pixels, linear from
  start to end, plus a hand-held `shake`) whose frame pixel spans `scale` world
  pixels (linear from start to end: < 1 at the end zooms in). Bilinear
  resampling (scipy.ndimage.map_coordinates, order 1).

  Attributes:
    world: the photo's size as a multiple of the frame's.
    start: (x, y) window centre in the first frame, in world pixels.
    end: (x, y) in the last frame.
    scale: (first, last) world pixels per frame pixel.
    shake: amplitude in world pixels of a pseudo-random (seeded) hand-held jitter.
  """

  world: float = 1.5
  start: tuple[float, float] = (96.0, 72.0)
  end: tuple[float, float] = (96.0, 72.0)
  scale: tuple[float, float] = (1.0, 1.0)
  shake: float = 0.0


CLIPS = {
    # A horse walks left to right across a garage floor, in front of a motorcycle.
    'horse': Clip(
        'animals/mammals/equines/horse.png',
        '1c14aee30e0af4984fcfed4ec9b13769b4e16bb0eb49f95ccef65126b424c6fd',
        'garage',
        width=38,
        start=(0, 59),
        end=(90, 61),
        bob=1.0,
    ),
    # A duck flies up and right over a night-time launch pad, entering at the left edge.
    'duck': Clip(
        'animals/birds/duck.png',
        '7770d71308241fe7f0a4f99fc2aabe8ac16e4cfff6e37d13e61fab459c8aed33',
        'launch_pad',
        width=36,
        start=(-12, 62),
        end=(96, 8),
        bob=3.0,
        flip=True,
    ),
    # The evaluation set (benchmarks/eval_video.py): 24 frames each, cut-outs shipped in data/ (no download).
    # The horse again, twice as many frames (the baseline case: static camera, slight bob).
    'horse24': Clip(
        '', '', 'garage', width=38, start=(0, 59), end=(90, 61), bob=1.0, num_frames=24, cutout='video/horse'
    ),
    # A slow object: the duck moves 30 px in 24 frames, less than its own width.
    'duck_slow': Clip(
        '', '', 'coffee', width=40, start=(20, 50), end=(50, 44), bob=1.0, num_frames=24, cutout='segbench/duck_dogs'
    ),
    # An object that stops: the fish swims, stands still for 8 frames, swims on.
    'fish_stops': Clip(
        '',
        '',
        'launch_pad',
        width=40,
        start=(-4, 30),
        end=(92, 40),
        num_frames=24,
        cutout='segbench/fish_bowl',
        pause=(8, 16),
    ),
    # Lighting change: the scene darkens to 70% over the clip while a kettle slides by.
    'kettle_light': Clip(
        '',
        '',
        'astronaut',
        width=40,
        start=(4, 30),
        end=(84, 36),
        bob=1.0,
        num_frames=24,
        cutout='segbench/kettle_room',
        gain=(1.0, 0.7),
    ),
    # Entering and leaving: the teapot comes in at the left edge and goes out at the right.
    'teapot_through': Clip(
        '', '', 'garage_right', width=48, start=(-40, 40), end=(120, 46), num_frames=24, cutout='segbench/teapot_apple'
    ),
    # Panning camera: the view moves 48 px right over the garage while the horse walks.
    'horse_pan': Clip(
        '',
        '',
        'garage',
        width=38,
        start=(10, 58),
        end=(84, 60),
        bob=1.0,
        num_frames=24,
        cutout='video/horse',
        camera=Camera(start=(72.0, 72.0), end=(120.0, 68.0)),
    ),
    # Zooming camera: the view closes in to 80% of its width on the launch pad while the duck flies.
    'duck_zoom': Clip(
        '',
        '',
        'launch_pad',
        width=36,
        start=(4, 60),
        end=(88, 20),
        bob=2.0,
        num_frames=24,
        cutout='segbench/duck_dogs',
        flip=True,
        camera=Camera(start=(96.0, 72.0), end=(100.0, 76.0), scale=(1.2, 0.95)),
    ),
    # Hand-held: a slow pan with jitter of +-2 px while the fish crosses the coffee cup photo.
    'fish_handheld': Clip(
        '',
        '',
        'coffee',
        width=40,
        start=(0, 56),
        end=(86, 40),
        num_frames=24,
        cutout='segbench/fish_bowl',
        camera=Camera(start=(84.0, 70.0), end=(104.0, 74.0), shake=2.0),
    ),
}
# The evaluation set of benchmarks/eval_video.py.
EVAL_CLIPS = (
    'horse24',
    'duck_slow',
    'fish_stops',
    'kettle_light',
    'teapot_through',
    'horse_pan',
    'duck_zoom',
    'fish_handheld',
)


def _progress(clip: Clip) -> np.ndarray:
  """Each frame's position along the path, in [0, 1]: linear, standing still during `clip.pause`."""
  frames = np.arange(clip.num_frames)
  a, b = clip.pause
  moved = frames - np.clip(frames - a, 0, b - 1 - a) if b > a else frames
  return moved / max(moved[-1], 1)


def camera_views(camera: Camera | None, world: np.ndarray, num_frames: int, size: tuple[int, int]) -> np.ndarray:
  """The background of each frame: a window of `world` that moves as `camera` says (see `Camera`).

  Args:
    camera: None: `world` is the frame-size background, the same in every frame.
    world: (h, w, 3) the photo.
    num_frames: F.
    size: (H, W) of a frame.

  Returns:
    float32 (F, H, W, 3).
  """
  if camera is None:
    return np.broadcast_to(world, (num_frames, *world.shape)).astype(np.float32)
  h, w = size
  jitter = np.random.default_rng(0).uniform(-1, 1, (num_frames, 2)) * camera.shake
  rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
  views = []
  for f in range(num_frames):
    t = f / max(num_frames - 1, 1)
    cx, cy = np.asarray(camera.start) + t * (np.subtract(camera.end, camera.start)) + jitter[f]
    scale = camera.scale[0] + t * (camera.scale[1] - camera.scale[0])
    coords = [cy + (rows - (h - 1) / 2) * scale, cx + (cols - (w - 1) / 2) * scale]
    views.append(
        np.stack([ndimage.map_coordinates(world[..., c], coords, order=1, mode='nearest') for c in range(3)], -1)
    )
  return np.clip(np.stack(views), 0.0, 1.0).astype(np.float32)


def render(clip: Clip, stamp: Image.Image, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Composites the moving cut-out over the (possibly moving) background, frame by frame.

  Args:
    clip: what moves where.
    stamp: the RGBA stamp.
    background: (H, W, 3) float in [0, 1], or with `clip.camera` the larger photo it looks at.

  Returns:
    frames: float32 (F, H, W, 3) in [0, 1].
    masks: float32 (F, H, W) in {0, 1}, 1 where the cut-out's alpha >= 0.5.
  """
  if clip.flip:
    stamp = stamp.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
  colour, alpha = sources.scaled_cutout(stamp, clip.width)
  h, w = clip.size
  sh, sw = alpha.shape[:2]
  views = camera_views(clip.camera, background, clip.num_frames, clip.size)
  frames, masks = [], []
  for f, t in enumerate(_progress(clip)):
    x = round(clip.start[0] + t * (clip.end[0] - clip.start[0]))
    y = round(clip.start[1] + t * (clip.end[1] - clip.start[1]) + clip.bob * np.sin(4 * np.pi * t))
    # The part of the cut-out inside the frame (it may enter or leave at an edge).
    top, left, bottom, right = max(y, 0), max(x, 0), min(y + sh, h), min(x + sw, w)
    frame = views[f].copy()
    mask = np.zeros((h, w), np.float32)
    if bottom > top and right > left:
      window = (slice(top, bottom), slice(left, right))
      inner = (slice(top - y, bottom - y), slice(left - x, right - x))
      frame[window] = colour[inner] + frame[window] * (1.0 - alpha[inner])
      mask[window] = alpha[inner][..., 0] >= 0.5
    gain = clip.gain[0] + f / max(clip.num_frames - 1, 1) * (clip.gain[1] - clip.gain[0])
    frames.append(np.clip(frame * gain, 0.0, 1.0))
    masks.append(mask)
  return np.stack(frames).astype(np.float32), np.stack(masks)


def shipped_cutout(name: str) -> Image.Image:
  """An RGBA cut-out from data/ (`Clip.cutout`): the photo's pixels, alpha = the exact mask."""
  if name == 'video/horse':
    image, mask = (os.path.join(_REPO_ROOT, 'data', 'video', 'horse', d, 'frame_05.png') for d in ('frames', 'masks'))
  else:
    image, mask = (os.path.join(_REPO_ROOT, 'data', name, f) for f in ('image.png', 'mask.png'))
  with Image.open(image) as im, Image.open(mask) as m:
    rgba = np.concatenate([np.asarray(im.convert('RGB')), np.asarray(m.convert('L'))[..., None]], -1)
  ys, xs = np.nonzero(rgba[..., 3] > 127)
  rgba = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].copy()
  rgba[..., 3] = np.where(rgba[..., 3] > 127, 255, 0)
  return Image.fromarray(rgba, 'RGBA')


def make_clip(name: str, stamps_root: str, workdir: str) -> tuple[np.ndarray, np.ndarray]:
  """The frames and masks of `CLIPS[name]` (see `render`); a stamp is fetched if absent."""
  clip = CLIPS[name]
  scale = clip.camera.world if clip.camera is not None else 1.0
  size = (round(clip.size[0] * scale), round(clip.size[1] * scale))
  background = sources.load_photo(*BACKGROUNDS[clip.background], size)
  if clip.cutout:
    return render(clip, shipped_cutout(clip.cutout), background)
  path = sources.package_file((*_PACKAGE, clip.stamp), stamps_root, workdir, clip.stamp_sha256)
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
      print(
          f'{name}: {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]} in {folder}, '
          f'foreground {masks.mean():.1%} of the pixels'
      )


if __name__ == '__main__':
  app.run(main)

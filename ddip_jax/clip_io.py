"""Clips: the frames of a folder or an animated GIF, per-frame masks, and GIFs written."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import hashlib
import io
import os
import re
import stat
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageSequence

from ddip_jax import image_io
from ddip_jax import writing

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")  # Frame files of a folder (any case).


def _natural_key(name: str) -> list[Any]:
  """Sort key comparing runs of digits as numbers: frame2 < frame10."""
  return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def frame_files(folder: str) -> list[str]:
  """The PNG/JPEG files of `folder`, in natural name order (raises OSError)."""
  names = [
      n for n in os.listdir(folder) if n.lower().endswith(FRAME_SUFFIXES) and os.path.isfile(os.path.join(folder, n))
  ]
  return [os.path.join(folder, n) for n in sorted(names, key=_natural_key)]


def _expand_folders(paths: Sequence[str]) -> Iterator[str]:
  """`paths`, each readable folder replaced by its frame files."""
  for path in paths:
    try:
      yield from frame_files(path) if os.path.isdir(path) else [path]
    except OSError:
      continue


def file_digests(paths: Sequence[str]) -> dict[str, str]:
  """SHA-256 (hex) of the content of every input file among `paths`.

  A folder stands for its frame files (`FRAME_SUFFIXES`, as `list_frames`
  takes them). Paths that are missing or not regular files are left out: the
  task that reads them reports them.

  Returns:
    file path -> hex digest, in the order of `paths`.
  """
  digests = {}
  for path in _expand_folders(paths):
    try:
      if not stat.S_ISREG(os.stat(path).st_mode):
        continue
      digest = hashlib.sha256()
      with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):  # pylint: disable=cell-var-from-loop
          digest.update(chunk)
    except OSError:
      continue
    digests[path] = digest.hexdigest()
  return digests


def list_frames(folder: str | os.PathLike[str]) -> list[str]:
  """The PNG/JPEG files of `folder` in natural name order (frame2 before frame10).

  Raises:
    image_io.InputError: `folder` is missing, not a folder or holds no frame file.
  """
  folder = os.fspath(folder)
  if not os.path.isdir(folder):
    raise image_io.InputError(f"cannot read {folder!r}: no such folder")
  try:
    frames = frame_files(folder)
  except OSError as e:
    raise image_io.InputError(f"cannot read {folder!r}: {e.strerror or e}") from e
  if not frames:
    raise image_io.InputError(f"{folder!r} holds no PNG or JPEG frames")
  return frames


def _stacked(
    path: str, count: int, height: int, width: int, frames: Iterator[np.ndarray], files: list[str]
) -> np.ndarray:
  """The clip as one (F, H, W, 3) array, filled a frame at a time, once its run is known to fit in memory."""
  image_io.check_fits(repr(path), height, width, frames=count)
  if count < 2:
    list(frames)  # A truncated file is called that, not a clip of one frame.
    raise image_io.InputError(
        f"{path!r} has {count} frame; a video needs at least 2 " "(segment a single image with task 'segmentation')"
    )
  clip = None
  for index, (file, frame) in enumerate(zip(files, frames)):
    if clip is None:
      clip = np.empty((count, *frame.shape), np.float32)
    elif frame.shape != clip.shape[1:]:
      raise image_io.InputError(
          f"frames differ in size: {file!r} is {frame.shape[1]}x{frame.shape[0]}, "
          f"{files[0]!r} is {clip.shape[2]}x{clip.shape[1]}; all frames of {path!r} must have one size"
      )
    clip[index] = frame
  return clip


def load_frames(path: str | os.PathLike[str]) -> tuple[np.ndarray, list[str]]:
  """Loads a clip: a folder of PNG/JPEG frames or an animated GIF.

  Frames of a folder are read in natural name order (`list_frames`) with
  `image_io.load_image`'s conversions; a GIF's frames as Pillow composes them
  (each over the previous ones, by GIF's disposal rules). The clip's size is
  checked against the memory limit (`image_io.check_fits`: frames x pixels,
  from the first frame's header and the number of frames) before any frame is
  decoded, and the frames are decoded one at a time into the clip's array.

  Args:
    path: a folder of frames or an animated GIF file.

  Returns:
    (frames, names): float32 (F, H, W, 3) in [0, 1] with F >= 2, and a name
    per frame (its file name, or `frame_<k>` for a GIF).

  Raises:
    image_io.InputError: missing path, empty folder, unreadable frame or GIF, a single
      frame, frames of different sizes, or a clip too large for the memory.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    files = list_frames(path)
    names = [os.path.basename(f) for f in files]
    return (
        _stacked(path, len(files), *image_io.header_size(files[0]), (image_io.load_image(f) for f in files), files),
        names,
    )
  image_io.check_file(path)
  with image_io.decoding(path), Image.open(path) as im:
    if im.format != "GIF":
      raise image_io.InputError(
          f"{path!r} is a {im.format or 'non-GIF'} file, not an animated GIF " "(give a folder of frames or a GIF)"
      )
    names = [f"frame_{k:04d}" for k in range(im.n_frames)]
    frames = (image_io.frame_pixels(frame) for frame in ImageSequence.Iterator(im))
    return _stacked(path, len(names), im.height, im.width, frames, names), names


def load_masks(path: str | os.PathLike[str], *, count: int, shape: tuple[int, int]) -> np.ndarray:
  """Per-frame masks (hints, ground truth) of a clip of `count` frames.

  Args:
    path: a folder with one mask per frame, in the frames' natural name order
      (`list_frames`), or one mask file used for every frame.
    count: the clip's number of frames F.
    shape: (H, W) of the frames; masks of another size are resized as by
      `image_io.load_mask`.

  Returns:
    float32 (F, H, W) in [0, 1].

  Raises:
    image_io.InputError: unreadable masks, or a folder whose number of masks is not F.
  """
  path = os.fspath(path)
  if not os.path.isdir(path):
    return np.repeat(image_io.load_mask(path, shape=shape)[None], count, axis=0)
  files = list_frames(path)
  if len(files) != count:
    raise image_io.InputError(f"{path!r} holds {len(files)} masks, but the clip has {count} frames")
  return np.stack([image_io.load_mask(f, shape=shape) for f in files])


def save_gif(path: str | os.PathLike[str], frames: npt.ArrayLike, *, duration_ms: int = 100) -> None:
  """Writes frames as a looping animated GIF, atomically.

  Colour frames are quantised to 256 colours each (GIF's limit). Pillow merges
  identical consecutive frames into one shown for their summed duration, so a
  still layer (e.g. a static background) gives a one-frame GIF.

  Args:
    path: the output file.
    frames: float (F, H, W), (F, H, W, 1) or (F, H, W, 3) in [0, 1].
    duration_ms: display time of each frame.

  Raises:
    ValueError: `frames` has another shape or no frame.
  """
  arr = np.asarray(frames, np.float32)
  if arr.ndim == 4 and arr.shape[-1] == 1:
    arr = arr[..., 0]
  if not (arr.ndim == 3 or (arr.ndim == 4 and arr.shape[-1] == 3)) or 0 in arr.shape:
    raise ValueError(
        f"frames must be (F, H, W), (F, H, W, 1) or (F, H, W, 3) with no empty " f"axis, got {np.shape(frames)}"
    )
  images = [Image.fromarray(image_io.to_uint8(frame)) for frame in arr]
  buf = io.BytesIO()
  images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
  writing.write_bytes(path, buf.getvalue())

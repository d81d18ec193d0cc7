"""The Python API's array inputs: arrays checked and written as the image files a task reads.

`Inputs` writes each array to a PNG named by its content (the SHA-256 of the
PNG), so the same array is the same input file in every call: a call with a
workdir keeps them in its `.inputs/` folder (`runner.INPUTS`) and resumes, or
says already done, like the same command line. Paths are passed on as they
are. It also names the arrays in the errors a run raises about those files.
`as_float_image` checks an array (its size against the memory limit too) and
brings it to float32 RGB in [0, 1] as `image_io.load_image` reads a file of
its kind.
"""

from collections.abc import Sequence
import contextlib
import hashlib
import os

import numpy as np

from ddip_jax import config_check
from ddip_jax import image_io
from ddip_jax import writing

InputError = image_io.InputError
ConfigError = config_check.ConfigError
ImageLike = np.ndarray | str | os.PathLike


def as_float_image(value: np.ndarray, what: str, *, channels: bool) -> np.ndarray:
  """An array as float32 in [0, 1]: (H, W, 3) when `channels`, else (H, W).

  An image may also be gray (H, W) or (H, W, 1), or carry an alpha channel
  ((H, W, 2), (H, W, 4)): it becomes RGB as `image_io.load_image` makes a file
  of that kind (gray repeated, alpha composited over white). A mask may be
  (H, W, 1). Values: uint8 (/ 255), uint16 (/ 65535, as 16-bit files), bool,
  or float in [0, 1].
  """
  array = np.asarray(value)
  if channels:
    array = array[..., None] if array.ndim == 2 else array
    ok_shape = array.ndim == 3 and array.shape[-1] in (1, 2, 3, 4)
    expected = '(height, width, 3), (height, width, 4) with alpha, or (height, width) gray'
  else:
    array = array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array
    ok_shape, expected = array.ndim == 2, '(height, width)'
  if not ok_shape:
    raise InputError(f'{what} is an array of shape {array.shape}: expected {expected}')
  if 0 in array.shape:
    raise InputError(f'{what} is an empty array of shape {array.shape}: expected {expected}')
  image_io.check_fits(what if what.startswith('frame') else f'the {what} array', *array.shape[:2])
  if array.dtype in (np.uint8, np.uint16):
    array = array.astype(np.float32) / np.iinfo(array.dtype).max
  elif array.dtype == bool:
    array = array.astype(np.float32)
  elif not np.issubdtype(array.dtype, np.floating):
    raise InputError(f'{what} has dtype {array.dtype}: expected uint8, uint16, bool or float in [0, 1]')
  elif not np.all(np.isfinite(array)) or array.min(initial=0.0) < 0.0 or array.max(initial=0.0) > 1.0:
    looks_8_bit = np.all(np.isfinite(array)) and array.min(initial=0.0) >= 0.0 and array.max(initial=0.0) <= 255.0
    raise InputError(
        f'{what}: float values must be finite and in [0, 1]'
        + ('; these look like 0-255 values: divide them by 255 or pass uint8' if looks_8_bit else '')
    )
  return image_io.as_rgb(array) if channels else array.astype(np.float32)


def as_float_frames(value: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
  """A clip, (F, H, W, 3) or a sequence of frames (F >= 2), as float32 (H, W, 3) frames (`as_float_image`).

  Raises:
    InputError: fewer than 2 frames, a bad frame, frames of different sizes, or a clip too large for the memory
      (before any is converted).
  """
  frames = value if isinstance(value, np.ndarray) and value.ndim == 4 else list(value)
  if len(frames) < 2:
    raise InputError(f'frames: a clip needs at least 2 frames, got {len(frames)}')
  if np.ndim(frames[0]) >= 2:  # Else as_float_image names the shape.
    image_io.check_fits('the clip', *np.shape(frames[0])[:2], frames=len(frames))
  floats = [as_float_image(frame, f'frame {index}', channels=True) for index, frame in enumerate(frames)]
  for index, frame in enumerate(floats):
    if frame.shape != floats[0].shape:
      raise InputError(
          f'frames differ in size: frame {index} is {frame.shape[1]}x{frame.shape[0]}, frame 0 is '
          f'{floats[0].shape[1]}x{floats[0].shape[0]}; all frames of a clip must have one size'
      )
  return floats


class Inputs:
  """Turns the caller's arrays into files of `folder` named by their content (paths are passed on as they are).

  `naming_arrays` rewrites the errors of a run that name those files: the
  caller knows the array as, say, 'image', not as a file.
  """

  def __init__(self, folder: str):
    self._folder = folder
    self._names: dict[str, tuple[str, str]] = {}  # File -> (what the task calls it, what the caller does).

  def _write(self, what: str, pngs: list[bytes], *, folder: bool = False) -> str:
    """Writes PNGs as `<what>_<digest>.png` (or that folder of frames) unless there already; returns its path."""
    digest = hashlib.sha256(b''.join(hashlib.sha256(png).digest() for png in pngs)).hexdigest()[:32]
    path = os.path.join(self._folder, f'{what}_{digest}' + ('' if folder else '.png'))
    files = {os.path.join(path, f'{k:05d}.png'): png for k, png in enumerate(pngs)} if folder else {path: pngs[0]}
    if not all(os.path.isfile(f) for f in files):  # Written as a set: all there, or none.
      writing.write_files(files)
    self._names[path] = (what, f'the {what} array' if not folder else 'the frames')
    return path

  @staticmethod
  def existing_path(value: str | os.PathLike | None, what: str) -> str:
    """`value` as a path that exists.

    Raises:
      InputError: None, or no such file.
    """
    if value is None:
      raise InputError(
          f'{what} is None: expected an array or an image file (cv2.imread, for one, returns None '
          'for a file it cannot read)'
      )
    path = os.fspath(value)
    if not os.path.exists(path):
      raise InputError(f'{what} {path!r}: no such file or folder')
    return path

  def path(self, value: ImageLike, what: str, *, channels: bool = True) -> str:
    if value is None or isinstance(value, (str, os.PathLike)):
      return self.existing_path(value, what)
    return self._write(what, [writing.encode_png(as_float_image(value, what, channels=channels))])

  def frames(self, value: ImageLike | Sequence[np.ndarray]) -> str:
    if isinstance(value, (str, os.PathLike)) or value is None:
      return self.path(value, 'frames')
    pngs = [writing.encode_png(frame) for frame in as_float_frames(value)]
    path = self._write('frames', pngs, folder=True)
    self._names.update({os.path.join(path, f'{k:05d}.png'): (f'frame {k}', f'frame {k}') for k in range(len(pngs))})
    return path

  @contextlib.contextmanager
  def naming_arrays(self):
    """Re-raises an `InputError` or `ConfigError` whose message names one of these files with the array's name."""
    try:
      yield
    except (InputError, ConfigError) as err:
      message = str(err)
      for path, (what, name) in sorted(self._names.items(), key=lambda item: -len(item[0])):  # Frames first.
        message = message.replace(f'{what} {path!r}', name).replace(repr(path), name).replace(path, name)
      if message == str(err):
        raise
      raise type(err)(message) from err

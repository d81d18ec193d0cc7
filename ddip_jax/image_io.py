"""Reading images (numpy + Pillow, no JAX): inputs and masks in, resized, at the working resolution.

Input images and masks come in as float32 arrays in [0, 1] (`load_image`,
`load_mask`), are resized (`resize_image`) and brought to the working
resolution (`working_image`); the SHA-256 of the input files identify a run
(`file_digests`). Clips are read by `clip_io`, results written by `writing`,
the summary picture laid out by `summary_picture`.

Any problem with a user-supplied file (missing, a directory, a FIFO, a broken
link, empty, truncated, not an image, absurdly large) raises `InputError` with a
one-line message naming the path, so the CLI can print it and exit non-zero
instead of a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from absl import logging
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from ddip_jax import errors
from ddip_jax import memory

# Pillow decodes 16-bit RGB(A) PNGs through these raw modes, which keep only the
# high byte of each sample; decoding again with the little-endian raw mode of the
# same bit width yields the low bytes (see `_png16_low_bytes`).
_PNG16_LOW_RAWMODE = {"RGB;16B": "RGB;16L", "RGBA;16B": "RGBA;16L"}
# ITU-R 601-2 luma, the weights Pillow uses for RGB -> L.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
InputError = errors.InputError


def _one_line(exc: BaseException) -> str:
  text = " ".join(str(exc).split())
  return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# What a path that is not a regular file is, for messages.
_FILE_KINDS = (
    (stat.S_ISDIR, "is a directory"),
    (stat.S_ISFIFO, "is a FIFO (named pipe)"),
    (stat.S_ISSOCK, "is a socket"),
    (stat.S_ISCHR, "is a character device"),
    (stat.S_ISBLK, "is a block device"),
)


def file_kind(mode: int) -> str | None:
  """What a file of `st_mode` `mode` is when it is not a regular file ('is a FIFO (named pipe)'), else None."""
  return next((kind for is_kind, kind in _FILE_KINDS if is_kind(mode)), None)


def check_file(path: str) -> None:
  """Refuses, saying what it is, a path that is not a non-empty regular file."""
  try:
    info = os.stat(path)
  except OSError as e:
    if e.errno == errno.ELOOP:
      raise InputError(f"cannot read {path!r}: symbolic link loop") from e
    if isinstance(e, FileNotFoundError) and os.path.islink(path):
      raise InputError(
          f"cannot read {path!r}: broken symbolic link " f"(to {os.readlink(path)!r}, which does not exist)"
      ) from e
    if isinstance(e, FileNotFoundError):
      raise InputError(f"cannot read {path!r}: no such file") from e
    raise InputError(f"cannot read {path!r}: {e.strerror or e}") from e
  if file_kind(info.st_mode):
    raise InputError(f"cannot read {path!r}: {file_kind(info.st_mode)}, not an image file")
  if info.st_size == 0:
    raise InputError(f"cannot read {path!r}: file is empty (0 bytes)")


def _png16_low_bytes(path: str, im: Image.Image, tiles: list[Any]) -> Image.Image | None:
  """Low bytes of a 16-bit RGB(A) PNG that Pillow reduced to 8 bits, else None.

  Args:
    path: the file `im` was opened from.
    im: the opened image.
    tiles: `im.tile` as it was before `im.load()` cleared it.
  """
  if im.format != "PNG" or len(tiles) != 1:
    return None
  codec, extents, offset, rawmode = tuple(tiles[0])[:4]
  low_rawmode = _PNG16_LOW_RAWMODE.get(rawmode) if codec == "zip" else None
  if low_rawmode is None:
    return None
  low = Image.open(path)
  tile = tiles[0]
  try:
    low.tile = [tile._replace(args=low_rawmode) if hasattr(tile, "_replace") else (codec, extents, offset, low_rawmode)]
    low.load()
  except BaseException:
    low.close()
    raise
  return low


def _pixels(im: Image.Image, low: Image.Image | None) -> np.ndarray:
  """Converts a decoded image to float32 (H, W, C) in [0, 1].

  C is 1 (gray), 2 (gray, alpha), 3 (RGB) or 4 (RGBA); alpha is present only when
  the file carries transparency (an alpha band, a tRNS chunk, a transparent
  palette entry).
  """
  mode = im.mode
  if mode.startswith("I;16"):
    return (np.asarray(im, np.float32) / 65535.0)[..., None]
  if mode == "I":  # 32-bit integer gray; in practice 16-bit data.
    return np.clip(np.asarray(im, np.float32) / 65535.0, 0.0, 1.0)[..., None]
  if mode == "F":  # Float gray is taken to be in [0, 1] already.
    arr = np.nan_to_num(np.asarray(im, np.float32), nan=0.0)
    return np.clip(arr, 0.0, 1.0)[..., None]
  if low is not None and (mode == "RGBA" or (mode == "RGB" and not im.has_transparency_data)):
    high = np.asarray(im, np.float32)
    return (high * 256.0 + np.asarray(low, np.float32)) / 65535.0
  gray = mode in ("1", "L", "LA", "La")
  if im.has_transparency_data:
    im = im.convert("LA" if gray else "RGBA")
  elif mode != ("L" if gray else "RGB"):
    im = im.convert("L" if gray else "RGB")
  arr = np.asarray(im, np.float32) / 255.0
  return arr[..., None] if arr.ndim == 2 else arr


@contextlib.contextmanager
def decoding(path: str) -> Iterator[None]:
  """Turns whatever decoding `path` raises into a one-line `InputError`.

  Past Image.MAX_IMAGE_PIXELS (~89 Mpx) Pillow only warns; inside this block
  that is an error too.
  """
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("error", Image.DecompressionBombWarning)
      yield
  except InputError:
    raise
  except PermissionError as e:
    raise InputError(f"cannot read {path!r}: permission denied") from e
  except Image.UnidentifiedImageError as e:
    raise InputError(f"cannot read {path!r}: not a recognised image file") from e
  except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
    raise InputError(f"cannot read {path!r}: image too large ({e})") from e
  except MemoryError as e:  # Not corrupt: too large for the memory left.
    raise InputError(f"cannot read {path!r}: not enough memory to decode it") from e
  except Exception as e:  # Decoders raise anything on corrupt data.
    raise InputError(f"cannot read {path!r}: corrupt or unsupported image ({_one_line(e)})") from e


def check_fits(what: str, height: int, width: int, frames: int = 1) -> None:
  """Refuses an input whose run would not fit in memory (`memory.refusal`), before it is decoded."""
  problem = memory.refusal(what, height, width, frames)
  if problem:
    raise InputError(problem)


def header_size(path: str) -> tuple[int, int]:
  """(height, width) of an image file, from its header (nothing decoded); raises `InputError`."""
  check_file(path)
  with decoding(path), Image.open(path) as im:
    return im.height, im.width


def _decode(path: str | os.PathLike[str]) -> np.ndarray:
  """Fully decodes an image file, EXIF orientation applied, if its run fits in memory (`check_fits`).

  Args:
    path: the image file.

  Returns:
    float32 (H, W, C) in [0, 1]; C as in `_pixels`.

  Raises:
    InputError: for any file that cannot be decoded.
  """
  path = os.fspath(path)
  check_file(path)
  with decoding(path), Image.open(path) as im:
    check_fits(repr(path), im.height, im.width)  # From the header, before any pixel is decoded.
    tiles = list(im.tile)
    im.load()  # Decode now so truncated data fails here, not later.
    low = _png16_low_bytes(path, im, tiles)
    try:
      pixels = _pixels(ImageOps.exif_transpose(im), None if low is None else ImageOps.exif_transpose(low))
    finally:
      if low is not None:
        low.close()
  if pixels.shape[0] == 0 or pixels.shape[1] == 0:
    raise InputError(f"cannot read {path!r}: image has no pixels")
  return pixels


def frame_pixels(frame: Image.Image) -> np.ndarray:
  """An animation frame's pixels as `load_image` gives an image's (any alpha composited over white)."""
  return as_rgb(_pixels(frame.copy(), None))


def as_rgb(pixels: np.ndarray) -> np.ndarray:
  """(H, W, C) floats in [0, 1] (C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA) as `load_image` gives such a file.

  That is float32 RGB, gray repeated, any alpha composited over white.
  """
  channels = pixels.shape[-1]
  if channels in (2, 4):
    alpha = pixels[..., -1:]
    pixels = pixels[..., :-1] * alpha + (1.0 - alpha)
  if channels <= 2:
    pixels = np.repeat(pixels, 3, axis=-1)
  return np.ascontiguousarray(pixels, np.float32)


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
  """Loads an image file as RGB floats.

  The EXIF orientation is applied, so the array is upright as a viewer shows it.
  Grayscale (1, L, I, I;16, F), palette, CMYK, YCbCr etc. become RGB. Anything
  with transparency (RGBA, LA, PA, palette or tRNS transparency) is composited
  over white, so transparent regions read as white paper rather than black.
  16-bit data keeps its precision (scaled by 1/65535, not 1/255), for grayscale
  and for RGB(A) PNGs; mode 'I' is scaled by 1/65535 and clipped, mode 'F' is
  taken as already in [0, 1] and clipped. Only the first frame of an animation
  or multi-page file is read.

  Args:
    path: the image file (any format Pillow reads).

  Returns:
    float32 (H, W, 3) in [0, 1].

  Raises:
    InputError: the path is missing, a directory, empty, truncated, corrupt, not
      an image, larger than `PIL.Image.MAX_IMAGE_PIXELS`, or its run would not
      fit in memory (`check_fits`).
  """
  return as_rgb(_decode(path))


def load_mask(path: str | os.PathLike[str], *, shape: tuple[int, int] | None, keep_thin: bool = False) -> np.ndarray:
  """Loads a hint or ground-truth mask as floats, resized to `shape`.

  If the file has an alpha channel that is not fully opaque, the alpha is the
  mask (a cut-out saved with transparency); otherwise the image's luma (ITU-R
  601-2, as Pillow's 'L') is. 8-bit values are scaled by 1/255, 16-bit ones by
  1/65535. A mask of another size is resized with nearest neighbour, so binary
  masks stay binary.

  Args:
    path: the mask file (any format Pillow reads).
    shape: (H, W) of the output, normally the image's; None: the file's own.
    keep_thin: binarise at 0.5 and, where the mask is shrunk, mark every
      output pixel whose block holds a marked pixel (a user's thin stroke on a
      large photo survives; nearest neighbour keeps one pixel in k).

  Returns:
    float32 (H, W) in [0, 1].

  Raises:
    InputError: as for `load_image`.
    ValueError: `shape` is not two positive ints.
  """
  shape = None if shape is None else _check_shape(shape)
  pixels = _decode(path)
  channels = pixels.shape[-1]
  if channels in (2, 4) and pixels[..., -1].min() < 1.0:
    mask = pixels[..., -1]
  elif channels >= 3:
    mask = pixels[..., :3] @ _LUMA
  else:
    mask = pixels[..., 0]
  return resize_mask(mask, mask.shape if shape is None else shape, keep_thin=keep_thin)


def resize_mask(mask: np.ndarray, shape: tuple[int, int], *, keep_thin: bool = False) -> np.ndarray:
  """A mask (H, W) in [0, 1] as float32 at `shape`, as `load_mask` resizes a file's.

  Nearest neighbour, so binary masks stay binary; with `keep_thin`, binarised at
  0.5 first and, where shrunk, every output pixel whose block holds a marked
  pixel is marked.
  """
  mask = np.asarray(mask, np.float32)
  if keep_thin:
    mask = (mask > 0.5).astype(np.float32)
  if mask.shape != tuple(shape):
    shrink = keep_thin and (mask.shape[0] > shape[0] or mask.shape[1] > shape[1])
    resized = Image.fromarray(np.ascontiguousarray(mask, np.float32)).resize(
        (shape[1], shape[0]), Image.Resampling.BOX if shrink else Image.Resampling.NEAREST
    )
    mask = np.asarray(resized)
    if shrink:  # BOX is the block's mean: any marked pixel makes it positive.
      mask = (mask > 1e-6).astype(np.float32)
  return np.clip(mask, 0.0, 1.0).astype(np.float32)


def _check_shape(shape: Sequence[int]) -> tuple[int, int]:
  if len(shape) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
    raise ValueError(f"shape must be (H, W) with positive ints, got {shape!r}")
  return int(shape[0]), int(shape[1])


def check_image(img: npt.ArrayLike, *, what: str) -> np.ndarray:
  arr = np.asarray(img)
  if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (1, 3))):
    raise ValueError(f"{what} must be (H, W), (H, W, 1) or (H, W, 3), " f"got shape {arr.shape}")
  if arr.shape[0] == 0 or arr.shape[1] == 0:
    raise ValueError(f"{what} is empty: shape {arr.shape}")
  return arr


def resize_image(img: npt.ArrayLike, shape: tuple[int, int]) -> np.ndarray:
  """Resizes an image in float precision.

  Each channel is resized as a Pillow 'F' (float32) image, so there is no 8-bit
  quantisation. LANCZOS is used when either side shrinks (anti-aliased), BICUBIC
  when both grow. The result is clipped to the input's [min, max], which removes
  the filters' ringing overshoot (and keeps [0, 1] data in [0, 1]).

  Args:
    img: (H, W) or (H, W, C) float.
    shape: (H', W') of the output.

  Returns:
    float32 (H', W') or (H', W', C), as `img`.

  Raises:
    ValueError: `img` is not 2-D or 3-D or is empty, or `shape` is not two
      positive ints.
  """
  arr = np.asarray(img, np.float32)
  out_h, out_w = _check_shape(shape)
  if arr.ndim not in (2, 3) or arr.size == 0:
    raise ValueError(f"img must be non-empty (H, W) or (H, W, C), got {arr.shape}")
  if arr.shape[:2] == (out_h, out_w):
    return arr.copy()
  shrinks = out_h < arr.shape[0] or out_w < arr.shape[1]
  method = Image.Resampling.LANCZOS if shrinks else Image.Resampling.BICUBIC
  planes = arr[..., None] if arr.ndim == 2 else arr
  out = np.stack(
      [
          np.asarray(Image.fromarray(np.ascontiguousarray(planes[..., c])).resize((out_w, out_h), method))
          for c in range(planes.shape[-1])
      ],
      axis=-1,
  )
  out = np.clip(out, arr.min(), arr.max())
  return out[..., 0] if arr.ndim == 2 else out


def to_uint8(img: npt.ArrayLike) -> np.ndarray:
  """Converts [0, 1] floats to 8 bits, rounding to nearest and clipping.

  Args:
    img: float, any shape; typically (H, W), (H, W, 1) or (H, W, 3). NaN -> 0.

  Returns:
    uint8 of the same shape, in [0, 255].
  """
  arr = np.nan_to_num(np.asarray(img, np.float32), nan=0.0)
  return np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8)


def working_image(
    image: np.ndarray, max_side: int, *, min_side: int = 1, path: str = "the image"
) -> tuple[np.ndarray, float]:
  """Downscales an image so that its longer side is at most `max_side`.

  Args:
    image: (H, W, C) float in [0, 1].
    max_side: the working resolution's longest side (<= 0: no limit).
    min_side: the shortest side the working image may have.
    path: names the image in messages.

  Returns:
    (working image, scale) with scale = working side / original side (<= 1).

  Raises:
    InputError: the working image has a side shorter than `min_side`.
  """
  height, width = image.shape[:2]
  longest = max(height, width)
  working, scale = image, 1.0
  if 0 < max_side < longest:
    scale = max_side / longest
    shape = (max(1, round(height * scale)), max(1, round(width * scale)))
    working = resize_image(image, shape)
    logging.info(
        "%s is %dx%d: working at %dx%d (max_side=%d), results come back at full size",
        path,
        width,
        height,
        shape[1],
        shape[0],
        max_side,
    )
  if min(working.shape[:2]) < min_side:
    scaled = f", {working.shape[1]}x{working.shape[0]} at max_side={max_side}" if scale < 1 else ""
    raise InputError(
        f"{path} is {width}x{height}{scaled}: too small, the generators need " f"sides of at least {min_side} pixels"
    )
  return working, scale

"""Reading, writing and laying out images (numpy + Pillow, no JAX).

Everything that touches files for the Double-DIP tasks goes through here: input
images and masks come in as float32 arrays in [0, 1]; results, metrics and the
side-by-side `summary.png` go out atomically, so a crashed or concurrent run never
leaves a half-written file where a finished one is expected.

Any problem with a user-supplied file (missing, a directory, a FIFO, a broken
link, empty, truncated, not an image, absurdly large) raises `InputError` with a
one-line message naming the path, and any failure to write (disk full, no
permission) `OutputError`, so the CLI can print it and exit non-zero instead of
a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import secrets
import stat
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from absl import logging
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont, ImageOps, ImageSequence


__all__ = [
    "InputError",
    "OutputError",
    "encode_png",
    "file_digests",
    "json_bytes",
    "load_frames",
    "load_image",
    "load_mask",
    "load_masks",
    "make_summary",
    "resize_image",
    "save_gif",
    "save_image",
    "to_uint8",
    "write_bytes",
    "write_files",
    "write_json",
]

# Pillow decodes 16-bit RGB(A) PNGs through these raw modes, which keep only the
# high byte of each sample; decoding again with the little-endian raw mode of the
# same bit width yields the low bytes (see `_png16_low_bytes`).
_PNG16_LOW_RAWMODE = {"RGB;16B": "RGB;16L", "RGBA;16B": "RGBA;16L"}
# ITU-R 601-2 luma, the weights Pillow uses for RGB -> L.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_TITLE_HEIGHT = 18  # Pixels of the title strip above each summary panel.
_GAP = 4  # Pixels of white between summary panels.


class InputError(ValueError):
  """A user-supplied file cannot be used; the message is one printable line."""


def _one_line(exc: BaseException) -> str:
  text = " ".join(str(exc).split())
  return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# What a path that is not a regular file is, for messages.
_FILE_KINDS = ((stat.S_ISDIR, "is a directory"), (stat.S_ISFIFO, "is a FIFO (named pipe)"),
               (stat.S_ISSOCK, "is a socket"), (stat.S_ISCHR, "is a character device"),
               (stat.S_ISBLK, "is a block device"))


def _check_file(path: str) -> None:
  """Refuses, saying what it is, a path that is not a non-empty regular file."""
  try:
    info = os.stat(path)
  except OSError as e:
    if e.errno == errno.ELOOP:
      raise InputError(f"cannot read {path!r}: symbolic link loop") from e
    if isinstance(e, FileNotFoundError) and os.path.islink(path):
      raise InputError(f"cannot read {path!r}: broken symbolic link "
                       f"(to {os.readlink(path)!r}, which does not exist)") from e
    if isinstance(e, FileNotFoundError):
      raise InputError(f"cannot read {path!r}: no such file") from e
    raise InputError(f"cannot read {path!r}: {e.strerror or e}") from e
  for is_kind, kind in _FILE_KINDS:
    if is_kind(info.st_mode):
      raise InputError(f"cannot read {path!r}: {kind}, not an image file")
  if info.st_size == 0:
    raise InputError(f"cannot read {path!r}: file is empty (0 bytes)")


def _png16_low_bytes(path: str, im: Image.Image,
                     tiles: list[Any]) -> Image.Image | None:
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
    low.tile = [tile._replace(args=low_rawmode) if hasattr(tile, "_replace")
                else (codec, extents, offset, low_rawmode)]
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
  if low is not None and (mode == "RGBA" or
                          (mode == "RGB" and not im.has_transparency_data)):
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
def _decoding(path: str) -> Iterator[None]:
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
  except Exception as e:  # Decoders raise anything on corrupt data.
    raise InputError(
        f"cannot read {path!r}: corrupt or unsupported image ({_one_line(e)})"
    ) from e


def _decode(path: str | os.PathLike[str]) -> np.ndarray:
  """Fully decodes an image file, EXIF orientation applied.

  Args:
    path: the image file.

  Returns:
    float32 (H, W, C) in [0, 1]; C as in `_pixels`.

  Raises:
    InputError: for any file that cannot be decoded.
  """
  path = os.fspath(path)
  _check_file(path)
  with _decoding(path), Image.open(path) as im:
    tiles = list(im.tile)
    im.load()  # Decode now so truncated data fails here, not later.
    low = _png16_low_bytes(path, im, tiles)
    try:
      pixels = _pixels(
          ImageOps.exif_transpose(im),
          None if low is None else ImageOps.exif_transpose(low))
    finally:
      if low is not None:
        low.close()
  if pixels.shape[0] == 0 or pixels.shape[1] == 0:
    raise InputError(f"cannot read {path!r}: image has no pixels")
  return pixels


def _over_white(pixels: np.ndarray) -> np.ndarray:
  """(H, W, C) pixels from `_pixels` as RGB, any alpha composited over white."""
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
      an image, or larger than `PIL.Image.MAX_IMAGE_PIXELS`.
  """
  return _over_white(_decode(path))


def load_mask(
    path: str | os.PathLike[str], *, shape: tuple[int, int], keep_thin: bool = False
) -> np.ndarray:
  """Loads a hint or ground-truth mask as floats, resized to `shape`.

  If the file has an alpha channel that is not fully opaque, the alpha is the
  mask (a cut-out saved with transparency); otherwise the image's luma (ITU-R
  601-2, as Pillow's 'L') is. 8-bit values are scaled by 1/255, 16-bit ones by
  1/65535. A mask of another size is resized with nearest neighbour, so binary
  masks stay binary.

  Args:
    path: the mask file (any format Pillow reads).
    shape: (H, W) of the output, normally the image's.
    keep_thin: binarise at 0.5 and, where the mask is shrunk, mark every
      output pixel whose block holds a marked pixel (a user's thin stroke on a
      large photo survives; nearest neighbour keeps one pixel in k).

  Returns:
    float32 (H, W) in [0, 1].

  Raises:
    InputError: as for `load_image`.
    ValueError: `shape` is not two positive ints.
  """
  shape = _check_shape(shape)
  pixels = _decode(path)
  channels = pixels.shape[-1]
  if channels in (2, 4) and pixels[..., -1].min() < 1.0:
    mask = pixels[..., -1]
  elif channels >= 3:
    mask = pixels[..., :3] @ _LUMA
  else:
    mask = pixels[..., 0]
  if keep_thin:
    mask = (mask > 0.5).astype(np.float32)
  if mask.shape != shape:
    shrink = keep_thin and (mask.shape[0] > shape[0] or mask.shape[1] > shape[1])
    resized = Image.fromarray(np.ascontiguousarray(mask, np.float32)).resize(
        (shape[1], shape[0]), Image.Resampling.BOX if shrink else Image.Resampling.NEAREST)
    mask = np.asarray(resized)
    if shrink:  # BOX is the block's mean: any marked pixel makes it positive.
      mask = (mask > 1e-6).astype(np.float32)
  return np.clip(mask, 0.0, 1.0).astype(np.float32)


def _check_shape(shape: Sequence[int]) -> tuple[int, int]:
  if (len(shape) != 2
      or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape)):
    raise ValueError(f"shape must be (H, W) with positive ints, got {shape!r}")
  return int(shape[0]), int(shape[1])


def _check_image(img: npt.ArrayLike, *, what: str) -> np.ndarray:
  arr = np.asarray(img)
  if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (1, 3))):
    raise ValueError(f"{what} must be (H, W), (H, W, 1) or (H, W, 3), "
                     f"got shape {arr.shape}")
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
      [np.asarray(Image.fromarray(np.ascontiguousarray(planes[..., c]))
                  .resize((out_w, out_h), method))
       for c in range(planes.shape[-1])], axis=-1)
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


class OutputError(OSError):
  """A result cannot be written (disk full, no permission, ...); the message is one printable line."""


def write_files(files: dict[str, bytes]) -> None:
  """Writes several files atomically, as a set: all to temporary files, then all renamed over.

  Parent directories are created. A reader sees each file old or new, never a
  part; if anything fails before the renames, no file is replaced (earlier
  results stay whole) and no temporary file is left.

  Args:
    files: path -> the bytes to write there.

  Raises:
    OutputError: naming the file that could not be written and why.
  """
  staged = []  # (temporary file, final path), in order.
  try:
    for path, data in files.items():
      target = os.path.abspath(os.fspath(path))
      parent, name = os.path.split(target)
      try:
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        # os.open with 0o666 lets the umask decide the final permissions, unlike
        # tempfile's 0o600.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        staged.append((tmp, target))
        with os.fdopen(fd, "wb") as f:
          f.write(data)
          f.flush()
          os.fsync(f.fileno())
      except OSError as e:
        raise OutputError(f"cannot write {os.fspath(path)!r}: {e.strerror or e}") from e
    for tmp, target in staged:
      try:
        os.replace(tmp, target)
      except OSError as e:
        raise OutputError(f"cannot write {target!r}: {e.strerror or e}") from e
  except BaseException:
    for tmp, _ in staged:
      try:
        os.unlink(tmp)
      except FileNotFoundError:
        pass
    raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
  """Writes one file atomically (`write_files`); raises `OutputError`."""
  write_files({path: data})


def _expand_folders(paths: Sequence[str]) -> Iterator[str]:
  """`paths`, each readable folder replaced by its frame files."""
  for path in paths:
    try:
      yield from _frame_files(path) if os.path.isdir(path) else [path]
    except OSError:
      continue


def encode_png(img: npt.ArrayLike) -> bytes:
  """An image as PNG bytes, values rounded to 8 bits by `to_uint8`.

  Args:
    img: float (H, W), (H, W, 1) or (H, W, 3) in [0, 1]; outside is clipped.

  Raises:
    ValueError: `img` has another shape.
  """
  arr = _check_image(img, what="img")
  pixels = to_uint8(arr[..., 0] if arr.ndim == 3 and arr.shape[-1] == 1 else arr)
  buf = io.BytesIO()
  Image.fromarray(pixels).save(buf, format="PNG")
  return buf.getvalue()


def save_image(path: str | os.PathLike[str], img: npt.ArrayLike) -> None:
  """Writes an image as PNG (whatever the suffix) atomically (`encode_png`, `write_bytes`)."""
  write_bytes(path, encode_png(img))


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


def _jsonable(obj: Any) -> Any:
  """Replaces numpy (and JAX) scalars and arrays by Python ones, recursively."""
  if isinstance(obj, dict):
    return {(k.item() if isinstance(k, np.generic) else k): _jsonable(v)
            for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_jsonable(v) for v in obj]
  if isinstance(obj, np.generic):
    return obj.item()
  if isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):
    return np.asarray(obj).tolist()
  if isinstance(obj, os.PathLike):
    return os.fspath(obj)
  return obj


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
  """Writes `obj` as indented JSON atomically; parent directories are created.

  numpy / JAX scalars and arrays become numbers and (nested) lists, paths become
  strings. Non-finite floats are written as NaN / Infinity (Python's default).

  Args:
    path: the output file.
    obj: dicts, lists, tuples, strings, numbers, None, numpy values.

  Raises:
    TypeError: something in `obj` has no JSON form.
  """
  write_bytes(path, json_bytes(obj))


def json_bytes(obj: Any) -> bytes:
  """`obj` as indented JSON text (see `write_json`), UTF-8."""
  return (json.dumps(_jsonable(obj), indent=2) + "\n").encode("utf-8")


def _fit_title(draw: ImageDraw.ImageDraw, title: str, font: Any,
               width: int) -> str:
  """Shortens `title` with an ellipsis until it fits in `width` pixels."""
  if draw.textlength(title, font=font) <= width:
    return title
  while title and draw.textlength(title + "...", font=font) > width:
    title = title[:-1]
  return title + "..." if title else ""


def make_summary(
    panels: Sequence[tuple[str, npt.ArrayLike]], *, height: int = 256
) -> np.ndarray:
  """Lays out titled images side by side, for `summary.png`.

  Each image is resized to `height` keeping its aspect ratio (`resize_image`) and
  clipped to [0, 1]; gray images are shown as gray RGB. Panels are separated by a
  white gap; each has a white title strip above it, in Pillow's default font,
  shortened with '...' if wider than the panel.

  Args:
    panels: (title, image) pairs, image float (H, W), (H, W, 1) or (H, W, 3).
    height: pixel height of every image row.

  Returns:
    float32 (height + title strip, sum of widths + gaps, 3) in [0, 1].

  Raises:
    ValueError: no panels, a bad image shape, or height < 1.
  """
  if not panels:
    raise ValueError("make_summary needs at least one panel")
  if height < 1:
    raise ValueError(f"height must be positive, got {height}")
  images = []
  for title, img in panels:
    arr = _check_image(img, what=f"panel {title!r}")
    arr = np.clip(np.nan_to_num(arr.astype(np.float32), nan=0.0), 0.0, 1.0)
    arr = arr if arr.ndim == 3 else arr[..., None]
    width = max(1, round(arr.shape[1] * height / arr.shape[0]))
    arr = resize_image(arr, (height, width))
    images.append(np.repeat(arr, 3, axis=-1) if arr.shape[-1] == 1 else arr)
  total_w = sum(a.shape[1] for a in images) + _GAP * (len(images) - 1)
  canvas = np.ones((_TITLE_HEIGHT + height, total_w, 3), np.float32)
  strip = Image.new("RGB", (total_w, _TITLE_HEIGHT), "white")
  draw = ImageDraw.Draw(strip)
  font = ImageFont.load_default()
  x = 0
  for (title, _), arr in zip(panels, images):
    w = arr.shape[1]
    canvas[_TITLE_HEIGHT:, x:x + w] = arr
    text = _fit_title(draw, str(title), font, w - 2)
    # Centred by hand: bitmap fonts (Pillow without FreeType) take no anchor.
    _, top, _, bottom = draw.textbbox((0, 0), text or " ", font=font)
    draw.text((x + 1, (_TITLE_HEIGHT - (bottom - top)) // 2 - top), text,
              fill="black", font=font)
    x += w + _GAP
  canvas[:_TITLE_HEIGHT] = np.asarray(strip, np.float32) / 255.0
  return canvas


# Video clips: a folder of frames or an animated GIF.

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")  # Frame files of a folder (any case).


def _natural_key(name: str) -> list[Any]:
  """Sort key comparing runs of digits as numbers: frame2 < frame10."""
  return [int(part) if part.isdigit() else part.lower()
          for part in re.split(r"(\d+)", name)]


def list_frames(folder: str | os.PathLike[str]) -> list[str]:
  """The PNG/JPEG files of `folder` in natural name order (frame2 before frame10).

  Raises:
    InputError: `folder` is missing, not a folder or holds no frame file.
  """
  folder = os.fspath(folder)
  if not os.path.isdir(folder):
    raise InputError(f"cannot read {folder!r}: no such folder")
  try:
    frames = _frame_files(folder)
  except OSError as e:
    raise InputError(f"cannot read {folder!r}: {e.strerror or e}") from e
  if not frames:
    raise InputError(f"{folder!r} holds no PNG or JPEG frames")
  return frames


def _frame_files(folder: str) -> list[str]:
  """The PNG/JPEG files of `folder`, in natural name order (raises OSError)."""
  names = [n for n in os.listdir(folder) if n.lower().endswith(FRAME_SUFFIXES)
           and os.path.isfile(os.path.join(folder, n))]
  return [os.path.join(folder, n) for n in sorted(names, key=_natural_key)]


def _gif_frames(path: str) -> list[np.ndarray]:
  """Every frame of an animated GIF as RGB floats (transparency over white)."""
  _check_file(path)
  with _decoding(path), Image.open(path) as im:
    if im.format != "GIF":
      raise InputError(f"{path!r} is a {im.format or 'non-GIF'} file, not an animated GIF "
                       "(give a folder of frames or a GIF)")
    # Pillow composes each frame over the previous ones (GIF disposal rules).
    return [_over_white(_pixels(frame.copy(), None))
            for frame in ImageSequence.Iterator(im)]


def load_frames(path: str | os.PathLike[str]) -> tuple[np.ndarray, list[str]]:
  """Loads a clip: a folder of PNG/JPEG frames or an animated GIF.

  Frames of a folder are read in natural name order (`list_frames`) with
  `load_image`'s conversions; a GIF's frames as Pillow composes them.

  Args:
    path: a folder of frames or an animated GIF file.

  Returns:
    (frames, names): float32 (F, H, W, 3) in [0, 1] with F >= 2, and a name
    per frame (its file name, or `frame_<k>` for a GIF).

  Raises:
    InputError: missing path, empty folder, unreadable frame or GIF, a single
      frame, or frames of different sizes.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    files = list_frames(path)
    frames = [load_image(f) for f in files]
    names = [os.path.basename(f) for f in files]
  else:
    frames = _gif_frames(path)
    files = names = [f"frame_{k:04d}" for k in range(len(frames))]
  if len(frames) < 2:
    raise InputError(f"{path!r} has {len(frames)} frame; a video needs at least 2 "
                     "(segment a single image with task 'segmentation')")
  first = frames[0].shape
  for file, frame in zip(files, frames):
    if frame.shape != first:
      raise InputError(
          f"frames differ in size: {file!r} is {frame.shape[1]}x{frame.shape[0]}, "
          f"{files[0]!r} is {first[1]}x{first[0]}; all frames of {path!r} must have one size")
  return np.stack(frames), names


def load_masks(path: str | os.PathLike[str], *, count: int,
               shape: tuple[int, int]) -> np.ndarray:
  """Per-frame masks (hints, ground truth) of a clip of `count` frames.

  Args:
    path: a folder with one mask per frame, in the frames' natural name order
      (`list_frames`), or one mask file used for every frame.
    count: the clip's number of frames F.
    shape: (H, W) of the frames; masks of another size are resized as by
      `load_mask`.

  Returns:
    float32 (F, H, W) in [0, 1].

  Raises:
    InputError: unreadable masks, or a folder whose number of masks is not F.
  """
  path = os.fspath(path)
  if not os.path.isdir(path):
    return np.repeat(load_mask(path, shape=shape)[None], count, axis=0)
  files = list_frames(path)
  if len(files) != count:
    raise InputError(f"{path!r} holds {len(files)} masks, but the clip has {count} frames")
  return np.stack([load_mask(f, shape=shape) for f in files])


def save_gif(path: str | os.PathLike[str], frames: npt.ArrayLike, *,
             duration_ms: int = 100) -> None:
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
    raise ValueError(f"frames must be (F, H, W), (F, H, W, 1) or (F, H, W, 3) with no empty "
                     f"axis, got {np.shape(frames)}")
  images = [Image.fromarray(to_uint8(frame)) for frame in arr]
  buf = io.BytesIO()
  images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                 duration=duration_ms, loop=0)
  write_bytes(path, buf.getvalue())


def working_image(image: np.ndarray, max_side: int, *, min_side: int = 1,
                  path: str = 'the image') -> tuple[np.ndarray, float]:
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
    logging.info('%s is %dx%d: working at %dx%d (max_side=%d), results come back at full size',
                 path, width, height, shape[1], shape[0], max_side)
  if min(working.shape[:2]) < min_side:
    scaled = f', {working.shape[1]}x{working.shape[0]} at max_side={max_side}' if scale < 1 else ''
    raise InputError(f'{path} is {width}x{height}{scaled}: too small, the generators need '
                              f'sides of at least {min_side} pixels')
  return working, scale

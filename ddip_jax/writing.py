"""Writing results: files written atomically as a set (`write_files`), PNGs, JSON.

A crashed or concurrent run never leaves a half-written file where a finished
one is expected; any failure to write (disk full, no permission) raises
`OutputError` with one line naming the file, which the CLI prints.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import io
import json
import os
import secrets
import signal
import threading
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from ddip_jax import errors
from ddip_jax import image_io

OutputError = errors.OutputError


def write_files(files: dict[str, bytes]) -> None:
  """Writes several files atomically, as a set: all to temporary files, then all renamed over.

  Parent directories are created. A reader sees each file old or new, never a
  part; if anything fails before the renames, no file is replaced (earlier
  results stay whole) and no temporary file is left. A Ctrl-C or SIGTERM that
  arrives during the renames acts once they are done (`signals_deferred`).

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
    with signals_deferred():  # Ctrl-C / SIGTERM acts once the set is in place, never amid it.
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


@contextlib.contextmanager
def signals_deferred(signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
  """Holds back Ctrl-C and SIGTERM while the block runs, then delivers them to their handlers.

  Only the main thread runs signal handlers; elsewhere nothing changes (a
  signal raises nothing in another thread).
  """
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  received = []
  previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in signals}
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, signal.SIG_DFL if handler is None else handler)
    for signum in dict.fromkeys(received):
      signal.raise_signal(signum)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
  """Writes one file atomically (`write_files`); raises `OutputError`."""
  write_files({path: data})


def encode_png(img: npt.ArrayLike) -> bytes:
  """An image as PNG bytes, values rounded to 8 bits by `image_io.to_uint8`.

  Args:
    img: float (H, W), (H, W, 1) or (H, W, 3) in [0, 1]; outside is clipped.

  Raises:
    ValueError: `img` has another shape.
  """
  arr = image_io.check_image(img, what="img")
  pixels = image_io.to_uint8(arr[..., 0] if arr.ndim == 3 and arr.shape[-1] == 1 else arr)
  buf = io.BytesIO()
  Image.fromarray(pixels).save(buf, format="PNG")
  return buf.getvalue()


def save_image(path: str | os.PathLike[str], img: npt.ArrayLike) -> None:
  """Writes an image as PNG (whatever the suffix) atomically (`encode_png`, `write_bytes`)."""
  write_bytes(path, encode_png(img))


def _jsonable(obj: Any) -> Any:
  """Replaces numpy (and JAX) scalars and arrays by Python ones, recursively."""
  if isinstance(obj, dict):
    return {(k.item() if isinstance(k, np.generic) else k): _jsonable(v) for k, v in obj.items()}
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

"""How much memory a run of an input needs, and refusing an input that cannot fit, before it is decoded.

A run holds its input at full size (as float32), the full-size layers and the
full-size refinement (the guided filter guided by the photo): its peak memory
grows with the input's pixels, whatever the working resolution
(`config.max_side`). `check_fits` estimates it from the size an image file's
header gives (or an array's shape) and the number of frames of a clip, and
refuses, with one line saying what would fit, an input over the limit:
`DDIP_JAX_MEMORY_GB` if set, else 3/4 of this machine's memory (its cgroup's
limit if lower). `image_io.check_fits` raises the refusal as an `InputError`.

The estimate is linear in the pixels, from measured peaks: a 12-megapixel
photo's segmentation peaks at 2.9 GB (docs/speed.md), about 240 bytes per
pixel over the runtime's own; each further frame of a clip keeps its pixels
and its full-size layers (fg, bg, masks, recomposition, cut-out) until they
are written, about 100 bytes per pixel.
"""

import os

MEMORY_ENV = 'DDIP_JAX_MEMORY_GB'  # The limit in GB (10^9 bytes), e.g. 12 or 0.5; default: 3/4 of the machine's.
BASE_BYTES = 500_000_000  # The runtime, the compiled steps, the working-size problem.
BYTES_PER_PIXEL = 256  # One full-size image: decoded, as floats, its layers and the full-size refinement.
BYTES_PER_FRAME_PIXEL = 128  # Each further frame of a clip: its pixels and full-size layers until written.
_CGROUP_LIMITS = ('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes')


def machine_memory() -> int:
  """Bytes of memory this process may use: the physical memory, or its cgroup's limit if lower."""
  total = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  for path in _CGROUP_LIMITS:
    try:
      with open(path) as f:
        text = f.read().strip()
    except OSError:
      continue
    if text.isdigit():
      total = min(total, int(text))
  return total


def memory_limit() -> tuple[int, str]:
  """(bytes, where the limit comes from, for messages).

  Raises:
    ValueError: `DDIP_JAX_MEMORY_GB` is not a positive number (the message is one line).
  """
  value = os.environ.get(MEMORY_ENV, '').strip()
  if value:
    try:
      limit = float(value)
    except ValueError:
      limit = -1.0
    if not limit > 0 or limit == float('inf'):
      raise ValueError(f'{MEMORY_ENV}={value!r}: must be a positive number of GB, e.g. 16')
    return int(limit * 1e9), f'{MEMORY_ENV}={value}'
  machine = machine_memory()
  return machine * 3 // 4, f"3/4 of this machine's {machine / 1e9:.1f} GB; set {MEMORY_ENV} to change it"


def needed_bytes(height: int, width: int, frames: int = 1) -> int:
  """The memory a run of `frames` frames of height x width pixels needs, about."""
  pixels = height * width
  return BASE_BYTES + BYTES_PER_PIXEL * pixels + BYTES_PER_FRAME_PIXEL * pixels * max(frames - 1, 0)


def refusal(what: str, height: int, width: int, frames: int = 1) -> str | None:
  """Why an input of `frames` frames of `height` x `width` pixels cannot be run (its run would not fit), or None.

  Args:
    what: names the input in the message, e.g. "'photo.jpg'" or 'the image array'.
    height, width: the size of one image or frame, from its header or shape.
    frames: the clip's number of frames (1: an image).

  Returns:
    None if it fits, else one line: the size, the memory needed, the limit and what would fit.
  """
  try:
    limit, source = memory_limit()
  except ValueError as err:
    return str(err)
  need = needed_bytes(height, width, frames)
  if need <= limit:
    return None
  pixels = height * width
  size = f'{frames} frames of {width}x{height}' if frames > 1 else f'{width}x{height} ({pixels / 1e6:.1f} megapixels)'
  fit = _fitting_pixels(limit)
  frames_fit = (limit - needed_bytes(height, width)) // (BYTES_PER_FRAME_PIXEL * pixels) + 1
  if fit == 0:
    fits = f'the limit is below the {BASE_BYTES / 1e9:.1f} GB the runtime itself needs'
  elif frames > 1 and frames_fit >= 2:
    fits = f'at most {frames_fit} frames of this size fit'
  else:
    scale = (fit / pixels) ** 0.5
    fits = (
        f'at most {fit / 1e6:.1f} megapixels {"a frame " if frames > 1 else ""}fit (e.g. {int(width * scale)}x'
        f'{int(height * scale)}: downscale it first)'
    )
  return (
      f'{what} is {size}: its run needs about {need / 1e9:.1f} GB of memory, more than the limit of '
      f'{limit / 1e9:.1f} GB ({source}); {fits}'
  )


def _fitting_pixels(limit: int) -> int:
  return max(0, (limit - BASE_BYTES) // BYTES_PER_PIXEL)

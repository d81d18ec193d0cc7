"""Progress of an optimisation: the command line's tqdm bar, and a caller's progress function.

`engine.optimize` makes one `Progress` per stage and updates it after every
compiled call; loss and PSNR are fetched from the device at most twice a second.
"""

from collections.abc import Callable, Iterator
import contextlib
import contextvars
import sys
import time
from typing import Any

import tqdm

# progress(step, total, loss, psnr, stage): what a caller (a notebook, a web page) is told as a stage runs.
ProgressFn = Callable[[int, int, float, float, str], None]


_PROGRESS_FN: contextvars.ContextVar[ProgressFn | None] = contextvars.ContextVar('ddip_jax_progress', default=None)


_REPORT_INTERVAL = 0.5  # Seconds between two calls of a progress function (each one syncs with the device).


@contextlib.contextmanager
def reporting_progress(progress: ProgressFn | None) -> Iterator[None]:
  """Calls `progress(step, total, loss, psnr, stage)` from every `optimize` that runs in this block.

  At most twice a second and at the end of each stage; `step` counts the
  stage's steps done (of `total`). The command line's progress is the tqdm bar
  (`LoopOptions.progress`); this is the same report for a caller of the Python API.
  """
  token = _PROGRESS_FN.set(progress)
  try:
    yield
  finally:
    _PROGRESS_FN.reset(token)


class Progress:
  """A tqdm bar (and the caller's `reporting_progress` function) whose loss/PSNR are fetched from the device
  at most twice a second."""

  def __init__(self, stage: Any, enabled: bool, initial: int = 0):
    """`stage`: an `engine.Stage` (its name and num_steps); `enabled`: show the bar; `initial`: steps done."""
    interactive = sys.stderr.isatty()
    self._bar = tqdm.tqdm(
        total=stage.num_steps, initial=initial, desc=stage.name, disable=not enabled, file=sys.stderr,
        mininterval=0.5 if interactive else 15.0, dynamic_ncols=True, unit='it')
    self._last = 0.0
    self._interval = 0.5 if interactive else 15.0
    self._report = _PROGRESS_FN.get()
    self._last_report, self._done, self._stage = 0.0, initial, stage

  def update(self, n: int, state: Any):
    self._bar.update(n)
    self._done += n
    now = time.monotonic()
    if not self._bar.disable and now - self._last > self._interval:
      self._last = now
      self._bar.set_postfix(loss=f'{float(state.loss):.4f}', psnr=f'{float(state.psnr):.2f}', refresh=False)
    if self._report is not None and (now - self._last_report > _REPORT_INTERVAL
                                     or self._done == self._stage.num_steps):
      self._last_report = now
      self._report(self._done, self._stage.num_steps, float(state.loss), float(state.psnr), self._stage.name)

  def close(self):
    self._bar.close()

"""Progress of an optimisation: the command line's tqdm bar, and a caller's progress function.

`engine.optimize` makes one `Progress` per stage and updates it after every
compiled call; loss and PSNR are fetched from the device at most twice a second.
"""

from collections.abc import Callable, Iterator
import contextlib
import contextvars
import math
import sys
import time
from typing import Any

import tqdm

# progress(step, total, loss, psnr, stage): what a caller (a notebook, a web page) is told as a stage runs;
# the first call of a stage (before its first step, or on resuming) has loss and psnr NaN.
ProgressFn = Callable[[int, int, float, float, str], None]
_PROGRESS_FN: contextvars.ContextVar[ProgressFn | None] = contextvars.ContextVar('ddip_jax_progress', default=None)
_REPORT_INTERVAL = 0.5  # Seconds between two calls of a progress function (each fetches loss and PSNR).


@contextlib.contextmanager
def reporting_progress(progress: ProgressFn | None) -> Iterator[None]:
  """Calls `progress(step, total, loss, psnr, stage)` from every `engine.optimize` that runs in this block.

  At a stage's start, then at most twice a second and at its end; `step`
  counts the stage's steps done (of `total`). The command line's use of the
  same reports is the tqdm bar (`TqdmBar`, `LoopOptions.progress`).
  """
  token = _PROGRESS_FN.set(progress)
  try:
    yield
  finally:
    _PROGRESS_FN.reset(token)


class TqdmBar:
  """The command line's progress function: one stage's tqdm bar on stderr (steps, loss, PSNR, rate, ETA).

  Attributes:
    interval: seconds between its reports: 0.5 on a terminal, 15 in a log file.
  """

  def __init__(self):
    self.interval = 0.5 if sys.stderr.isatty() else 15.0
    self._bar = None

  def __call__(self, step: int, total: int, loss: float, psnr: float, stage: str) -> None:
    if self._bar is None:
      self._bar = tqdm.tqdm(total=total, initial=step, desc=stage, file=sys.stderr, mininterval=self.interval,
                            dynamic_ncols=True, unit='it')
    else:
      self._bar.update(step - self._bar.n)
    if math.isfinite(loss):
      self._bar.set_postfix(loss=f'{loss:.4f}', psnr=f'{psnr:.2f}', refresh=False)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()


class Progress:
  """One stage's progress, reported to its progress functions: the tqdm bar (`enabled`) and the caller's.

  Each function is called at the stage's start, then at most every its
  `interval` (default `_REPORT_INTERVAL`) and at the stage's end; loss and PSNR
  are fetched from the device once for all the functions due.
  """

  def __init__(self, stage: Any, enabled: bool, initial: int = 0):
    """`stage`: an `engine.Stage` (its name and num_steps); `enabled`: show the bar; `initial`: steps done."""
    caller = _PROGRESS_FN.get()
    self._fns = ([TqdmBar()] if enabled else []) + ([caller] if caller is not None else [])
    self._last = [time.monotonic()] * len(self._fns)
    self._done, self._stage = initial, stage
    for fn in self._fns:
      fn(initial, stage.num_steps, math.nan, math.nan, stage.name)

  def update(self, n: int, state: Any) -> None:
    """`n` more steps done; `state`: the `engine.TrainState` after them."""
    self._done += n
    now = time.monotonic()
    total = self._stage.num_steps
    due = [i for i, fn in enumerate(self._fns)
           if now - self._last[i] > getattr(fn, 'interval', _REPORT_INTERVAL) or self._done == total]
    if due:
      loss, psnr = float(state.loss), float(state.psnr)
      for i in due:
        self._last[i] = now
        self._fns[i](self._done, total, loss, psnr, self._stage.name)

  def close(self) -> None:
    for fn in self._fns:
      if hasattr(fn, 'close'):
        fn.close()

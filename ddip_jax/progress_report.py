"""Progress of an optimisation: the command line's tqdm bar, and a caller's progress function, as hooks.

`engine.optimize` gives every run a `ProgressHook(TqdmBar())` when its
`LoopOptions.progress` is set; `ddip_jax.segment(progress=fn)` and the other
API functions listen with `ProgressHook(fn)` (`hooks.listening`). Loss and PSNR
are fetched from the device at most twice a second.
"""

from collections.abc import Callable
import math
import sys
import time

import tqdm

from ddip_jax import hooks

# progress(step, total, loss, psnr, stage): what a caller (a notebook, a web page) is told as a stage runs;
# the first call of a stage (before its first step, or on resuming) has loss and psnr NaN.
ProgressFn = Callable[[int, int, float, float, str], None]
_REPORT_INTERVAL = 0.5  # Seconds between two calls of a progress function (each fetches loss and PSNR).


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
      self._bar = tqdm.tqdm(
          total=total,
          initial=step,
          desc=stage,
          file=sys.stderr,
          mininterval=self.interval,
          dynamic_ncols=True,
          unit='it',
      )
    else:
      self._bar.update(step - self._bar.n)
    if math.isfinite(loss):
      self._bar.set_postfix(loss=f'{loss:.4f}', psnr=f'{psnr:.2f}', refresh=False)

  def close(self) -> None:
    """Ends this stage's bar; the next call starts a new one."""
    if self._bar is not None:
      self._bar.close()
      self._bar = None


class ProgressHook:
  """A progress function as a hook (`hooks.Hook`): called at a stage's start (loss and PSNR NaN), then at most
  every `interval` seconds (the function's `interval` attribute, else 0.5) and at the stage's last step; its
  `close()`, if it has one, at the stage's end.

  Attributes:
    skip_finished: say nothing of a stage that a checkpoint holds as finished (the bar shows work being done).
  """

  def __init__(self, fn: ProgressFn, *, skip_finished: bool = False):
    self.fn, self.skip_finished = fn, skip_finished
    self._interval = getattr(fn, 'interval', _REPORT_INTERVAL)
    self._last, self._silent = 0.0, False

  def __call__(self, event: hooks.Event) -> None:
    if event.kind == 'start':
      self._silent = self.skip_finished and event.done >= event.total
      if not self._silent:
        self._last = time.monotonic()
        self.fn(event.done, event.total, math.nan, math.nan, event.stage)
    elif event.kind == 'step' and not self._silent:
      now = time.monotonic()
      if now - self._last > self._interval or event.done == event.total:
        self._last = now
        self.fn(event.done, event.total, float(event.state.loss), float(event.state.psnr), event.stage)
    elif event.kind == 'end' and not self._silent and hasattr(self.fn, 'close'):
      self.fn.close()


def reporting_progress(progress: ProgressFn | None):
  """A block in which every `engine.optimize` of this thread reports to `progress(step, total, loss, psnr, stage)`
  (`ProgressHook`; None: to nothing more)."""
  return hooks.listening(*([ProgressHook(progress)] if progress is not None else []))

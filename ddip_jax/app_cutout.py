"""The segmentation tab's cut-out (`ddip_jax.app`): a `Cutout` per browser session, kept in memory.

A browser session's photo gets one `cutout.Cutout`: each stroke asks it for the
instant preview (hint growth alone), the first *Run* for the first result and
every later *Run* for a correction that continues the last result (same
compiled step, no files read). The page's editor holds all strokes (some
maybe undone), so every call gives them all (`replace=True`).

The computation is in memory, its record on disk: a session's run folder
(`<runs_dir>/segmentation-<time>-<id>/`) holds the photo, `config.json`, and per
answer `call<N>/` with the strokes as hint PNGs and the outputs (mask, alpha,
fg, bg, the cut-outs), with `calls.json` listing the answers' steps and times.
Nothing here needs Gradio.
"""

import collections
import dataclasses
import json
import os
import threading
import time
from typing import Any

from absl import logging
import ml_collections
import numpy as np
from PIL import Image
from scipy import ndimage

from ddip_jax import app_runs
from ddip_jax import app_safety
from ddip_jax import cli
from ddip_jax import cutout as cutout_lib
from ddip_jax import hooks
from ddip_jax import image_io
from ddip_jax import writing
from ddip_jax.tasks import segmentation

MAX_SESSIONS = 4  # Cut-outs kept in memory (one per browser session); the oldest goes first.
MAX_CORRECTION_STEPS = 10000
# The segmentation tab's settings: config fields (the first result's schedule with strokes, seed, working
# side), and the steps of a correction (`Cutout.correction_steps`, not a config field).
SETTINGS = (
    ('segmentation.user_hint_steps', 'First result: hint steps (step 1)'),
    ('segmentation.user_num_steps', 'First result: steps (step 2)'),
    ('correction_steps', 'Steps per correction'),
    ('seed', 'Seed'),
    ('max_side', 'Max side (px)'),
)
CORRECTION_STEPS = 60  # The default of the 'correction_steps' box.
_DIM = 0.35  # Outside the mask, the overlay keeps this much of the photo ...
_TINT = np.array([20, 30, 70], np.float32)  # ... over this colour;
_OUTLINE = np.array([255, 220, 0], np.uint8)  # and draws the mask's outline (just outside it) in this one.


def rgba_cutout(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
  """The cut-out as a transparent image: (H, W, 3) in [0, 1] and alpha (H, W) in [0, 1] -> (H, W, 4) uint8."""
  return np.concatenate([image_io.to_uint8(image), image_io.to_uint8(alpha)[..., None]], -1)


def overlay(photo: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
  """The mask on the photo: (H, W, 3) in [0, 1] and a bool (H, W) mask -> (H, W, 3) uint8.

  Inside the mask the photo's own pixels; outside, the photo dimmed towards a dark blue, with a yellow
  outline along the mask's border (outside it: the object's pixels stay as they are). None: the photo.
  """
  shown = image_io.to_uint8(photo).astype(np.float32)
  if mask is None:
    return shown.astype(np.uint8)
  mask = np.asarray(mask) > 0.5
  out = np.where(mask[..., None], shown, _DIM * shown + (1 - _DIM) * _TINT)
  width = max(1, round(max(mask.shape) / 300))
  out[ndimage.binary_dilation(mask, iterations=width) & ~mask] = _OUTLINE
  return np.round(out).astype(np.uint8)


def on_checkerboard(rgba: np.ndarray, *, square: int | None = None) -> np.ndarray:
  """An RGBA uint8 image (H, W, 4) over a grey checkerboard, as image editors show transparency: (H, W, 3) uint8."""
  h, w = rgba.shape[:2]
  square = square or max(4, max(h, w) // 32)
  yy, xx = np.mgrid[:h, :w]
  board = np.where(((yy // square + xx // square) % 2 == 0)[..., None], 204.0, 153.0)
  alpha = rgba[..., 3:].astype(np.float32) / 255.0
  return np.round(alpha * rgba[..., :3] + (1 - alpha) * board).astype(np.uint8)


def cutout_config(photo_path: str, settings: dict[str, Any], extra: str) -> tuple[ml_collections.ConfigDict, int]:
  """The Cutout's config (the photo's config with the page's settings and overrides) and its correction steps.

  Args:
    photo_path: the photo's file (what `config.image` names: the record's and the checks').
    settings: SETTINGS field -> value (None: the config's; for 'correction_steps', CORRECTION_STEPS).
    extra: the overrides box, checked by `app_safety.page_overrides`.

  Raises:
    cli.UsageError, config_check.ConfigError: a setting or override refused, in one line.
  """
  settings = dict(settings)
  steps = app_safety.setting_args({'correction_steps': settings.pop('correction_steps', None)})
  correction_steps = int(steps[0].split('=', 1)[1]) if steps else CORRECTION_STEPS
  if not 1 <= correction_steps <= MAX_CORRECTION_STEPS:
    raise cli.UsageError(f'setting correction_steps: {correction_steps} is not between 1 and {MAX_CORRECTION_STEPS}')
  args = app_runs.segmentation_args(photo=photo_path, fg_hint=None, bg_hint=None, settings=settings, extra=extra)
  return app_runs.parse_config(args), correction_steps


def schedule(config: ml_collections.ConfigDict, first: bool, correction_steps: int) -> int:
  """Steps the next answer runs: the strokes' schedule (the first), or a correction's."""
  if not first:
    return correction_steps
  config = segmentation.with_schedule(config, user_hints=True)
  return config.segmentation.hint_steps + config.num_steps


@dataclasses.dataclass
class Progress:
  """What the page shows of an answer in progress.

  Attributes:
    what: 'first result' or 'correction <n>'.
    done, total: steps run and planned (an early stop may end it sooner).
    rate: steps per second after the first compiled call (None before).
  """

  what: str
  done: int = 0
  total: int = 0
  rate: float | None = None

  def describe(self) -> str:
    """One line in plain words, e.g. 'refining (correction 2): step 40/60, about 2 s left'."""
    if not self.done:
      return f'{self.what}: preparing' + (
          ' (compiling: about a minute on a CPU)' if self.what == 'first result' else ''
      )
    text = f'{self.what}: step {self.done}/{self.total}'
    if self.rate:
      text += f', about {max(0, self.total - self.done) / self.rate:.0f} s left'
    return text

  @property
  def fraction(self) -> float:
    return min(1.0, self.done / self.total) if self.total else 0.0


class Refinement(app_runs.Worker):
  """One `Cutout.add` in a worker thread, observed for progress and stoppable (its best result so far is kept)."""

  def __init__(self, cut: cutout_lib.Cutout, fg: np.ndarray, bg: np.ndarray, progress: Progress):
    self.cut, self.progress = cut, progress
    self.result: cutout_lib.CutoutResult | None = None
    self.error: str | None = None
    self._fg, self._bg = fg, bg
    self._stages: dict[str, int] = {}  # Stage name -> steps done in it.
    self._first: tuple[float, int] | None = None  # (time, steps) of the first observation: no compiling after.
    super().__init__('ddip-cutout')

  def _observe(self, event: hooks.Event) -> str | None:
    """A hook (`hooks.Hook`): the progress after every compiled call; 'stop button' once Stop was pressed."""
    if event.kind != 'step':
      return None
    now = time.monotonic()
    self._stages[event.stage] = event.done
    total = sum(self._stages.values())
    if self._first is None:
      self._first = (now, total)
    started, first = self._first
    rate = (total - first) / (now - started) if total > first and now > started else self.progress.rate
    self.progress = dataclasses.replace(self.progress, done=total, rate=rate)
    return 'stop button' if self._stop.is_set() else None

  def _work(self) -> None:
    try:
      with hooks.listening(self._observe):
        self.result = self.cut.add(fg=self._fg, bg=self._bg, replace=True)
    except app_runs.USER_ERRORS as err:
      self.error = str(err)
    except Exception as err:  # pylint: disable=broad-except  # The page says what; the log has the traceback.
      logging.exception('cut-out failed')
      self.error = f'{type(err).__name__}: {err}'


@dataclasses.dataclass
class Session:
  """A browser session's cut-out.

  Attributes:
    key: what made `cut` (photo and config): other settings need a new one.
    cut: the `Cutout`.
    folder: its run folder (None until its first answer).
    calls: answers recorded so far.
    last: the last answer's folder (`record`).
  """

  key: tuple[str, str]
  cut: cutout_lib.Cutout
  folder: str | None = None
  calls: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  last: str | None = None


class Sessions:
  """Browser session -> its `Session`, at most MAX_SESSIONS (the least recently used goes); thread-safe."""

  def __init__(self, max_sessions: int = MAX_SESSIONS):
    self._sessions: collections.OrderedDict[str, Session] = collections.OrderedDict()
    self._max = max_sessions
    self._lock = threading.Lock()

  def get(self, session: str | None) -> Session | None:
    with self._lock:
      found = self._sessions.get(session)
      if found is not None:
        self._sessions.move_to_end(session)
      return found

  def put(self, session: str | None, value: Session) -> None:
    with self._lock:
      self._sessions[session] = value
      self._sessions.move_to_end(session)
      while len(self._sessions) > self._max:
        self._sessions.popitem(last=False)

  def drop(self, session: str | None) -> None:
    with self._lock:
      self._sessions.pop(session, None)

  def __len__(self) -> int:
    return len(self._sessions)


def session_for(
    sessions: Sessions, session: str | None, photo_path: str, config: ml_collections.ConfigDict, correction_steps: int
) -> Session:
  """The browser session's cut-out of this photo with this config: the one kept, or a new one."""
  key = (photo_path, config.to_json_best_effort(sort_keys=True))
  found = sessions.get(session)
  if found is not None and found.key == key:
    found.cut.correction_steps = correction_steps
    return found
  photo = image_io.load_image(photo_path)
  cut = cutout_lib.Cutout(photo, config=config, correction_steps=correction_steps, progress=False)
  found = Session(key=key, cut=cut)
  sessions.put(session, found)
  return found


def record(
    session: Session, fg: np.ndarray, bg: np.ndarray, result: cutout_lib.CutoutResult, stopped: bool, runs_dir: str
) -> str:
  """Writes an answer into the session's run folder (`call<N>/`; the first makes the folder); returns that folder.

  The folder holds the photo (a copy) and `config.json`; each answer
  the strokes as hint PNGs (what `main.py --config.fg_hint=` takes), the mask, alpha, soft mask,
  fg, bg, and the cut-outs with the mask (`cutout.png`) and with the soft edge (`cutout_soft.png`) as alpha.
  """
  if session.folder is None or not os.path.isdir(session.folder):
    session.folder = app_runs.new_run_folder(runs_dir, 'segmentation')
    app_runs.copy_photo(session.folder, session.key[0], app_runs.DEMO_CONFIG)
    with open(os.path.join(session.folder, 'config.json'), 'w') as f:
      f.write(session.cut.config.to_json_best_effort(indent=2, sort_keys=True) + '\n')
  call = os.path.join(session.folder, f'call{len(session.calls) + 1}')
  os.makedirs(call, exist_ok=True)
  photo = session.cut.photo
  images = {
      'fg_strokes': fg,
      'bg_strokes': bg,
      'mask': result.mask,
      'alpha': result.alpha,
      'soft_mask': result.soft_mask,
      'fg': result.fg,
      'bg': result.bg,
  }
  for name, image in images.items():
    writing.save_image(os.path.join(call, f'{name}.png'), np.asarray(image, np.float32))
  for name, alpha in (('cutout', result.mask), ('cutout_soft', result.alpha)):
    Image.fromarray(rgba_cutout(photo, alpha), 'RGBA').save(os.path.join(call, f'{name}.png'))
  session.calls.append(
      {
          'call': len(session.calls) + 1,
          'steps': result.steps,
          'seconds': result.seconds,
          'stopped': stopped,
          'foreground_fraction': round(float(result.mask.mean()), 4),
      }
  )
  with open(os.path.join(session.folder, 'calls.json'), 'w') as f:
    json.dump(session.calls, f, indent=2)
  session.last = call
  return call


def downloads(call: str, soft: bool) -> list[str]:
  """The files a user downloads of an answer: the cut-out (soft-edged or not, as shown), mask, fg, bg."""
  return [
      os.path.join(call, name) for name in ('cutout_soft.png' if soft else 'cutout.png', 'mask.png', 'fg.png', 'bg.png')
  ]

"""A run of the web page (`ddip_jax.app`): run folders, strokes -> hint PNGs, the worker thread, the outputs zip.

A run is what the command line runs: its inputs (the photo, the painted strokes as hint PNGs) are
written to a run folder (`<runs_dir>/<run>/input/`), its config built by the command line's own
parser and checks (`cli.parse`, `tasks.validate`) from the `main.py` arguments the page shows, and
`Run` calls `api.run_config` (what `main.py` calls) in a worker thread, into `<run>/output/`, observed
through `hooks.listening` for progress, previews and Stop (as Ctrl-C: the best result so far is kept).
Nothing here needs Gradio.
"""

import contextlib
import dataclasses
import functools
import json
import os
import shlex
import shutil
import threading
import time
from typing import Any
import uuid
import zipfile

from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np

from ddip_jax import api
from ddip_jax import app_safety
from ddip_jax import app_strokes
from ddip_jax import cli
from ddip_jax import engine
from ddip_jax import hooks
from ddip_jax import hints as hints_lib
from ddip_jax import image_io
from ddip_jax import runner
from ddip_jax import tasks
from ddip_jax import writing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CONFIG = 'configs/zebra.py'  # The zebra demo: its own image, and its ground truth for the IoU.
PHOTO_CONFIG = 'configs/default.py'  # A user's photo, as the README's "Segmentation of your own image".
WATERMARK_CONFIG = 'configs/watermark.py'  # Its demo, and a user's photo with the box they paint.
DEMO = 'demo'  # The page's photo is the zebra demo's.
# What a user may set on the page, with the config field each one overrides.
SETTINGS = (
    ('num_steps', 'Steps (step 2)'),
    ('segmentation.hint_steps', 'Hint steps (step 1)'),
    ('seed', 'Seed'),
    ('restarts', 'Restarts'),
    ('max_side', 'Max side (px)'),
)
# Errors whose message is one line for the user, as main.py prints them.
USER_ERRORS = runner.RUN_ERRORS + (writing.OutputError, cli.UsageError)
PREVIEW_SECONDS = 2.0  # Previews are fetched from the device at most this often.
# The watermark tab's: its step 1 is `watermark.hint_steps`.
WATERMARK_SETTINGS = tuple(
    ('watermark.hint_steps', label) if field == 'segmentation.hint_steps' else (field, label)
    for field, label in SETTINGS
)
# Metrics named in the status line of a finished run (those a run has; scores, not the optimisation's PSNR).
_SHOWN_METRICS = ('iou', 'mean_iou', 'foreground_fraction')


def relative(path: str) -> str:
  """`path` relative to the repository when inside it: the form `main.py`, run from there, takes."""
  path = os.path.abspath(path)
  return os.path.relpath(path, REPO) if path.startswith(REPO + os.sep) else path


def segmentation_args(
    *, photo: str | None, fg_hint: str | None, bg_hint: str | None, settings: dict[str, Any], extra: str = ''
) -> list[str]:
  """The `main.py` arguments (less --workdir) of a segmentation run.

  Args:
    photo: the photo's path; None: the zebra demo (its config names its image).
    fg_hint, bg_hint: hint PNG paths, or None (automatic hints).
    settings: SETTINGS field -> value; None values are left to the config file.
    extra: more `--config.<field>=<value>` arguments, as typed on a command line.

  Raises:
    cli.UsageError: `extra` cannot be split as a shell would.
  """
  args = [f'--config={PHOTO_CONFIG if photo else DEMO_CONFIG}']
  for field, path in (('image', photo), ('fg_hint', fg_hint), ('bg_hint', bg_hint)):
    if path:
      args.append(f'--config.{field}={relative(path)}')
  return args + _setting_args(settings, extra)


def _setting_args(settings: dict[str, Any], extra: str) -> list[str]:
  """`--config.<field>=<value>` for the page's settings (None: the config's), then the checked extra overrides.

  Raises:
    cli.UsageError: a setting that is not a whole number, or an override the page does not allow
      (`app_safety.page_overrides`).
  """
  return app_safety.setting_args(settings) + app_safety.page_overrides(extra, _allowed_fields())


@functools.cache
def _allowed_fields() -> dict[str, str]:
  return app_safety.allowed_fields(cli.load_config_file(os.path.join(REPO, PHOTO_CONFIG)))


def command_line(args: list[str], workdir: str) -> str:
  """The command that makes the same run from the repository root."""
  return shlex.join(['python', 'main.py', *args, f'--workdir={relative(workdir)}'])


def parse_config(args: list[str]) -> ml_collections.ConfigDict:
  """The config `main.py` makes from `args`, checked as it checks it.

  Raises:
    cli.UsageError: as `main.py` refuses the arguments (one line).
    config_check.ConfigError: a field's value is invalid.
  """
  argv = ['main.py', *args]
  flag_values = flags.FlagValues()
  # The overrides' flags are defined from `sys_argv`, as main.py's are from the real command line.
  config_flags.DEFINE_config_file(
      cli.CONFIG_FLAG, None, 'Task config file.', flag_values=flag_values, lock_config=True, sys_argv=argv
  )
  cli.parse(argv, flag_values, default_config=PHOTO_CONFIG)
  config = flag_values[cli.CONFIG_FLAG].value
  tasks.validate(config)
  return config


@dataclasses.dataclass
class Snapshot:
  """What the page shows of a run in progress.

  Attributes:
    stage: the stage's name; stage_index its 1-based place in its optimisation.
    part: which optimisation of the run ('' for the only one; e.g. 'restart 2', 'window 3', 'pass 1').
    done, total: steps of the stage.
    rate: steps per second since the stage's first compiled call (None before).
    previews: layer name -> (H, W, C) float image of the best result so far.
  """

  stage: str = ''
  stage_index: int = 0
  part: str = ''
  done: int = 0
  total: int = 0
  rate: float | None = None
  previews: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def describe(self) -> str:
    """One line in plain words: stage, step and the time left in the stage."""
    if not self.stage:
      return 'starting: loading the photo, hints, compiling the step (a minute on a CPU the first time)'
    part = f', {self.part}' if self.part else ''
    text = f'stage {self.stage_index} ({self.stage}{part}): step {self.done}/{self.total}'
    if self.rate:
      text += f', about {(self.total - self.done) / self.rate:.0f} s left in this stage'
    return text

  @property
  def fraction(self) -> float:
    return self.done / self.total if self.total else 0.0


class Worker:
  """Work in a daemon thread that can be asked to stop (`stop`): a run of the page, a cut-out's refinement."""

  def __init__(self, name: str):
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._work, name=name, daemon=True)

  def start(self):
    self._thread.start()
    return self

  @property
  def stopping(self) -> bool:
    return self._stop.is_set()

  def stop(self) -> None:
    """Asks the work to stop after its current steps; it keeps the best result so far."""
    self._stop.set()

  def wait(self, seconds: float) -> bool:
    """Waits up to `seconds`; whether the work has ended."""
    self._thread.join(seconds)
    return not self._thread.is_alive()

  def _work(self) -> None:
    raise NotImplementedError


class Run(Worker):
  """One run of a task in a worker thread: `api.run_config`, as `main.py` calls it.

  The worker thread listens to its `engine.optimize` calls (`hooks.listening`)
  to keep a `Snapshot` and to stop when asked (`stop`).
  """

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    self.config, self.workdir = config, workdir
    self.snapshot = Snapshot()
    self.metrics: dict[str, Any] | None = None
    self.error: str | None = None  # One line for the user.
    self.stopped = False
    self._lock = threading.Lock()
    self._stage: tuple[str, str] = ('', '')  # (part, stage) of the last event.
    self._stage_start: tuple[float, int] = (0.0, 0)
    self._last_preview = 0.0
    super().__init__('ddip-run')

  def _observe(self, event: hooks.Event) -> str | None:
    """A hook (`hooks.Hook`): the snapshot after every compiled call; 'stop button' once Stop was pressed."""
    if event.kind != 'step':
      return None
    now = time.monotonic()
    if (event.part, event.stage) != self._stage:
      self._stage = (event.part, event.stage)
      self._stage_start = (now, event.done)  # After the first call: the compilation is not in the rate.
      self._last_preview = 0.0
    started, first = self._stage_start
    snapshot = dataclasses.replace(
        self.snapshot,
        stage=event.stage,
        stage_index=event.stage_index + 1,
        part=event.part,
        done=event.done,
        total=event.total,
        rate=(event.done - first) / (now - started) if event.done > first else None,
    )
    if now - self._last_preview >= PREVIEW_SECONDS or event.done == event.total:
      self._last_preview = now
      snapshot.previews = {name: np.asarray(value)[0] for name, value in jax.device_get(event.state.best).items()}
    with self._lock:
      self.snapshot = snapshot
    return 'stop button' if self._stop.is_set() else None

  def _work(self) -> None:
    try:
      with hooks.listening(self._observe):
        self.metrics, _ = api.run_config(self.config, self.workdir)
    except engine.Interrupted as err:
      self.stopped = True
      # The best result so far is written, with its metrics ('stopped: ...'), unless none was made yet.
      with contextlib.suppress(OSError, ValueError):
        with open(os.path.join(getattr(err, 'workdir', self.workdir), runner.METRICS)) as f:
          self.metrics = json.load(f)
    except USER_ERRORS as err:
      self.error = str(err)
    except Exception as err:  # pylint: disable=broad-except  # The page says what; the log has the traceback.
      logging.exception('run in %s failed', self.workdir)
      self.error = f'{type(err).__name__}: {err}'


def zip_folder(folder: str, path: str) -> str:
  """Zips `folder`'s files (not its locks and checkpoints) into `path`; returns `path`."""
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
    for root, _, names in os.walk(folder):
      for name in sorted(names):
        full = os.path.join(root, name)
        if name.startswith('.') or name.endswith('.msgpack') or os.path.abspath(full) == os.path.abspath(path):
          continue
        archive.write(full, os.path.relpath(full, os.path.dirname(folder)))
  return path


def new_run_folder(runs_dir: str, kind: str) -> str:
  """A fresh `<runs_dir>/<kind>-<time>-<id>` folder."""
  folder = os.path.join(runs_dir, f'{kind}-{time.strftime("%Y%m%d-%H%M%S")}-{uuid.uuid4().hex[:6]}')
  os.makedirs(os.path.join(folder, 'input'))
  return folder


def copy_photo(folder: str, photo: str | None, demo_config: str) -> tuple[str | None, tuple[int, int]]:
  """Copies `photo` into `folder`/input (the run folder holds what it ran on); returns its path and (H, W).

  None: the demo's photo, which `demo_config` names (not copied: that config's ground truth stays its own).
  """
  if not photo:
    return None, image_io.load_image(os.path.join(REPO, demo_image(demo_config))).shape[:2]
  path = os.path.join(folder, 'input', 'photo' + os.path.splitext(photo)[1].lower())
  shutil.copyfile(photo, path)
  return path, image_io.load_image(path).shape[:2]


def watermark_args(
    folder: str, *, photo: str | None, layers: list[np.ndarray], settings: dict[str, Any], extra: str = ''
) -> list[str]:
  """The `main.py` arguments (less --workdir) of a watermark run; writes its inputs into `folder`/input.

  The photo is copied; the box around the strokes in `layers` is the hint. `photo` None: the demo's (with its
  config's own box unless strokes are painted). `settings`, `extra`: as `segmentation_args`'s.

  Raises:
    cli.UsageError: a photo without strokes; or `extra` does not split.
  """
  photo, shape = copy_photo(folder, photo, WATERMARK_CONFIG)
  box = app_strokes.strokes_to_box(layers, shape)
  args = [f'--config={WATERMARK_CONFIG}']
  if photo:
    if box is None:  # The config's own box is the demo's.
      raise cli.UsageError('paint over the watermark: the box around your strokes is the hint (watermark.hint)')
    args.append(f'--config.image={relative(photo)}')
  if box is not None:
    hint = os.path.join(folder, 'input', 'box.png')
    writing.save_image(hint, box)
    args.append(f'--config.watermark.hint={relative(hint)}')
  return args + _setting_args(settings, extra)


def save_run_record(folder: str, command: str, config: ml_collections.ConfigDict) -> None:
  """`command.txt` and `config.json` in the run folder: how to make the same run again."""
  with open(os.path.join(folder, 'command.txt'), 'w') as f:
    f.write(command + '\n')
  with open(os.path.join(folder, 'config.json'), 'w') as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True) + '\n')


def demo_image(config_file: str = DEMO_CONFIG) -> str:
  """The demo's image path: its config file's."""
  return cli.load_config_file(os.path.join(REPO, config_file)).image


def automatic_hints(photo: np.ndarray, config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
  """The automatic hints a run of `config` would start from, at the photo's size (see `hints.resolve_hints`).

  Args:
    photo: (H, W, 3) float in [0, 1].
    config: the run's config (`parse_config`): its `max_side` and `segmentation.auto_hints` apply.

  Raises:
    image_io.InputError: nothing stands out of the photo, or it is too small.
  """
  working, _ = image_io.working_image(
      photo, config.max_side, path='the photo', min_side=2 ** len(config.generator.channels_down)
  )
  fg, bg, _ = hints_lib.resolve_hints(working, fg_path=None, bg_path=None, method=config.segmentation.auto_hints)
  return image_io.resize_image(fg, photo.shape[:2]) > 0.5, image_io.resize_image(bg, photo.shape[:2]) > 0.5


def ended(run: Run) -> str:
  """The status line of an ended run that made a result (its files are the page's downloads)."""
  metrics = run.metrics or {}
  scores = '  '.join(f'{k}={v:.3g}' for k, v in metrics.items() if k in _SHOWN_METRICS and isinstance(v, (int, float)))
  return f'{"stopped: the best result so far" if run.stopped else "done"}' + (f': {scores}' if scores else '')


@dataclasses.dataclass(frozen=True)
class TaskTab:
  """A tab for a task whose inputs are files only: upload them (or none: the config's demo), Run.

  Attributes:
    title: the tab's title.
    config: its config file; its defaults fill the settings, its own inputs make the demo.
    inputs: (config field, label) of each file a user gives.
    layers: (output file, label) of each result shown.
    previews: the generator outputs shown while it runs (their first frame).
    note: one line of Markdown above the inputs.
    hidden: the SETTINGS fields that do nothing in this task (their boxes are hidden).
  """

  title: str
  config: str
  inputs: tuple[tuple[str, str], ...]
  layers: tuple[tuple[str, str], ...]
  previews: tuple[str, ...]
  note: str
  hidden: tuple[str, ...] = ()


TASK_TABS = (
    TaskTab(
        'Dehazing',
        'configs/dehaze.py',
        (('image', 'Hazy photo'),),
        (('dehazed.png', 'dehazed'), ('transmission.png', 'transmission'), ('airlight.png', 'airlight')),
        ('clean', 'transmission'),
        'One hazy photo: the haze-free image, the transmission map and the airlight.',
        ('segmentation.hint_steps',),
    ),
    TaskTab(
        'Transparency',
        'configs/transparency.py',
        (('image', 'First mixture'), ('transparency.image2', 'Second mixture')),
        (('layer1.png', 'layer 1'), ('layer2.png', 'layer 2')),
        ('layer1', 'layer2'),
        'Two photos of the same two transparent layers mixed in other proportions (e.g. a reflection).',
        ('segmentation.hint_steps',),
    ),
    TaskTab(
        'Video',
        'configs/video.py',
        (('image', 'Clip (animated GIF)'),),
        (('fg.gif', 'foreground'), ('bg.gif', 'background'), ('mask.gif', 'mask')),
        ('fg', 'bg', 'mask'),
        'A short clip from a still camera as an animated GIF: moving foreground and background, as GIFs.',
    ),
)


def task_args(tab: TaskTab, files: dict[str, str], *, settings: dict[str, Any], extra: str = '') -> list[str]:
  """The `main.py` arguments (less --workdir) of a run of `tab` on `files` (config field -> path; none: the demo).

  Raises:
    cli.UsageError: some of the tab's files are given, not all; or `extra` does not split.
  """
  missing = [label for field, label in tab.inputs if not files.get(field)]
  if files and missing:
    raise cli.UsageError(f'give the {" and the ".join(missing).lower()} too (or no file, for the demo)')
  args = [f'--config={tab.config}'] + [
      f'--config.{field}={relative(files[field])}' for field, _ in tab.inputs if files.get(field)
  ]
  return args + _setting_args(settings, extra)

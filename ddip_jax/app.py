r"""A local web page for Double-DIP: paint hints on a photo, watch the run, download the layers.

  python -m ddip_jax.app [--port=7860] [--host=127.0.0.1] [--runs_dir=results/app]

Needs the optional dependencies of requirements-app.txt (Gradio). Tabs:
segmentation (strokes in two colours, or automatic hints drawn as strokes),
watermark (strokes over the watermark: their box is the hint), and dehazing,
transparency and video (files only; none: the config's demo).

The page runs exactly what the command line runs: each Run writes the photo
and the painted strokes as hint PNGs to a run folder (`<runs_dir>/<run>/input/`),
builds the config with the command line's own parser and checks
(`cli.parse`, `tasks.validate`) from the `main.py` arguments it shows,
and calls `api.run_config` (what `main.py` calls), into `<run>/output/`.
Progress and previews come from `engine.observe`; the Stop button stops the
run as Ctrl-C does, keeping the best result so far. One run at a time: runs
from other browser tabs wait in Gradio's queue.
"""

import argparse
from collections.abc import Callable, Generator
import contextlib
import dataclasses
import html
import json
import os
import shlex
import shutil
import sys
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
from PIL import Image

from ddip_jax import api
from ddip_jax import cli
from ddip_jax import config_check
from ddip_jax import engine
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
FG_COLOUR = (255, 0, 0)  # Brush colours: red strokes mark the foreground ...
BG_COLOUR = (0, 0, 255)  # ... blue ones the background.
# A painted pixel has at least this alpha (0-255): the brush's soft edge is not a stroke.
_STROKE_ALPHA = 64
# What a user may set on the page, with the config field each one overrides.
SETTINGS = (('num_steps', 'Steps (step 2)'), ('segmentation.hint_steps', 'Hint steps (step 1)'),
            ('seed', 'Seed'), ('restarts', 'Restarts'), ('max_side', 'Max side (px)'))
# Errors whose message is one line for the user, as main.py prints them.
USER_ERRORS = runner.RUN_ERRORS + (writing.OutputError, cli.UsageError)
_PREVIEW_SECONDS = 2.0  # Previews are fetched from the device at most this often.
# Metrics named in the status line of a finished run (those a run has).
_SHOWN_METRICS = ('best_recon_psnr', 'iou', 'foreground_fraction', 'recomposed_psnr', 'mean_psnr', 'mean_iou')


def strokes_to_hints(layers: list[np.ndarray], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
  """The fg and bg hints painted in the editor's layers.

  Args:
    layers: (H, W, 4) uint8 RGBA layers (the editor's `layers`), any number.
    shape: (H, W) of the photo; layers of another size are resized to it.

  Returns:
    (fg, bg): bool (H, W), where a stroke closer to red (fg) or blue (bg) than to the other is.
  """
  fg, bg = np.zeros(shape, bool), np.zeros(shape, bool)
  for layer in layers:
    layer = np.asarray(layer)
    if layer.ndim != 3 or layer.shape[-1] != 4:
      continue  # An RGB layer has no strokes of its own: it is the photo.
    if layer.shape[:2] != tuple(shape):
      layer = np.asarray(Image.fromarray(layer.astype(np.uint8)).resize(shape[::-1], Image.Resampling.NEAREST))
    rgb = layer[..., :3].astype(np.float32)
    painted = layer[..., 3] >= _STROKE_ALPHA
    to_fg = np.abs(rgb - FG_COLOUR).sum(-1)
    to_bg = np.abs(rgb - BG_COLOUR).sum(-1)
    fg |= painted & (to_fg < to_bg)
    bg |= painted & (to_bg < to_fg)
  return fg, bg


def hints_to_layer(fg: np.ndarray, bg: np.ndarray, *, alpha: int = 160) -> np.ndarray:
  """Hints (H, W) drawn as an RGBA stroke layer (fg red, bg blue; half transparent), for the editor."""
  layer = np.zeros((*fg.shape, 4), np.uint8)
  layer[fg > 0.5] = (*FG_COLOUR, alpha)
  layer[(bg > 0.5) & ~(fg > 0.5)] = (*BG_COLOUR, alpha)
  return layer


def rgba_cutout(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """The cut-out as a transparent image: (H, W, 3) in [0, 1] and a mask (H, W) -> (H, W, 4) uint8."""
  return np.concatenate([image_io.to_uint8(image), image_io.to_uint8(mask)[..., None]], -1)


def relative(path: str) -> str:
  """`path` relative to the repository when inside it: the form `main.py`, run from there, takes."""
  path = os.path.abspath(path)
  return os.path.relpath(path, REPO) if path.startswith(REPO + os.sep) else path


def segmentation_args(*, photo: str | None, fg_hint: str | None, bg_hint: str | None,
                      settings: dict[str, Any], extra: str = '') -> list[str]:
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
  """`--config.<field>=<value>` for the page's settings (None: the config's), then the extra arguments."""
  args = [f'--config.{field}={int(value)}' for field, value in settings.items() if value is not None and value != '']
  try:
    return args + shlex.split(extra or '')
  except ValueError as err:
    raise cli.UsageError(f'extra arguments {extra!r}: {err}') from err


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
  config_flags.DEFINE_config_file(cli.CONFIG_FLAG, None, 'Task config file.', flag_values=flag_values,
                                  lock_config=True, sys_argv=argv)
  cli.parse(argv, flag_values, default_config=PHOTO_CONFIG)
  config = flag_values[cli.CONFIG_FLAG].value
  tasks.validate(config)
  return config


@dataclasses.dataclass
class Snapshot:
  """What the page shows of a run in progress.

  Attributes:
    stage: the stage's name; stage_index its 1-based place in its optimisation.
    part: the 1-based count of optimisations run (restarts, video windows, dehazing passes).
    done, total: steps of the stage.
    psnr: the reconstruction PSNR at the last step (dB).
    rate: steps per second since the stage's first compiled call (None before).
    previews: layer name -> (H, W, C) float image of the best result so far.
  """

  stage: str = ''
  stage_index: int = 0
  part: int = 1
  done: int = 0
  total: int = 0
  psnr: float = float('nan')
  rate: float | None = None
  previews: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def describe(self) -> str:
    """One line: stage, step, PSNR, speed and ETA of the stage."""
    if not self.stage:
      return 'starting: loading the photo, hints, compiling the step (a minute on a CPU the first time)'
    part = f', optimisation {self.part}' if self.part > 1 else ''
    text = (f'stage {self.stage_index} ({self.stage}{part}): step {self.done}/{self.total}, '
            f'PSNR {self.psnr:.2f} dB')
    if self.rate:
      text += f', {self.rate:.1f} it/s, ETA {(self.total - self.done) / self.rate:.0f} s for this stage'
    return text


class Run:
  """One run of a task in a worker thread: `api.run_config`, as `main.py` calls it.

  The worker thread observes its `engine.optimize` calls (`engine.observe`)
  to keep a `Snapshot` and to stop when asked (`stop`).
  """

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    self.config, self.workdir = config, workdir
    self.snapshot = Snapshot()
    self.metrics: dict[str, Any] | None = None
    self.error: str | None = None  # One line for the user.
    self.stopped = False
    self._stop = threading.Event()
    self._lock = threading.Lock()
    self._stages: list[str] = []  # Of the current optimisation.
    self._part, self._done = 1, 0
    self._stage_start: tuple[float, int] = (0.0, 0)
    self._last_preview = 0.0
    self._thread = threading.Thread(target=self._work, name='ddip-run', daemon=True)

  def start(self) -> 'Run':
    self._thread.start()
    return self

  @property
  def stopping(self) -> bool:
    return self._stop.is_set()

  def stop(self) -> None:
    """Asks the run to stop after its current steps; it keeps the best result so far."""
    self._stop.set()

  def wait(self, seconds: float) -> bool:
    """Waits up to `seconds`; whether the run has ended."""
    self._thread.join(seconds)
    return not self._thread.is_alive()

  def _observe(self, stage: engine.Stage, done: int, state: engine.TrainState) -> str | None:
    now = time.monotonic()
    again = stage.name in self._stages[:-1] or (stage.name in self._stages[-1:] and done <= self._done)
    if again:  # A stage seen before, from its start: the next optimisation.
      self._stages, self._part = [], self._part + 1
    if stage.name not in self._stages[-1:]:
      self._stages.append(stage.name)
      self._stage_start = (now, done)  # After the first call: the compilation is not in the rate.
      self._last_preview = 0.0
    self._done = done
    started, first = self._stage_start
    snapshot = dataclasses.replace(self.snapshot, stage=stage.name, stage_index=len(self._stages), part=self._part,
                                   done=done, total=stage.num_steps,
                                   rate=(done - first) / (now - started) if done > first else None)
    if now - self._last_preview >= _PREVIEW_SECONDS or done == stage.num_steps:
      self._last_preview = now
      snapshot.psnr = float(state.psnr)
      snapshot.previews = {name: np.asarray(value)[0] for name, value in jax.device_get(state.best).items()}
    with self._lock:
      self.snapshot = snapshot
    return 'stop button' if self._stop.is_set() else None

  def _work(self) -> None:
    try:
      with engine.observe(self._observe):
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


def write_segmentation_inputs(folder: str, *, photo: str | None, layers: list[np.ndarray]) -> dict[str, str | None]:
  """Writes a segmentation run's inputs into `folder`/input: the photo (a copy) and the strokes as hint PNGs.

  Args:
    folder: the run folder.
    photo: the photo file chosen (None: the demo's, which its config names).
    layers: the editor's stroke layers.

  Returns:
    'photo', 'fg_hint', 'bg_hint': the paths written (None: not given).
  """
  paths = {'fg_hint': None, 'bg_hint': None}
  paths['photo'], shape = copy_photo(folder, photo, DEMO_CONFIG)
  fg, bg = strokes_to_hints(layers, shape)
  for name, hint in (('fg_hint', fg), ('bg_hint', bg)):
    if hint.any():
      paths[name] = os.path.join(folder, 'input', f'{name}.png')
      writing.save_image(paths[name], hint.astype(np.float32))
  return paths


def copy_photo(folder: str, photo: str | None, demo_config: str) -> tuple[str | None, tuple[int, int]]:
  """Copies `photo` into `folder`/input (the run folder holds what it ran on); returns its path and (H, W).

  None: the demo's photo, which `demo_config` names (not copied: that config's ground truth stays its own).
  """
  if not photo:
    return None, image_io.load_image(os.path.join(REPO, demo_image(demo_config))).shape[:2]
  path = os.path.join(folder, 'input', 'photo' + os.path.splitext(photo)[1].lower())
  shutil.copyfile(photo, path)
  return path, image_io.load_image(path).shape[:2]


def strokes_to_box(layers: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray | None:
  """The bounding box of every painted pixel as a hint (H, W): 1 inside; None when nothing is painted."""
  fg, bg = strokes_to_hints(layers, shape)
  rows, cols = np.nonzero(fg | bg)
  if not rows.size:
    return None
  box = np.zeros(shape, np.float32)
  box[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = 1.0
  return box


def _save_run_record(folder: str, command: str, config: ml_collections.ConfigDict) -> None:
  """`command.txt` and `config.json` in the run folder: how to make the same run again."""
  with open(os.path.join(folder, 'command.txt'), 'w') as f:
    f.write(command + '\n')
  with open(os.path.join(folder, 'config.json'), 'w') as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True) + '\n')


def demo_image(config_file: str = DEMO_CONFIG) -> str:
  """The demo's image path: its config file's."""
  return cli.load_config_file(os.path.join(REPO, config_file)).image


def automatic_hints(photo: np.ndarray, config_file: str) -> tuple[np.ndarray, np.ndarray]:
  """The automatic hints the task would start from, at the photo's size (see `hints.resolve_hints`).

  Args:
    photo: (H, W, 3) float in [0, 1].
    config_file: the config whose `max_side` and `segmentation.auto_hints` apply.

  Raises:
    image_io.InputError: nothing stands out of the photo, or it is too small.
  """
  config = cli.load_config_file(os.path.join(REPO, config_file))
  working, _ = image_io.working_image(photo, config.max_side, path='the photo',
                                         min_side=2 ** len(config.generator.channels_down))
  fg, bg, _ = hints_lib.resolve_hints(working, fg_path=None, bg_path=None, method=config.segmentation.auto_hints)
  return image_io.resize_image(fg, photo.shape[:2]) > 0.5, image_io.resize_image(bg, photo.shape[:2]) > 0.5


def result_images(run_folder: str, workdir: str, photo: str) -> dict[str, str]:
  """The finished run's images to show: fg, bg, mask and the transparent cut-out (written to the run folder)."""
  shown = {name: os.path.join(workdir, f'{name}.png') for name in ('fg', 'bg', 'mask')}
  full = image_io.load_image(photo)
  mask = image_io.load_mask(os.path.join(workdir, 'mask_binary.png'), shape=full.shape[:2])
  shown['cutout'] = os.path.join(run_folder, 'cutout.png')
  Image.fromarray(rgba_cutout(full, mask), 'RGBA').save(shown['cutout'])
  return {name: path for name, path in shown.items() if os.path.exists(path)}


# ---------------------------------------------------------------------------
# The page (Gradio is imported only here: the helpers above are tested without it).


def _preview(image: np.ndarray | None) -> np.ndarray | None:
  if image is None:
    return None
  image = np.asarray(image)
  return image_io.to_uint8(image[..., 0] if image.shape[-1] == 1 else image)


def _brush(shape: tuple[int, int], colours: tuple[tuple[int, int, int], ...]):
  """The editor's brush in `colours`, its size a fortieth of the photo's shorter side (Gradio's default is 25 px)."""
  import gradio as gr  # pylint: disable=g-import-not-at-top

  names = [f'rgb{colour}' for colour in colours]
  return gr.Brush(colors=names, default_color=names[0], color_mode='fixed', default_size=max(2, min(shape) // 40))


def _editor(photo: np.ndarray, colours: tuple[tuple[int, int, int], ...]):
  """The editor showing `photo` (H, W, 3) in [0, 1], with no strokes and a brush sized for it."""
  import gradio as gr  # pylint: disable=g-import-not-at-top

  return gr.ImageEditor(value={'background': image_io.to_uint8(photo), 'layers': [], 'composite': None},
                        brush=_brush(photo.shape[:2], colours))


def _progress_html(snapshot: Snapshot | None, text: str) -> str:
  """A line of text over a bar at the stage's fraction done."""
  fraction = snapshot.done / snapshot.total if snapshot and snapshot.total else 0.0
  return f'<div>{html.escape(text)}</div><progress value="{fraction:.3f}" max="1" style="width:100%"></progress>'


class _Tab:
  """What every tab does: start a run for a browser session, follow it, stop it."""

  def __init__(self, runs_dir: str, runs: dict[str, 'Run']):
    self.runs_dir = runs_dir
    self._runs = runs  # Browser session -> its run in progress (shared by the tabs: Stop stops it).

  def stop(self, session: str | None):
    run = self._runs.get(session)
    if run is None:
      return 'nothing is running'
    run.stop()
    return 'stopping after the current steps; the best result so far is kept'

  def follow(self, config: ml_collections.ConfigDict, workdir: str, session: str | None,
             previews: tuple[str, ...], form: Callable[[str, str, list[Any]], tuple[Any, ...]]
             ) -> Generator[tuple[Any, ...], None, 'Run']:
    """Runs `config` into `workdir`; every few seconds until it ends, yields the page's outputs.

    They are `form(status, progress, shown)`, `shown` the `previews` (gr.skip() for those not made yet).
    Returns the ended `Run` (`run = yield from ...`).
    """
    import gradio as gr  # pylint: disable=g-import-not-at-top

    run = self._runs[session] = Run(config, workdir).start()
    try:
      last = time.monotonic()
      while not run.wait(0.25):
        if time.monotonic() - last >= _PREVIEW_SECONDS:
          last = time.monotonic()
          snap = run.snapshot
          shown = [_preview(snap.previews.get(n)) for n in previews]
          yield form('running' + (' (stopping)' if run.stopping else ''), _progress_html(snap, snap.describe()),
                     [gr.skip() if image is None else image for image in shown])
    except GeneratorExit:  # The page was closed (Gradio cancels the event): nobody waits for the run.
      run.stop()
      raise
    finally:
      self._runs.pop(session, None)
    return run

  def run_and_show(self, folder: str, make_args: Callable[[], list[str]], session: str | None, *,
                   previews: tuple[str, ...], layers: list[str]):
    """Runs the `main.py` arguments `make_args()` (which writes the inputs to `folder`) into `folder`/output.

    Yields (status, progress, *previews, *layers, zip, command) for the page as it goes: the previews
    while it runs, then the output files named `layers` and the zip of the run folder.
    """
    import gradio as gr  # pylint: disable=g-import-not-at-top

    skip = gr.skip()
    quiet = [skip] * (len(previews) + len(layers) + 2)
    workdir = os.path.join(folder, 'output')
    try:
      args = make_args()
      command = command_line(args, workdir)
      config = parse_config(args)
    except USER_ERRORS as err:
      yield (f'error: {err}', _progress_html(None, ''), *quiet)
      return
    _save_run_record(folder, command, config)
    # The last run's results go, the command of this one shows.
    yield ('running', _progress_html(None, Snapshot().describe()), *[None] * (len(quiet) - 1), command)
    run = yield from self.follow(config, workdir, session, previews, lambda status, progress, shown: (
        status, progress, *shown, *quiet[len(shown):-1], command))
    if run.error:
      yield (f'error: {run.error}', _progress_html(None, ''), *quiet)
      return
    paths = [os.path.join(workdir, name) for name in layers]
    yield (_ended(run, workdir), _progress_html(run.snapshot, run.snapshot.describe()), *[skip] * len(previews),
           *(path if os.path.exists(path) else None for path in paths),
           zip_folder(folder, os.path.join(folder, 'outputs.zip')), command)


def _ended(run: 'Run', workdir: str) -> str:
  """The status line of an ended run that made a result."""
  metrics = run.metrics or {}
  scores = '  '.join(f'{k}={v:.4g}' for k, v in metrics.items()
                     if k in _SHOWN_METRICS and isinstance(v, (int, float)))
  return f'{"stopped: the best result so far" if run.stopped else "done"}: outputs in {relative(workdir)}/  ' + scores


class _PhotoTab(_Tab):
  """A tab whose photo is painted on in an editor: the photo comes from the file box or the demo config.

  Attributes:
    demo_config: the config whose own image is the demo.
    colours: the brush's colours.
    paint: what to paint, for the status line.
  """

  demo_config: str
  colours: tuple[tuple[int, int, int], ...]
  paint: str

  def load_photo(self, file: str | None):
    """The photo chosen in the file box, read as the command line reads it, into the editor."""
    import gradio as gr  # pylint: disable=g-import-not-at-top

    if not file:
      return gr.skip(), gr.skip(), ''
    try:
      photo = image_io.load_image(file)
    except image_io.InputError as err:
      return None, None, f'error: {err}'
    return (_editor(photo, self.colours), file,
            f'photo {os.path.basename(file)}: {photo.shape[1]}x{photo.shape[0]}; {self.paint}')

  def load_demo(self):
    """The demo into the editor (no photo file: the run uses the demo config's)."""
    path = demo_image(self.demo_config)
    return _editor(image_io.load_image(os.path.join(REPO, path)), self.colours), DEMO, f'demo {path}: {self.paint}'


class SegmentationPage(_PhotoTab):
  """The segmentation tab's event handlers."""

  demo_config = DEMO_CONFIG
  colours = (FG_COLOUR, BG_COLOUR)
  paint = 'paint the hints, or press Run for automatic hints'

  def auto_hints(self, editor: dict | None, source: str | None):
    """The automatic hints drawn as strokes on the photo, to correct before Run."""
    import gradio as gr  # pylint: disable=g-import-not-at-top

    background = (editor or {}).get('background')
    if background is None:
      return gr.skip(), 'error: upload a photo or pick the zebra first'
    rgb = np.asarray(background)[..., :3].astype(np.float32) / 255.0
    try:
      fg, bg = automatic_hints(rgb, DEMO_CONFIG if source == DEMO else PHOTO_CONFIG)
    except USER_ERRORS as err:
      return gr.skip(), f'error: {err}'
    editor = {'background': background, 'layers': [hints_to_layer(fg, bg)], 'composite': None}
    return editor, 'automatic hints drawn (red: foreground, blue: background): correct them, then Run'

  def run(self, editor: dict | None, source: str | None, settings: list[Any], extra: str, session: str | None):
    """Runs the segmentation; yields (status, progress, fg, bg, mask, cut-out, zip, command) as it goes.

    `settings` are the SETTINGS fields' values; `session` names the browser session (for Stop).
    """
    import gradio as gr  # pylint: disable=g-import-not-at-top

    skip = gr.skip()
    editor = editor or {}
    background = editor.get('background')

    def fail(message):
      return (f'error: {message}', _progress_html(None, ''), skip, skip, skip, skip, skip, skip)

    if source is None or background is None:
      yield fail('upload a photo or pick the zebra first')
      return
    folder = new_run_folder(self.runs_dir, 'segmentation')
    workdir = os.path.join(folder, 'output')
    try:
      paths = write_segmentation_inputs(folder, photo=None if source == DEMO else source,
                                        layers=list(editor.get('layers') or []))
      args = segmentation_args(photo=paths['photo'], fg_hint=paths['fg_hint'], bg_hint=paths['bg_hint'],
                               settings=dict(zip((f for f, _ in SETTINGS), settings)), extra=extra)
      command = command_line(args, workdir)
      config = parse_config(args)
    except USER_ERRORS as err:
      yield fail(err)
      return
    _save_run_record(folder, command, config)
    # The last run's results go, the command of this one shows.
    yield ('running', _progress_html(None, Snapshot().describe()), None, None, None, None, None, command)
    run = yield from self.follow(config, workdir, session, ('fg', 'bg', 'mask'), lambda status, progress, shown: (
        status, progress, *shown, skip, skip, command))
    if run.error:
      yield fail(run.error)
      return
    image = paths['photo'] or run.config.image
    try:
      images = result_images(folder, workdir, image)
    except image_io.InputError:  # Stopped before any result.
      yield ('stopped before any result', _progress_html(None, ''), skip, skip, skip, skip, skip, command)
      return
    archive = zip_folder(folder, os.path.join(folder, 'outputs.zip'))
    yield (_ended(run, workdir), _progress_html(run.snapshot, run.snapshot.describe()),
           *(images.get(n, skip) for n in ('fg', 'bg', 'mask', 'cutout')), archive, command)


class WatermarkPage(_PhotoTab):
  """The watermark tab: a photo, and strokes over its watermark whose bounding box is the hint."""

  demo_config = WATERMARK_CONFIG
  colours = (FG_COLOUR,)
  paint = 'paint over the watermark (the box around your strokes is the hint), then Run'
  previews = ('clean', 'watermark', 'mask')
  layers = ('clean.png', 'watermark.png', 'mask.png')

  def run(self, editor: dict | None, source: str | None, settings: list[Any], extra: str, session: str | None):
    """Runs the watermark removal; yields (status, progress, *previews, *layers, zip, command)."""
    folder = new_run_folder(self.runs_dir, 'watermark')

    def make_args():
      if source is None or (editor or {}).get('background') is None:
        raise cli.UsageError('upload a photo or pick the demo first')
      photo, shape = copy_photo(folder, None if source == DEMO else source, WATERMARK_CONFIG)
      box = strokes_to_box(list(editor.get('layers') or []), shape)
      args = [f'--config={WATERMARK_CONFIG}']
      if photo:
        if box is None:  # The config's own box is the demo's.
          raise cli.UsageError('paint over the watermark: the box around your strokes is the hint (watermark.hint)')
        args.append(f'--config.image={relative(photo)}')
      if box is not None:
        hint = os.path.join(folder, 'input', 'box.png')
        writing.save_image(hint, box)
        args.append(f'--config.watermark.hint={relative(hint)}')
      return args + _setting_args(dict(zip((f for f, _ in SETTINGS), settings)), extra)

    yield from self.run_and_show(folder, make_args, session, previews=self.previews, layers=list(self.layers))


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
  """

  title: str
  config: str
  inputs: tuple[tuple[str, str], ...]
  layers: tuple[tuple[str, str], ...]
  previews: tuple[str, ...]
  note: str


TASK_TABS = (
    TaskTab('Dehazing', 'configs/dehaze.py', (('image', 'Hazy photo'),),
            (('dehazed.png', 'dehazed'), ('transmission.png', 'transmission'), ('airlight.png', 'airlight')),
            ('clean', 'transmission'), 'One hazy photo: the haze-free image, the transmission map and the airlight.'),
    TaskTab('Transparency', 'configs/transparency.py',
            (('image', 'First mixture'), ('transparency.image2', 'Second mixture')),
            (('layer1.png', 'layer 1'), ('layer2.png', 'layer 2')), ('layer1', 'layer2'),
            'Two photos of the same two transparent layers mixed in other proportions (e.g. a reflection).'),
    TaskTab('Video', 'configs/video.py', (('image', 'Clip (animated GIF)'),),
            (('fg.gif', 'foreground'), ('bg.gif', 'background'), ('mask.gif', 'mask')), ('fg', 'bg', 'mask'),
            'A short clip from a still camera as an animated GIF: moving foreground and background, as GIFs.'),
)


def task_args(tab: TaskTab, files: dict[str, str], *, settings: dict[str, Any], extra: str = '') -> list[str]:
  """The `main.py` arguments (less --workdir) of a run of `tab` on `files` (config field -> path; none: the demo).

  Raises:
    cli.UsageError: some of the tab's files are given, not all; or `extra` does not split.
  """
  missing = [label for field, label in tab.inputs if not files.get(field)]
  if files and missing:
    raise cli.UsageError(f'give the {" and the ".join(missing).lower()} too (or no file, for the demo)')
  args = [f'--config={tab.config}'] + [f'--config.{field}={relative(files[field])}' for field, _ in tab.inputs
                                       if files.get(field)]
  return args + _setting_args(settings, extra)


class TaskPage(_Tab):
  """A `TaskTab`'s event handler."""

  def __init__(self, tab: TaskTab, runs_dir: str, runs: dict[str, 'Run']):
    super().__init__(runs_dir, runs)
    self.tab = tab

  def run(self, uploads: list[str | None], settings: list[Any], extra: str, session: str | None):
    """Runs the task; yields (status, progress, *previews, *layers, zip, command) as it goes."""
    tab = self.tab
    folder = new_run_folder(self.runs_dir, tab.config.rsplit('/', 1)[-1].removesuffix('.py'))

    def make_args():
      files = {}
      for (field, _), upload in zip(tab.inputs, uploads):
        if upload:  # A copy in the run folder: the run is reproducible from it.
          files[field] = os.path.join(folder, 'input', field.replace('.', '_') + os.path.splitext(upload)[1].lower())
          shutil.copyfile(upload, files[field])
      return task_args(tab, files, settings=dict(zip((f for f, _ in SETTINGS), settings)), extra=extra)

    yield from self.run_and_show(folder, make_args, session, previews=tab.previews,
                                 layers=[name for name, _ in tab.layers])


def _task_tab(tab: TaskTab, page: TaskPage, defaults: ml_collections.ConfigDict) -> None:
  """The widgets and events of a `TaskTab` (inside a `gr.Tab`)."""
  import gradio as gr  # pylint: disable=g-import-not-at-top

  key = tab.title.lower()
  gr.Markdown(tab.note + ' Give no file to run the demo.')
  with gr.Row():
    with gr.Column(scale=3):
      uploads = [gr.File(label=label, elem_id=f'{key}_{field.replace(".", "_")}', type='filepath', height=120)
                 for field, label in tab.inputs]
      with gr.Row():
        run_button = gr.Button('Run', variant='primary', elem_id=f'{key}_run')
        stop_button = gr.Button('Stop', variant='stop', elem_id=f'{key}_stop')
      settings, extra = _settings(defaults, key)
    outputs = _results_column(key, tab.previews, tab.layers)

  def run(values: dict, request: gr.Request):
    yield from page.run([values[u] for u in uploads], [values[c] for c in settings], values[extra],
                        request.session_hash)

  _connect(page, run, run_button, stop_button, {*uploads, *settings, extra}, outputs)


def _results_column(key: str, previews: tuple[str, ...], layers: tuple[tuple[str, str], ...]) -> list[Any]:
  """The right column: status, progress, previews, results, zip and command (the run's outputs, in order)."""
  import gradio as gr  # pylint: disable=g-import-not-at-top

  with gr.Column(scale=2):
    status = gr.Textbox(label='Status', elem_id=f'{key}_status', interactive=False)
    progress = gr.HTML(_progress_html(None, ''), elem_id=f'{key}_progress')
    with gr.Row():
      shown = [gr.Image(label=f'{name} (while it runs)', interactive=False, format='png', height=240)
               for name in previews]
    with gr.Row():
      results = [gr.Image(label=label, elem_id=f'{key}_{name.split(".")[0]}', interactive=False, type='filepath',
                          height=240) for name, label in layers]
    download = gr.File(label='All outputs (zip)', elem_id=f'{key}_zip', interactive=False)
    command = gr.Textbox(label='The same run from the command line', interactive=False)
  return [status, progress, *shown, *results, download, command]


def _connect(page: _Tab, run: Callable[..., Any], run_button: Any, stop_button: Any, inputs: set[Any],
             outputs: list[Any]) -> None:
  """Run (one at a time: others wait in the queue) and Stop (not queued: it must reach a running run)."""
  import gradio as gr  # pylint: disable=g-import-not-at-top

  def stop(request: gr.Request):
    return page.stop(request.session_hash)

  run_button.click(run, inputs=inputs, outputs=outputs, concurrency_limit=1, concurrency_id='run',
                   show_progress='minimal')
  stop_button.click(stop, outputs=outputs[0], queue=False)


def _watermark_tab(page: WatermarkPage, defaults: ml_collections.ConfigDict) -> None:
  """The widgets and events of the watermark tab (inside a `gr.Tab`)."""
  import gradio as gr  # pylint: disable=g-import-not-at-top

  gr.Markdown('A photo with a watermark: paint over the watermark (the box around your strokes is the hint), '
              'then Run; or pick the demo and Run.')
  source = gr.State(None)  # As the segmentation tab's.
  with gr.Row():
    with gr.Column(scale=3):
      with gr.Row():
        upload = gr.File(label='Photo (any image file)', elem_id='watermark_upload', type='filepath', height=120)
        demo_button = gr.Button('Demo', elem_id='watermark_demo', scale=0)
      editor = gr.ImageEditor(label='Paint over the watermark', elem_id='watermark_editor', type='numpy',
                              image_mode='RGBA', format='png', sources=(), layers=False, transforms=(),
                              brush=_brush((480, 640), page.colours), canvas_size=(640, 480))
      with gr.Row():
        run_button = gr.Button('Run', variant='primary', elem_id='watermark_run')
        stop_button = gr.Button('Stop', variant='stop', elem_id='watermark_stop')
      settings, extra = _settings(defaults, 'watermark')
    outputs = _results_column('watermark', page.previews, tuple((name, name[:-4]) for name in page.layers))
  upload.upload(page.load_photo, inputs=upload, outputs=[editor, source, outputs[0]])
  demo_button.click(page.load_demo, outputs=[editor, source, outputs[0]])

  def run(values: dict, request: gr.Request):
    yield from page.run(values[editor], values[source], [values[c] for c in settings], values[extra],
                        request.session_hash)

  _connect(page, run, run_button, stop_button, {editor, source, *settings, extra}, outputs)


def _settings(defaults: ml_collections.ConfigDict, key: str):
  """The Settings accordion: a number box per SETTINGS field (the config's value) and the extra overrides."""
  import gradio as gr  # pylint: disable=g-import-not-at-top

  with gr.Accordion('Settings', open=False, elem_id=f'{key}_settings'):
    settings = [gr.Number(value=config_check.get_field(defaults, field), label=label, precision=0,
                          elem_id=f'{key}_{field.replace(".", "_")}') for field, label in SETTINGS]
    extra = gr.Textbox(label='More config overrides (as on the command line)', elem_id=f'{key}_extra',
                       placeholder='--config.learning_rate=0.002')
  return settings, extra


def build(runs_dir: str):
  """The Gradio page (a `gr.Blocks`)."""
  import gradio as gr  # pylint: disable=g-import-not-at-top

  runs = {}
  page = SegmentationPage(runs_dir, runs)
  defaults = cli.load_config_file(os.path.join(REPO, PHOTO_CONFIG))
  with gr.Blocks(title='Double-DIP', analytics_enabled=False) as demo:
    gr.Markdown('# Double-DIP: decompose your own photo')
    # The photo's file or DEMO. Photos come only through the file box (read as main.py reads them, with
    # its messages) or the demo button: the editor's own upload would leave the file unknown.
    source = gr.State(None)
    with gr.Tab('Segmentation'):
      gr.Markdown('Upload a photo (or pick the zebra), paint a stroke or two **inside the object in red** and '
                  'on the **background in blue** (or press *Automatic hints* and correct them), then **Run**. '
                  'Without strokes the hints are automatic.')
      with gr.Row():
        with gr.Column(scale=3):
          with gr.Row():
            upload = gr.File(label='Photo (any image file)', elem_id='seg_upload', type='filepath', height=120)
            demo_button = gr.Button('Zebra demo', elem_id='seg_demo', scale=0)
          editor = gr.ImageEditor(
              label='Paint hints: red = foreground, blue = background', elem_id='seg_editor', type='numpy',
              image_mode='RGBA', format='png', sources=(), layers=False, transforms=(),
              brush=_brush((480, 640), SegmentationPage.colours),
              canvas_size=(640, 480))
          with gr.Row():
            auto_button = gr.Button('Automatic hints', elem_id='seg_auto')
            run_button = gr.Button('Run', variant='primary', elem_id='seg_run')
            stop_button = gr.Button('Stop', variant='stop', elem_id='seg_stop')
          settings, extra = _settings(defaults, 'seg')
          gr.Markdown('With painted hints a run is at most 200 + 200 steps (`segmentation.user_hint_steps`, '
                      '`user_num_steps`).')
        with gr.Column(scale=2):
          status = gr.Textbox(label='Status', elem_id='seg_status', interactive=False)
          progress = gr.HTML(_progress_html(None, ''), elem_id='seg_progress')
          with gr.Row():
            fg = gr.Image(label='foreground', elem_id='seg_fg', interactive=False, format='png')
            bg = gr.Image(label='background', elem_id='seg_bg', interactive=False, format='png')
          with gr.Row():
            mask = gr.Image(label='mask', elem_id='seg_mask', interactive=False, format='png')
            cutout = gr.Image(label='cut-out (transparent PNG)', elem_id='seg_cutout', interactive=False,
                              format='png', image_mode='RGBA')
          download = gr.File(label='All outputs (zip)', elem_id='seg_zip', interactive=False)
          command = gr.Textbox(label='The same run from the command line', elem_id='seg_command',
                               interactive=False)
    upload.upload(page.load_photo, inputs=upload, outputs=[editor, source, status])
    demo_button.click(page.load_demo, outputs=[editor, source, status])
    auto_button.click(page.auto_hints, inputs=[editor, source], outputs=[editor, status])

    def run(values: dict, request: gr.Request):
      yield from page.run(values[editor], values[source], [values[c] for c in settings], values[extra],
                          request.session_hash)

    _connect(page, run, run_button, stop_button, {editor, source, *settings, extra},
             [status, progress, fg, bg, mask, cutout, download, command])
    with gr.Tab('Watermark'):
      _watermark_tab(WatermarkPage(runs_dir, runs), cli.load_config_file(os.path.join(REPO, WATERMARK_CONFIG)))
    for tab in TASK_TABS:
      with gr.Tab(tab.title):
        _task_tab(tab, TaskPage(tab, runs_dir, runs), cli.load_config_file(os.path.join(REPO, tab.config)))
  return demo


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--host', default='127.0.0.1', help='Address to serve on (0.0.0.0: every interface).')
  parser.add_argument('--port', type=int, default=7860, help='Port to serve on (0: a free one).')
  parser.add_argument('--runs_dir', default='results/app', help='Folder of the runs made from the page.')
  args = parser.parse_args(argv)
  os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')  # A local page: no calls home.
  try:
    import gradio  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    print('error: the web app needs Gradio: pip install -r requirements-app.txt', file=sys.stderr)
    return 2
  runs_dir = os.path.abspath(args.runs_dir)
  # Config files import `configs.default` and name data by paths relative to the repository, as for main.py.
  os.chdir(REPO)
  if REPO not in sys.path:
    sys.path.insert(0, REPO)
  os.makedirs(runs_dir, exist_ok=True)
  demo = build(runs_dir)
  demo.queue(default_concurrency_limit=1)
  port = args.port or _free_port(args.host)
  try:
    demo.launch(server_name=args.host, server_port=port, prevent_thread_lock=True, quiet=True,
                allowed_paths=[runs_dir])
  except OSError as err:  # The port is taken, or the address is not this machine's.
    print(f'error: cannot serve on {args.host}:{port}: {err} (--port=0 picks a free port)', file=sys.stderr)
    return 2
  print(f'ddip_jax web app: {demo.local_url}  (runs in {runs_dir}; Ctrl-C quits)', flush=True)
  try:
    while True:
      time.sleep(3600)
  except KeyboardInterrupt:
    demo.close()
  return 0


def _free_port(host: str) -> int:
  import socket  # pylint: disable=g-import-not-at-top

  with contextlib.closing(socket.socket()) as sock:
    sock.bind((host, 0))
    return sock.getsockname()[1]


if __name__ == '__main__':
  sys.exit(main())

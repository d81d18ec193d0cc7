"""The web page's widgets (hint editor and brush, Settings boxes, results column, progress) and its tabs that run
`main.py`'s tasks (watermark, dehazing, transparency, video: `Tab`, a run in `app_runs.Run`).

Gradio is imported here (and `app` takes it from here): `gr` is None without it.
The Stop button stops a run as Ctrl-C does, keeping the best result so far. One run at a time:
runs from other browser tabs wait in Gradio's queue.
"""

from collections.abc import Callable
import html
import os
import shutil
import time
from typing import Any

import ml_collections
import numpy as np

from ddip_jax import app_runs
from ddip_jax import app_safety
from ddip_jax import app_strokes
from ddip_jax import cli
from ddip_jax import config_check
from ddip_jax import image_io

os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')  # A local page: no calls home (read on import).
try:
  import gradio as gr  # pylint: disable=g-import-not-at-top
except ImportError:  # `app.main` says so in one line.
  gr = None

EDITOR_SIDE = 1600  # The editor shows a photo at most this many pixels on its longer side.


def upload_folder() -> str:
  """Where Gradio puts the files uploaded to the page (the only files a request may name)."""
  from gradio import processing_utils  # pylint: disable=g-import-not-at-top

  return processing_utils.get_upload_folder()


def preview(image: np.ndarray | None) -> np.ndarray | None:
  """A layer (H, W[, 1 or 3]) in [0, 1] as the 8-bit picture a preview shows (None: none yet)."""
  if image is None:
    return None
  image = np.asarray(image)
  return image_io.to_uint8(image[..., 0] if image.shape[-1] == 1 else image)


def brush(shape: tuple[int, int], colours: tuple[tuple[int, int, int], ...]):
  """The editor's brush in `colours` on a canvas of `shape`: its size (about the radius) an eightieth of the shorter
  side, a line about 3% of it wide (Gradio's default, 25, paints a line 8% of the 480-px canvas wide)."""
  names = [f'rgb{colour}' for colour in colours]
  return gr.Brush(colors=names, default_color=names[0], color_mode='fixed', default_size=max(2, min(shape) // 80))


def editor(photo: np.ndarray, colours: tuple[tuple[int, int, int], ...], layer: np.ndarray | None = None):
  """The editor showing `photo` (H, W, 3) in [0, 1] fitted in its canvas (`app_strokes.CANVAS`), with a brush sized
  for it.

  The photo and `layer` are sent at the canvas's size, the photo fitted and
  centred (`app_strokes.to_canvas`): the editor places a layer against the
  canvas it was made with, so only canvas-sized layers land where they
  belong; strokes are read back from the same box (`app_strokes.strokes_to_hints`).

  Args:
    photo: the photo.
    colours: the brush's colours.
    layer: (H', W', 4) uint8 strokes on the photo, any size of its shape (e.g. `app_strokes.hints_to_layer` at the
      photo's size); None: none.
  """
  background = app_strokes.to_canvas(image_io.to_uint8(photo))
  layers = [] if layer is None else [app_strokes.to_canvas(layer, photo.shape[:2])]
  return gr.ImageEditor(
      value={'background': background, 'layers': layers, 'composite': None}, brush=brush(app_strokes.CANVAS, colours)
  )


def by_field(fields: tuple[tuple[str, str], ...], values: list[Any]) -> dict[str, Any]:
  """The Settings boxes' values (in `fields` order, e.g. `app_runs.SETTINGS`) as field -> value."""
  return dict(zip((field for field, _ in fields), values))


def progress_html(fraction: float | None, text: str) -> str:
  """A line of text over a bar at `fraction` done (None: empty)."""
  return (
      f'<div>{html.escape(text)}</div><progress value="{fraction or 0.0:.3f}" max="1" style="width:100%">' '</progress>'
  )


def results_column(key: str, previews: tuple[str, ...], layers: tuple[tuple[str, str], ...]) -> list[Any]:
  """The right column: status, progress, previews, results, zip and command (the run's outputs, in order)."""
  with gr.Column(scale=2):
    status = gr.Textbox(label='Status', elem_id=f'{key}_status', interactive=False)
    progress = gr.HTML(progress_html(None, ''), elem_id=f'{key}_progress')
    with gr.Row():
      shown = [
          gr.Image(label=f'{name} (while it runs)', interactive=False, format='png', height=240) for name in previews
      ]
    with gr.Row():
      results = [
          gr.Image(label=label, elem_id=f'{key}_{name.split(".")[0]}', interactive=False, type='filepath', height=240)
          for name, label in layers
      ]
    download = gr.File(label='All outputs (zip)', elem_id=f'{key}_zip', interactive=False)
    command = gr.Textbox(label='The same run from the command line', interactive=False)
  return [status, progress, *shown, *results, download, command]


def settings_boxes(
    defaults: ml_collections.ConfigDict,
    key: str,
    fields: tuple[tuple[str, str], ...] = app_runs.SETTINGS,
    *,
    hidden: tuple[str, ...] = (),
    values: dict[str, Any] | None = None,
):
  """The Settings accordion: a number box per field of `fields` (the config's value) and the extra overrides.

  Fields in `hidden` do nothing on this tab: their boxes are hidden and empty (None: the config's value), so
  every tab's Run takes the same inputs. `values` gives the boxes of fields that are not config fields.
  """
  values = values or {}
  with gr.Accordion('Settings', open=False, elem_id=f'{key}_settings'):
    settings = [
        gr.Number(
            value=None if field in hidden else values.get(field, config_check.get_field(defaults, field)),
            label=label,
            precision=0,
            visible=field not in hidden,
            elem_id=f'{key}_{field.replace(".", "_")}',
        )
        for field, label in fields
    ]
    extra = gr.Textbox(
        label='More config overrides (as on the command line)',
        elem_id=f'{key}_extra',
        placeholder='--config.learning_rate=0.002',
    )
  return settings, extra


class Tab:
  """What every tab does: start a run for a browser session, follow it, stop it."""

  def __init__(self, runs_dir: str, runs: dict[str, app_runs.Run], *, keep_s: float = 86400.0):
    self.runs_dir, self.keep_s = runs_dir, keep_s  # Run folders older than keep_s go when a run starts.
    self._runs = runs  # Browser session -> its run in progress (shared by the tabs: Stop stops it).

  def stop(self, session: str | None):
    run = self._runs.get(session)
    if run is None:
      return 'nothing is running'
    run.stop()
    return 'stopping after the current steps; the best result so far is kept'

  def run_and_show(
      self,
      folder: str,
      make_args: Callable[[], list[str]],
      session: str | None,
      *,
      previews: tuple[str, ...],
      layers: list[str],
  ):
    """Runs the `main.py` arguments `make_args()` (which writes the inputs to `folder`) into `folder`/output.

    Yields (status, progress, *previews, *layers, zip, command) for the page as it goes: every few seconds
    the previews made so far (gr.skip() for the others), then the output files named `layers` and the zip of
    the run folder.
    """
    skip = gr.skip()
    quiet = [skip] * (len(previews) + len(layers) + 2)
    workdir = os.path.join(folder, 'output')
    app_safety.prune_runs(self.runs_dir, self.keep_s)
    try:
      args = make_args()
      command = app_runs.command_line(args, workdir)
      config = app_runs.parse_config(args)
    except app_runs.USER_ERRORS as err:
      shutil.rmtree(folder, ignore_errors=True)  # A refused run leaves nothing behind.
      yield (f'error: {err}', progress_html(None, ''), *quiet)
      return
    app_runs.save_run_record(folder, command, config)
    # The last run's results go, the command of this one shows.
    yield ('running', progress_html(0.0, app_runs.Snapshot().describe()), *[None] * (len(quiet) - 1), command)
    run = self._runs[session] = app_runs.Run(config, workdir).start()
    try:
      last = time.monotonic()
      while not run.wait(0.25):
        if time.monotonic() - last >= app_runs.PREVIEW_SECONDS:
          last = time.monotonic()
          snap = run.snapshot
          shown = [preview(snap.previews.get(n)) for n in previews]
          yield (
              'running' + (' (stopping)' if run.stopping else ''),
              progress_html(snap.fraction, snap.describe()),
              *[skip if image is None else image for image in shown],
              *quiet[len(shown) : -1],
              command,
          )
    except GeneratorExit:  # The page was closed (Gradio cancels the event): nobody waits for the run.
      run.stop()
      raise
    finally:
      self._runs.pop(session, None)
    if run.error:
      shutil.rmtree(folder, ignore_errors=True)
      yield (f'error: {run.error}', progress_html(None, ''), *quiet)
      return
    paths = [os.path.join(workdir, name) for name in layers]
    if not any(os.path.exists(path) for path in paths):  # Stopped before any result.
      shutil.rmtree(folder, ignore_errors=True)
      yield ('stopped before any result', progress_html(None, ''), *quiet[:-1], command)
      return
    shown = [*[skip] * len(previews), *(path if os.path.exists(path) else None for path in paths)]
    yield (
        app_runs.ended(run),
        progress_html(run.snapshot.fraction, run.snapshot.describe()),
        *shown,
        app_runs.zip_folder(folder, os.path.join(folder, 'outputs.zip')),
        command,
    )


class PhotoTab(Tab):
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
    if not file:
      return gr.skip(), gr.skip(), ''
    try:
      file = app_safety.uploaded_file(file, upload_folder())
      photo = image_io.load_image(file)
    except (image_io.InputError, cli.UsageError) as err:
      return None, None, f'error: {err}'
    return (
        editor(photo, self.colours),
        file,
        f'photo {os.path.basename(file)}: {photo.shape[1]}x{photo.shape[0]}; {self.paint}',
    )

  def load_demo(self):
    """The demo into the editor (no photo file: the run uses the demo config's)."""
    path = app_runs.demo_image(self.demo_config)
    photo = image_io.load_image(os.path.join(app_runs.REPO, path))
    return editor(photo, self.colours), app_runs.DEMO, f'demo {path}: {self.paint}'


class WatermarkPage(PhotoTab):
  """The watermark tab: a photo, and strokes over its watermark whose bounding box is the hint."""

  demo_config = app_runs.WATERMARK_CONFIG
  colours = (app_strokes.FG_COLOUR,)
  paint = 'paint over the watermark (the box around your strokes is the hint), then Run'
  previews = ('clean', 'watermark', 'mask')
  layers = ('clean.png', 'watermark.png', 'mask.png')

  def run(self, editor: dict | None, source: str | None, settings: list[Any], extra: str, session: str | None):
    """Runs the watermark removal; yields (status, progress, *previews, *layers, zip, command)."""
    folder = app_runs.new_run_folder(self.runs_dir, 'watermark')

    def make_args():
      if source is None or (editor or {}).get('background') is None:
        raise cli.UsageError('upload a photo or pick the demo first')
      return app_runs.watermark_args(
          folder,
          photo=None if source == app_runs.DEMO else source,
          layers=list(editor.get('layers') or []),
          settings=by_field(app_runs.WATERMARK_SETTINGS, settings),
          extra=extra,
      )

    yield from self.run_and_show(folder, make_args, session, previews=self.previews, layers=list(self.layers))


class TaskPage(Tab):
  """A `TaskTab`'s event handler."""

  def __init__(self, tab: app_runs.TaskTab, runs_dir: str, runs: dict[str, app_runs.Run], *, keep_s: float):
    super().__init__(runs_dir, runs, keep_s=keep_s)
    self.tab = tab

  def run(self, uploads: list[str | None], settings: list[Any], extra: str, session: str | None):
    """Runs the task; yields (status, progress, *previews, *layers, zip, command) as it goes."""
    tab = self.tab
    folder = app_runs.new_run_folder(self.runs_dir, tab.config.rsplit('/', 1)[-1].removesuffix('.py'))

    def make_args():
      files = {}
      for (field, _), upload in zip(tab.inputs, uploads):
        upload = app_safety.uploaded_file(upload, upload_folder())
        if upload:  # A copy in the run folder: the run is reproducible from it.
          files[field] = os.path.join(folder, 'input', field.replace('.', '_') + os.path.splitext(upload)[1].lower())
          shutil.copyfile(upload, files[field])
      return app_runs.task_args(tab, files, settings=by_field(app_runs.SETTINGS, settings), extra=extra)

    yield from self.run_and_show(
        folder, make_args, session, previews=tab.previews, layers=[name for name, _ in tab.layers]
    )


def task_tab(tab: app_runs.TaskTab, page: TaskPage, defaults: ml_collections.ConfigDict) -> None:
  """The widgets and events of a `TaskTab` (inside a `gr.Tab`)."""
  key = tab.title.lower()
  gr.Markdown(tab.note + ' Give no file to run the demo.')
  with gr.Row():
    with gr.Column(scale=3):
      uploads = [
          gr.File(label=label, elem_id=f'{key}_{field.replace(".", "_")}', type='filepath', height=120)
          for field, label in tab.inputs
      ]
      with gr.Row():
        run_button = gr.Button('Run', variant='primary', elem_id=f'{key}_run')
        stop_button = gr.Button('Stop', variant='stop', elem_id=f'{key}_stop')
      settings, extra = settings_boxes(defaults, key, hidden=tab.hidden)
    outputs = results_column(key, tab.previews, tab.layers)

  def run(values: dict, request: gr.Request):
    yield from page.run(
        [values[u] for u in uploads], [values[c] for c in settings], values[extra], request.session_hash
    )

  connect(page, run, run_button, stop_button, {*uploads, *settings, extra}, outputs)


def connect(
    page: Tab, run: Callable[..., Any], run_button: Any, stop_button: Any, inputs: set[Any], outputs: list[Any]
) -> None:
  """Run (one at a time: others wait in the queue) and Stop (not queued: it must reach a running run)."""

  def stop(request: gr.Request):
    return page.stop(request.session_hash)

  run_button.click(
      run, inputs=inputs, outputs=outputs, concurrency_limit=1, concurrency_id='run', show_progress='minimal'
  )
  stop_button.click(stop, outputs=outputs[0], queue=False)


def stroke_editor(label: str, elem_id: str, colours: tuple[tuple[int, int, int], ...]) -> 'gr.ImageEditor':
  """A tab's stroke editor: the photo as its background, strokes in `colours` on the fixed canvas, no upload of
  its own (photos come through the tab's file box, read as main.py reads them)."""
  return gr.ImageEditor(
      label=label,
      elem_id=elem_id,
      type='numpy',
      image_mode='RGBA',
      format='png',
      sources=(),
      layers=False,
      transforms=(),
      brush=brush(app_strokes.CANVAS, colours),
      canvas_size=app_strokes.CANVAS[::-1],
  )


def watermark_tab(page: WatermarkPage, defaults: ml_collections.ConfigDict) -> None:
  """The widgets and events of the watermark tab (inside a `gr.Tab`)."""
  gr.Markdown(
      'A photo with a watermark: paint over the watermark (the box around your strokes is the hint), '
      'then Run; or pick the demo and Run.'
  )
  source = gr.State(None)  # As the segmentation tab's.
  with gr.Row():
    with gr.Column(scale=3):
      with gr.Row():
        upload = gr.File(label='Photo (any image file)', elem_id='watermark_upload', type='filepath', height=120)
        demo_button = gr.Button('Demo', elem_id='watermark_demo', scale=0)
      editor = stroke_editor('Paint over the watermark', 'watermark_editor', page.colours)
      with gr.Row():
        run_button = gr.Button('Run', variant='primary', elem_id='watermark_run')
        stop_button = gr.Button('Stop', variant='stop', elem_id='watermark_stop')
      settings, extra = settings_boxes(defaults, 'watermark', app_runs.WATERMARK_SETTINGS)
    outputs = results_column('watermark', page.previews, tuple((name, name[:-4]) for name in page.layers))
  upload.upload(page.load_photo, inputs=upload, outputs=[editor, source, outputs[0]])
  demo_button.click(page.load_demo, outputs=[editor, source, outputs[0]])

  def run(values: dict, request: gr.Request):
    yield from page.run(
        values[editor], values[source], [values[c] for c in settings], values[extra], request.session_hash
    )

  connect(page, run, run_button, stop_button, {editor, source, *settings, extra}, outputs)

r"""A local web page for Double-DIP: paint hints on a photo, watch the run, download the layers.

  python -m ddip_jax.app [--port=7860] [--host=127.0.0.1] [--runs_dir=results/app]

Needs the optional dependencies of requirements-app.txt (Gradio). Tabs:
segmentation (strokes in two colours, or automatic hints drawn as strokes),
watermark (strokes over the watermark: their box is the hint), and dehazing,
transparency and video (files only; none: the config's demo).

The page's layout and events; its widgets are `app_widgets`'s (where Gradio is imported), a run and its
files `app_runs`'s.
The Stop button stops the run as Ctrl-C does, keeping the best result so far. One run at a time:
runs from other browser tabs wait in Gradio's queue.
"""

import argparse
from collections.abc import Callable
import contextlib
import os
import shutil
import sys
import time
from typing import Any

import ml_collections
import numpy as np

from ddip_jax import app_runs
from ddip_jax import app_safety
from ddip_jax import app_widgets
from ddip_jax import cli
from ddip_jax import image_io

gr = app_widgets.gr  # None without Gradio: `main` says so in one line.


class _Tab:
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

  def run_and_show(self, folder: str, make_args: Callable[[], list[str]], session: str | None, *,
                   previews: tuple[str, ...], layers: list[str],
                   results: Callable[[app_runs.Run, str], list[Any]] | None = None):
    """Runs the `main.py` arguments `make_args()` (which writes the inputs to `folder`) into `folder`/output.

    Yields (status, progress, *previews, *layers, zip, command) for the page as it goes: every few seconds
    the previews made so far (gr.skip() for the others), then the output files named `layers` and the zip of
    the run folder. `results(run, workdir)`, if given, is what the ended run shows instead of (*previews,
    *layers) (image_io.InputError: no result).
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
      yield (f'error: {err}', app_widgets.progress_html(None, ''), *quiet)
      return
    app_runs.save_run_record(folder, command, config)
    # The last run's results go, the command of this one shows.
    yield ('running', app_widgets.progress_html(None, app_runs.Snapshot().describe()), *[None] * (len(quiet) - 1),
           command)
    run = self._runs[session] = app_runs.Run(config, workdir).start()
    try:
      last = time.monotonic()
      while not run.wait(0.25):
        if time.monotonic() - last >= app_runs.PREVIEW_SECONDS:
          last = time.monotonic()
          snap = run.snapshot
          shown = [app_widgets.preview(snap.previews.get(n)) for n in previews]
          yield ('running' + (' (stopping)' if run.stopping else ''), app_widgets.progress_html(snap, snap.describe()),
                 *[skip if image is None else image for image in shown], *quiet[len(shown):-1], command)
    except GeneratorExit:  # The page was closed (Gradio cancels the event): nobody waits for the run.
      run.stop()
      raise
    finally:
      self._runs.pop(session, None)
    if run.error:
      shutil.rmtree(folder, ignore_errors=True)
      yield (f'error: {run.error}', app_widgets.progress_html(None, ''), *quiet)
      return
    paths = [os.path.join(workdir, name) for name in layers]
    try:
      shown = results(run, workdir) if results else [*[skip] * len(previews),
                                                      *(path if os.path.exists(path) else None for path in paths)]
    except image_io.InputError:  # Stopped before any result.
      shutil.rmtree(folder, ignore_errors=True)
      yield ('stopped before any result', app_widgets.progress_html(None, ''), *quiet[:-1], command)
      return
    yield (app_runs.ended(run, workdir), app_widgets.progress_html(run.snapshot, run.snapshot.describe()), *shown,
           app_runs.zip_folder(folder, os.path.join(folder, 'outputs.zip')), command)


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
    if not file:
      return gr.skip(), gr.skip(), ''
    try:
      file = app_safety.uploaded_file(file, app_widgets.upload_folder())
      photo = image_io.load_image(file)
    except (image_io.InputError, cli.UsageError) as err:
      return None, None, f'error: {err}'
    return (app_widgets.editor(photo, self.colours), file,
            f'photo {os.path.basename(file)}: {photo.shape[1]}x{photo.shape[0]}; {self.paint}')

  def load_demo(self):
    """The demo into the editor (no photo file: the run uses the demo config's)."""
    path = app_runs.demo_image(self.demo_config)
    photo = image_io.load_image(os.path.join(app_runs.REPO, path))
    return app_widgets.editor(photo, self.colours), app_runs.DEMO, f'demo {path}: {self.paint}'


class SegmentationPage(_PhotoTab):
  """The segmentation tab's event handlers."""

  demo_config = app_runs.DEMO_CONFIG
  colours = (app_runs.FG_COLOUR, app_runs.BG_COLOUR)
  paint = 'paint the hints, or press Run for automatic hints'

  def auto_hints(self, editor: dict | None, source: str | None, settings: list[Any], extra: str):
    """The automatic hints, found as Run would (page settings and overrides), drawn as strokes to correct."""
    background = (editor or {}).get('background')
    if background is None or source is None:
      return gr.skip(), 'error: upload a photo or pick the zebra first'
    rgb = np.asarray(background)[..., :3].astype(np.float32) / 255.0
    try:
      fg, bg = app_runs.automatic_hints(rgb, app_runs.segmentation_args(
          photo=None if source == app_runs.DEMO else source, fg_hint=None, bg_hint=None,
          settings=app_widgets.by_field(settings), extra=extra))
    except app_runs.USER_ERRORS as err:
      return gr.skip(), f'error: {err}'
    editor = {'background': background, 'layers': [app_runs.hints_to_layer(fg, bg)], 'composite': None}
    return editor, 'automatic hints drawn (red: foreground, blue: background): correct them, then Run'

  def run(self, editor: dict | None, source: str | None, settings: list[Any], extra: str, session: str | None):
    """Runs the segmentation; yields (status, progress, fg, bg, mask, cut-out, zip, command) as it goes.

    `settings` are the SETTINGS fields' values; `session` names the browser session (for Stop).
    """
    editor = editor or {}
    if source is None or editor.get('background') is None:
      yield ('error: upload a photo or pick the zebra first', app_widgets.progress_html(None, ''), *[gr.skip()] * 6)
      return
    folder = app_runs.new_run_folder(self.runs_dir, 'segmentation')
    paths = {}

    def make_args():
      paths.update(app_runs.write_segmentation_inputs(folder, photo=None if source == app_runs.DEMO else source,
                                                      layers=list(editor.get('layers') or [])))
      return app_runs.segmentation_args(photo=paths['photo'], fg_hint=paths['fg_hint'], bg_hint=paths['bg_hint'],
                                        settings=app_widgets.by_field(settings), extra=extra)

    def results(run, workdir):
      images = app_runs.result_images(folder, workdir, paths['photo'] or run.config.image)
      return [images.get(name, gr.skip()) for name in ('fg', 'bg', 'mask', 'cutout')]

    yield from self.run_and_show(folder, make_args, session, previews=('fg', 'bg', 'mask'), layers=['cutout'],
                                 results=results)


class WatermarkPage(_PhotoTab):
  """The watermark tab: a photo, and strokes over its watermark whose bounding box is the hint."""

  demo_config = app_runs.WATERMARK_CONFIG
  colours = (app_runs.FG_COLOUR,)
  paint = 'paint over the watermark (the box around your strokes is the hint), then Run'
  previews = ('clean', 'watermark', 'mask')
  layers = ('clean.png', 'watermark.png', 'mask.png')

  def run(self, editor: dict | None, source: str | None, settings: list[Any], extra: str, session: str | None):
    """Runs the watermark removal; yields (status, progress, *previews, *layers, zip, command)."""
    folder = app_runs.new_run_folder(self.runs_dir, 'watermark')

    def make_args():
      if source is None or (editor or {}).get('background') is None:
        raise cli.UsageError('upload a photo or pick the demo first')
      return app_runs.watermark_args(folder, photo=None if source == app_runs.DEMO else source,
                                     layers=list(editor.get('layers') or []),
                                     settings=app_widgets.by_field(settings), extra=extra)

    yield from self.run_and_show(folder, make_args, session, previews=self.previews, layers=list(self.layers))


class TaskPage(_Tab):
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
        upload = app_safety.uploaded_file(upload, app_widgets.upload_folder())
        if upload:  # A copy in the run folder: the run is reproducible from it.
          files[field] = os.path.join(folder, 'input', field.replace('.', '_') + os.path.splitext(upload)[1].lower())
          shutil.copyfile(upload, files[field])
      return app_runs.task_args(tab, files, settings=app_widgets.by_field(settings),
                                extra=extra)

    yield from self.run_and_show(folder, make_args, session, previews=tab.previews,
                                 layers=[name for name, _ in tab.layers])


def _task_tab(tab: app_runs.TaskTab, page: TaskPage, defaults: ml_collections.ConfigDict) -> None:
  """The widgets and events of a `TaskTab` (inside a `gr.Tab`)."""
  key = tab.title.lower()
  gr.Markdown(tab.note + ' Give no file to run the demo.')
  with gr.Row():
    with gr.Column(scale=3):
      uploads = [gr.File(label=label, elem_id=f'{key}_{field.replace(".", "_")}', type='filepath', height=120)
                 for field, label in tab.inputs]
      with gr.Row():
        run_button = gr.Button('Run', variant='primary', elem_id=f'{key}_run')
        stop_button = gr.Button('Stop', variant='stop', elem_id=f'{key}_stop')
      settings, extra = app_widgets.settings_boxes(defaults, key)
    outputs = app_widgets.results_column(key, tab.previews, tab.layers)

  def run(values: dict, request: gr.Request):
    yield from page.run([values[u] for u in uploads], [values[c] for c in settings], values[extra],
                        request.session_hash)

  _connect(page, run, run_button, stop_button, {*uploads, *settings, extra}, outputs)


def _connect(page: _Tab, run: Callable[..., Any], run_button: Any, stop_button: Any, inputs: set[Any],
             outputs: list[Any]) -> None:
  """Run (one at a time: others wait in the queue) and Stop (not queued: it must reach a running run)."""
  def stop(request: gr.Request):
    return page.stop(request.session_hash)

  run_button.click(run, inputs=inputs, outputs=outputs, concurrency_limit=1, concurrency_id='run',
                   show_progress='minimal')
  stop_button.click(stop, outputs=outputs[0], queue=False)


def _watermark_tab(page: WatermarkPage, defaults: ml_collections.ConfigDict) -> None:
  """The widgets and events of the watermark tab (inside a `gr.Tab`)."""
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
                              brush=app_widgets.brush((480, 640), page.colours), canvas_size=(640, 480))
      with gr.Row():
        run_button = gr.Button('Run', variant='primary', elem_id='watermark_run')
        stop_button = gr.Button('Stop', variant='stop', elem_id='watermark_stop')
      settings, extra = app_widgets.settings_boxes(defaults, 'watermark')
    outputs = app_widgets.results_column('watermark', page.previews, tuple((name, name[:-4]) for name in page.layers))
  upload.upload(page.load_photo, inputs=upload, outputs=[editor, source, outputs[0]])
  demo_button.click(page.load_demo, outputs=[editor, source, outputs[0]])

  def run(values: dict, request: gr.Request):
    yield from page.run(values[editor], values[source], [values[c] for c in settings], values[extra],
                        request.session_hash)

  _connect(page, run, run_button, stop_button, {editor, source, *settings, extra}, outputs)


def build(runs_dir: str, *, keep_hours: float = 24.0):
  """The Gradio page (a `gr.Blocks`)."""
  runs = {}
  keep_s = keep_hours * 3600
  page = SegmentationPage(runs_dir, runs, keep_s=keep_s)
  defaults = cli.load_config_file(os.path.join(app_runs.REPO, app_runs.PHOTO_CONFIG))
  # Gradio deletes its uploads and cached images older than `keep_hours`, checking every hour.
  cache_age = int(keep_hours * 3600) if keep_hours > 0 else None
  with gr.Blocks(title='Double-DIP', analytics_enabled=False,
                 delete_cache=(3600, cache_age) if cache_age else None) as demo:
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
              brush=app_widgets.brush((480, 640), SegmentationPage.colours),
              canvas_size=(640, 480))
          with gr.Row():
            auto_button = gr.Button('Automatic hints', elem_id='seg_auto')
            run_button = gr.Button('Run', variant='primary', elem_id='seg_run')
            stop_button = gr.Button('Stop', variant='stop', elem_id='seg_stop')
          settings, extra = app_widgets.settings_boxes(defaults, 'seg')
          gr.Markdown('With painted hints a run is at most 200 + 200 steps (`segmentation.user_hint_steps`, '
                      '`user_num_steps`).')
        with gr.Column(scale=2):
          status = gr.Textbox(label='Status', elem_id='seg_status', interactive=False)
          progress = gr.HTML(app_widgets.progress_html(None, ''), elem_id='seg_progress')
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
    auto_button.click(lambda photo, kind, *values: page.auto_hints(photo, kind, list(values[:-1]), values[-1]),
                      inputs=[editor, source, *settings, extra], outputs=[editor, status])

    def run(values: dict, request: gr.Request):
      yield from page.run(values[editor], values[source], [values[c] for c in settings], values[extra],
                          request.session_hash)

    _connect(page, run, run_button, stop_button, {editor, source, *settings, extra},
             [status, progress, fg, bg, mask, cutout, download, command])
    with gr.Tab('Watermark'):
      _watermark_tab(WatermarkPage(runs_dir, runs, keep_s=keep_s),
                     cli.load_config_file(os.path.join(app_runs.REPO, app_runs.WATERMARK_CONFIG)))
    for tab in app_runs.TASK_TABS:
      with gr.Tab(tab.title):
        _task_tab(tab, TaskPage(tab, runs_dir, runs, keep_s=keep_s), cli.load_config_file(os.path.join(app_runs.REPO, tab.config)))
  return demo


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--host', default='127.0.0.1',
                      help='Address to serve on; beyond this machine (e.g. 0.0.0.0) only with --allow_remote.')
  parser.add_argument('--allow_remote', action='store_true',
                      help='Serve on an address other machines reach (set DDIP_APP_AUTH=user:password for a login).')
  parser.add_argument('--port', type=int, default=7860, help='Port to serve on (0: a free one).')
  parser.add_argument('--runs_dir', default='results/app', help='Folder of the runs made from the page.')
  parser.add_argument('--max_upload_mb', type=float, default=50.0, help='Largest file the page takes (MB).')
  parser.add_argument('--keep_hours', type=float, default=24.0,
                      help='Run folders and uploads older than this are deleted (0: kept).')
  args = parser.parse_args(argv)
  if gr is None:
    print('error: the web app needs Gradio: pip install -r requirements-app.txt', file=sys.stderr)
    return 2
  try:
    auth = app_safety.auth_from_env(os.environ.get('DDIP_APP_AUTH'))
  except cli.UsageError as err:
    print(f'error: {err}', file=sys.stderr)
    return 2
  if not app_safety.is_loopback(args.host):
    if not args.allow_remote:
      print(f'error: --host={args.host} serves other machines too: add --allow_remote if you mean it '
            '(and set DDIP_APP_AUTH=user:password for a login)', file=sys.stderr)
      return 2
    print(f'warning: serving on {args.host}: anyone who reaches this port can run decompositions on this machine'
          + ('' if auth else ' (no login: set DDIP_APP_AUTH=user:password)'), file=sys.stderr, flush=True)
  runs_dir = os.path.abspath(args.runs_dir)
  # Config files import `configs.default` and name data by paths relative to the repository, as for main.py.
  os.chdir(app_runs.REPO)
  if app_runs.REPO not in sys.path:
    sys.path.insert(0, app_runs.REPO)
  os.makedirs(runs_dir, exist_ok=True)
  app_safety.prune_runs(runs_dir, args.keep_hours * 3600)
  demo = build(runs_dir, keep_hours=args.keep_hours)
  demo.queue(default_concurrency_limit=1)
  port = args.port or _free_port(args.host)
  try:
    # share=False whatever GRADIO_SHARE says: the page never opens a public link.
    demo.launch(server_name=args.host, server_port=port, prevent_thread_lock=True, quiet=True, share=False,
                auth=auth, allowed_paths=[runs_dir], max_file_size=int(args.max_upload_mb * 2**20))
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

r"""A local web page for Double-DIP: paint hints on a photo, watch the run, download the layers.

  python -m ddip_jax.app [--port=7860] [--host=127.0.0.1] [--runs_dir=results/app]

Needs the optional dependencies of requirements-app.txt (Gradio). Tabs:
segmentation (strokes in two colours, or automatic hints drawn as strokes: an
interactive cut-out in memory, `app_cutout`), watermark (strokes over the
watermark: their box is the hint), and dehazing, transparency and video (files
only; none: the config's demo).

The segmentation tab and the page; the other tabs and the widgets are `app_widgets`'s (where Gradio is
imported), a run of `main.py`'s and its files `app_runs`'s.
"""

import argparse
import contextlib
import os
import sys
import time
from typing import Any

import ml_collections
import numpy as np

from ddip_jax import app_cutout
from ddip_jax import app_runs
from ddip_jax import app_safety
from ddip_jax import app_strokes
from ddip_jax import app_widgets
from ddip_jax import cli
from ddip_jax import cutout as cutout_lib
from ddip_jax import image_io

gr = app_widgets.gr  # None without Gradio: `main` says so in one line.


class SegmentationPage(app_widgets.PhotoTab):
  """The segmentation tab: a cut-out per browser session (`app_cutout`), previewed on every stroke.

  The first Run gives the first result; each later Run continues it with the editor's strokes (a correction).
  Another photo, or other settings, start a new cut-out.
  """

  demo_config = app_runs.DEMO_CONFIG
  colours = (app_strokes.FG_COLOUR, app_strokes.BG_COLOUR)
  paint = (
      'paint a stroke inside the object in red and one on the background in blue (or press Automatic hints), '
      'then Run'
  )

  def __init__(self, runs_dir: str, runs: dict[str, Any], *, keep_s: float = 86400.0):
    super().__init__(runs_dir, runs, keep_s=keep_s)
    self.sessions = app_cutout.Sessions()

  def load_photo(self, file: str | None, request: 'gr.Request'):  # pylint: disable=arguments-differ
    """As `PhotoTab.load_photo`; the browser session's cut-out goes, and what it showed."""
    self.sessions.drop(request.session_hash)
    shown = super().load_photo(file)
    self._compile_ahead(shown[1])
    return *shown, None, None, None

  def load_demo(self, request: 'gr.Request'):  # pylint: disable=arguments-differ
    self.sessions.drop(request.session_hash)
    shown = super().load_demo()
    self._compile_ahead(shown[1])
    return *shown, None, None, None

  def _compile_ahead(self, source: Any) -> None:
    """Compiles the first result's step for this photo with the page's default settings while the user paints
    (`Cutout.compile_ahead`): most of a cold first result's wait on a CPU."""
    if not isinstance(source, str):
      return
    try:
      path, config, _ = self._config(source, [None] * len(app_cutout.SETTINGS), '')
      cutout_lib.Cutout(image_io.load_image(path), config=config).compile_ahead()
    except app_runs.USER_ERRORS:  # Run says what is wrong.
      pass

  def _session(self, source: str, settings: list[Any], extra: str, session: str | None) -> app_cutout.Session:
    """The browser session's cut-out of this photo with these settings (kept, or new)."""
    return app_cutout.session_for(self.sessions, session, *self._config(source, settings, extra))

  @staticmethod
  def _automatic(photo: np.ndarray, config: ml_collections.ConfigDict) -> np.ndarray:
    """The automatic hints of the photo (H, W, 3) in [0, 1] as a stroke layer on it (H, W, 4)."""
    return app_strokes.hints_to_layer(*app_runs.automatic_hints(photo, config))

  @staticmethod
  def _config(source: str, settings: list[Any], extra: str) -> tuple[str, ml_collections.ConfigDict, int]:
    """The photo's path, the cut-out's config and its correction steps (`app_cutout.cutout_config`)."""
    path = os.path.join(app_runs.REPO, app_runs.demo_image()) if source == app_runs.DEMO else source
    return path, *app_cutout.cutout_config(path, app_widgets.by_field(app_cutout.SETTINGS, settings), extra)

  def auto_hints(self, editor: dict | None, source: str | None, settings: list[Any], extra: str):
    """The automatic hints, found as a run would (page settings and overrides), drawn as strokes to correct."""
    background = (editor or {}).get('background')
    if background is None or source is None:
      return gr.skip(), 'error: upload a photo or pick the zebra first'
    try:
      path, config, _ = self._config(source, settings, extra)
      photo = image_io.load_image(path)
      layer = self._automatic(photo, config)
    except app_runs.USER_ERRORS as err:
      return gr.skip(), f'error: {err}'
    return (
        app_widgets.editor(photo, self.colours, layer),
        'automatic hints drawn (red: object, blue: background): correct them, then Run',
    )

  def preview(self, editor: dict | None, source: str | None, settings: list[Any], extra: str, session: str | None):
    """The mask the editor's strokes give by hint growth alone, on the photo (a fraction of a second)."""
    editor = editor or {}
    if editor.get('background') is None or source is None:
      return gr.skip()
    try:
      state = self._session(source, settings, extra, session)
      fg, bg = app_strokes.strokes_to_hints(list(editor.get('layers') or []), state.cut.photo.shape[:2])
      mask = state.cut.preview(fg=fg, bg=bg, replace=True) if fg.any() or bg.any() else None
    except app_runs.USER_ERRORS:  # Run says what is wrong.
      return gr.skip()
    return _shown(app_cutout.overlay(state.cut.photo, mask))

  def soft_edge(self, soft: bool, session: str | None):
    """The cut-out shown and downloaded with the soft edge or the mask as its alpha."""
    state = self.sessions.get(session)
    if state is None or state.last is None:
      return gr.skip(), gr.skip()
    return self._cutout(state, soft), app_cutout.downloads(state.last, soft)

  @staticmethod
  def _cutout(state: app_cutout.Session, soft: bool) -> np.ndarray:
    result = state.cut.result
    rgba = app_cutout.rgba_cutout(state.cut.photo, result.alpha if soft else result.mask)
    return _shown(app_cutout.on_checkerboard(rgba))

  def run(
      self, editor: dict | None, source: str | None, settings: list[Any], extra: str, soft: bool, session: str | None
  ):
    """The first result, or a correction; yields (status, progress, editor, overlay, cut-out, fg, bg, files).

    `settings` are the SETTINGS fields' values; `session` names the browser session (its cut-out, Stop).
    """
    skip = gr.skip()
    editor = editor or {}
    if source is None or editor.get('background') is None:
      yield ('error: upload a photo or pick the zebra first', app_widgets.progress_html(None, ''), *[skip] * 6)
      return
    app_safety.prune_runs(self.runs_dir, self.keep_s)
    drawn = skip
    try:
      state = self._session(source, settings, extra, session)
      fg, bg = app_strokes.strokes_to_hints(list(editor.get('layers') or []), state.cut.photo.shape[:2])
      if not (fg.any() or bg.any()):  # No stroke: the automatic hints, drawn as strokes for the next correction.
        layer = self._automatic(state.cut.photo, state.cut.config)
        drawn = app_widgets.editor(state.cut.photo, self.colours, layer)
        fg, bg = app_strokes.strokes_to_hints([layer], state.cut.photo.shape[:2])
    except app_runs.USER_ERRORS as err:
      yield (f'error: {err}', app_widgets.progress_html(None, ''), *[skip] * 6)
      return
    previous = state.cut.result
    what = 'first result' if previous is None else f'correction {len(state.calls)}'
    progress = app_cutout.Progress(
        what, total=app_cutout.schedule(state.cut.config, previous is None, state.cut.correction_steps)
    )
    refinement = self._runs[session] = app_cutout.Refinement(state.cut, fg, bg, progress).start()
    yield progress.describe(), app_widgets.progress_html(0.0, ''), drawn, *[skip] * 5
    try:
      while not refinement.wait(0.5):
        progress = refinement.progress
        text = progress.describe() + (' (stopping)' if refinement.stopping else '')
        yield text, app_widgets.progress_html(progress.fraction, ''), *[skip] * 6
    except GeneratorExit:  # The page was closed (Gradio cancels the event): nobody waits for the answer.
      refinement.stop()
      raise
    finally:
      self._runs.pop(session, None)
    result = refinement.result
    if refinement.error or result is None or result is previous:
      text = f'error: {refinement.error}' if refinement.error else 'stopped before any new result'
      yield text, app_widgets.progress_html(None, ''), *[skip] * 6
      return
    call = app_cutout.record(state, fg, bg, result, refinement.stopping, self.runs_dir)
    text = (
        f'{"stopped: the best result so far" if refinement.stopping else "done"}: {what} in {result.seconds:.1f} s '
        f'({result.steps} steps). Paint a correction and Run again, or download the cut-out.'
    )
    yield (
        text,
        app_widgets.progress_html(1.0, ''),
        skip,
        _shown(app_cutout.overlay(state.cut.photo, result.mask)),
        self._cutout(state, soft),
        _shown(image_io.to_uint8(result.fg)),
        _shown(image_io.to_uint8(result.bg)),
        app_cutout.downloads(call, soft),
    )


def _shown(image: np.ndarray) -> np.ndarray:
  """An (H, W, C) uint8 image at most app_widgets.EDITOR_SIDE px (as the editor shows the photo)."""
  if max(image.shape[:2]) <= app_widgets.EDITOR_SIDE:
    return image
  shown, _ = image_io.working_image(image.astype(np.float32) / 255.0, app_widgets.EDITOR_SIDE)
  return image_io.to_uint8(shown)


def _segmentation_tab(page: SegmentationPage, defaults: ml_collections.ConfigDict) -> None:
  """The widgets and events of the segmentation tab (inside a `gr.Tab`)."""
  gr.Markdown(
      'Upload a photo (or pick the zebra), paint a stroke **inside the object in red** and one on the '
      '**background in blue** (or press *Automatic hints*): the mask they give shows at once. **Run** '
      'refines it; then paint corrections where it is wrong and **Run** again (a few seconds each).'
  )
  # The photo's file or DEMO. Photos come only through the file box (read as main.py reads them, with
  # its messages) or the demo button: the editor's own upload would leave the file unknown.
  source = gr.State(None)
  with gr.Row():
    with gr.Column(scale=3):
      with gr.Row():
        upload = gr.File(label='Photo (any image file)', elem_id='seg_upload', type='filepath', height=120)
        demo_button = gr.Button('Zebra demo', elem_id='seg_demo', scale=0)
      editor = app_widgets.stroke_editor(
          'Paint hints: red = object, blue = background', 'seg_editor', SegmentationPage.colours
      )
      with gr.Row():
        auto_button = gr.Button('Automatic hints', elem_id='seg_auto')
        run_button = gr.Button('Run', variant='primary', elem_id='seg_run')
        stop_button = gr.Button('Stop', variant='stop', elem_id='seg_stop')
      settings, extra = app_widgets.settings_boxes(
          defaults, 'seg', app_cutout.SETTINGS, values={'correction_steps': app_cutout.CORRECTION_STEPS}
      )
    with gr.Column(scale=3):
      status = gr.Textbox(label='Status', elem_id='seg_status', interactive=False)
      progress = gr.HTML(app_widgets.progress_html(None, ''), elem_id='seg_progress')
      shown = gr.Image(
          label='The mask on the photo (outside it dimmed)', elem_id='seg_overlay', interactive=False, format='png'
      )
      cutout = gr.Image(
          label='The cut-out (transparent where grey-checked)', elem_id='seg_cutout', interactive=False, format='png'
      )
      soft = gr.Checkbox(
          label="Soft edge (the cut-out's alpha follows the object's edge)", value=False, elem_id='seg_soft'
      )
      with gr.Accordion('The layers', open=False):
        with gr.Row():
          fg = gr.Image(label='foreground', elem_id='seg_fg', interactive=False, format='png')
          bg = gr.Image(label='background', elem_id='seg_bg', interactive=False, format='png')
      download = gr.File(
          label='Download: the cut-out (transparent PNG), mask, foreground, background',
          elem_id='seg_files',
          interactive=False,
          file_count='multiple',
      )
  cleared = [editor, source, status, shown, cutout, download]
  upload.upload(page.load_photo, inputs=upload, outputs=cleared)
  demo_button.click(page.load_demo, outputs=cleared)
  auto_button.click(
      lambda photo, kind, *values: page.auto_hints(photo, kind, list(values[:-1]), values[-1]),
      inputs=[editor, source, *settings, extra],
      outputs=[editor, status],
  )

  def preview(values: dict, request: gr.Request):
    return page.preview(
        values[editor], values[source], [values[c] for c in settings], values[extra], request.session_hash
    )

  # Every stroke (and every hint drawn): the preview, not queued behind a run.
  editor.change(
      preview,
      inputs={editor, source, *settings, extra},
      outputs=shown,
      trigger_mode='always_last',
      concurrency_limit=2,
      concurrency_id='preview',
      show_progress='hidden',
  )

  def soft_edge(value: bool, request: gr.Request):
    return page.soft_edge(value, request.session_hash)

  soft.change(soft_edge, inputs=soft, outputs=[cutout, download], queue=False)

  def run(values: dict, request: gr.Request):
    yield from page.run(
        values[editor], values[source], [values[c] for c in settings], values[extra], values[soft], request.session_hash
    )

  app_widgets.connect(
      page,
      run,
      run_button,
      stop_button,
      {editor, source, *settings, extra, soft},
      [status, progress, editor, shown, cutout, fg, bg, download],
  )


def build(runs_dir: str, *, keep_hours: float = 24.0):
  """The Gradio page (a `gr.Blocks`)."""
  runs = {}
  keep_s = keep_hours * 3600
  page = SegmentationPage(runs_dir, runs, keep_s=keep_s)
  defaults = cli.load_config_file(os.path.join(app_runs.REPO, app_runs.PHOTO_CONFIG))
  # Gradio deletes its uploads and cached images older than `keep_hours`, checking every hour.
  cache_age = int(keep_hours * 3600) if keep_hours > 0 else None
  with gr.Blocks(
      title='Double-DIP', analytics_enabled=False, delete_cache=(3600, cache_age) if cache_age else None
  ) as demo:
    gr.Markdown('# Double-DIP: decompose your own photo')
    with gr.Tab('Segmentation'):
      _segmentation_tab(page, defaults)
    with gr.Tab('Watermark'):
      app_widgets.watermark_tab(
          app_widgets.WatermarkPage(runs_dir, runs, keep_s=keep_s),
          cli.load_config_file(os.path.join(app_runs.REPO, app_runs.WATERMARK_CONFIG)),
      )
    for tab in app_runs.TASK_TABS:
      with gr.Tab(tab.title):
        app_widgets.task_tab(
            tab,
            app_widgets.TaskPage(tab, runs_dir, runs, keep_s=keep_s),
            cli.load_config_file(os.path.join(app_runs.REPO, tab.config)),
        )
  return demo


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument(
      '--host',
      default='127.0.0.1',
      help='Address to serve on; beyond this machine (e.g. 0.0.0.0) only with --allow_remote.',
  )
  parser.add_argument(
      '--allow_remote',
      action='store_true',
      help='Serve on an address other machines reach (set DDIP_APP_AUTH=user:password for a login).',
  )
  parser.add_argument('--port', type=int, default=7860, help='Port to serve on (0: a free one).')
  parser.add_argument('--runs_dir', default='results/app', help='Folder of the runs made from the page.')
  parser.add_argument('--max_upload_mb', type=float, default=50.0, help='Largest file the page takes (MB).')
  parser.add_argument(
      '--keep_hours', type=float, default=24.0, help='Run folders and uploads older than this are deleted (0: kept).'
  )
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
      print(
          f'error: --host={args.host} serves other machines too: add --allow_remote if you mean it '
          '(and set DDIP_APP_AUTH=user:password for a login)',
          file=sys.stderr,
      )
      return 2
    print(
        f'warning: serving on {args.host}: anyone who reaches this port can run decompositions on this machine'
        + ('' if auth else ' (no login: set DDIP_APP_AUTH=user:password)'),
        file=sys.stderr,
        flush=True,
    )
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
    demo.launch(
        server_name=args.host,
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        share=False,
        auth=auth,
        allowed_paths=[runs_dir],
        max_file_size=int(args.max_upload_mb * 2**20),
    )
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

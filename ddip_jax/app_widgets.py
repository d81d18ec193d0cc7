"""The web page's widgets: the hint editor and its brush, the Settings boxes, the results column, progress.

Gradio is imported here (and `app` takes it from here): `gr` is None without it.
"""

import html
import os
from typing import Any

import ml_collections
import numpy as np

from ddip_jax import app_runs
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
  """The editor's brush in `colours`, its size a fortieth of the photo's shorter side (Gradio's default is 25 px)."""
  names = [f'rgb{colour}' for colour in colours]
  return gr.Brush(colors=names, default_color=names[0], color_mode='fixed', default_size=max(2, min(shape) // 40))


def editor(photo: np.ndarray, colours: tuple[tuple[int, int, int], ...]):
  """The editor showing `photo` (H, W, 3) in [0, 1], at most EDITOR_SIDE px, with no strokes and a brush sized for it.

  A phone's 12-megapixel photo would make the page slow to load and to paint
  on; strokes of a smaller canvas are scaled to the photo (`strokes_to_hints`).
  """
  shown, _ = image_io.working_image(photo, EDITOR_SIDE)
  return gr.ImageEditor(value={'background': image_io.to_uint8(shown), 'layers': [], 'composite': None},
                        brush=brush(shown.shape[:2], colours))


def by_field(values: list[Any]) -> dict[str, Any]:
  """The Settings boxes' values (in `app_runs.SETTINGS` order) as field -> value."""
  return dict(zip((field for field, _ in app_runs.SETTINGS), values))


def progress_html(snapshot: app_runs.Snapshot | None, text: str) -> str:
  """A line of text over a bar at the stage's fraction done."""
  fraction = snapshot.done / snapshot.total if snapshot and snapshot.total else 0.0
  return f'<div>{html.escape(text)}</div><progress value="{fraction:.3f}" max="1" style="width:100%"></progress>'


def results_column(key: str, previews: tuple[str, ...], layers: tuple[tuple[str, str], ...]) -> list[Any]:
  """The right column: status, progress, previews, results, zip and command (the run's outputs, in order)."""
  with gr.Column(scale=2):
    status = gr.Textbox(label='Status', elem_id=f'{key}_status', interactive=False)
    progress = gr.HTML(progress_html(None, ''), elem_id=f'{key}_progress')
    with gr.Row():
      shown = [gr.Image(label=f'{name} (while it runs)', interactive=False, format='png', height=240)
               for name in previews]
    with gr.Row():
      results = [gr.Image(label=label, elem_id=f'{key}_{name.split(".")[0]}', interactive=False, type='filepath',
                          height=240) for name, label in layers]
    download = gr.File(label='All outputs (zip)', elem_id=f'{key}_zip', interactive=False)
    command = gr.Textbox(label='The same run from the command line', interactive=False)
  return [status, progress, *shown, *results, download, command]


def settings_boxes(defaults: ml_collections.ConfigDict, key: str):
  """The Settings accordion: a number box per SETTINGS field (the config's value) and the extra overrides."""
  with gr.Accordion('Settings', open=False, elem_id=f'{key}_settings'):
    settings = [gr.Number(value=config_check.get_field(defaults, field), label=label, precision=0,
                          elem_id=f'{key}_{field.replace(".", "_")}') for field, label in app_runs.SETTINGS]
    extra = gr.Textbox(label='More config overrides (as on the command line)', elem_id=f'{key}_extra',
                       placeholder='--config.learning_rate=0.002')
  return settings, extra

"""The hint editors' strokes: painted layers <-> hint maps, and the canvas the editor shows a photo in.

Nothing here needs Gradio.
"""

import numpy as np
from PIL import Image

from ddip_jax import image_io

FG_COLOUR = (255, 0, 0)  # Brush colours: red strokes mark the foreground ...
BG_COLOUR = (0, 0, 255)  # ... blue ones the background.
# A painted pixel has at least this alpha (0-255): the brush's soft edge is not a stroke.
_STROKE_ALPHA = 64

# (H, W) of the hint editors' canvas. The editor places a layer it is sent against the canvas it was made
# with (a 256x192 layer landed centred in 640x480, issue 26), so every photo is shown fitted and centred in
# this canvas (white around it), its layers likewise, and strokes are read back from the same box.
CANVAS = (480, 640)
_WHITE = (255, 255, 255, 255)


def canvas_box(shape: tuple[int, int]) -> tuple[int, int, int, int]:
  """(top, left, height, width) of a photo of `shape` (H, W) in the CANVAS: fitted, centred."""
  scale = min(CANVAS[0] / shape[0], CANVAS[1] / shape[1])
  height, width = max(1, min(CANVAS[0], round(shape[0] * scale))), max(1, min(CANVAS[1], round(shape[1] * scale)))
  return (CANVAS[0] - height) // 2, (CANVAS[1] - width) // 2, height, width


def to_canvas(image: np.ndarray, shape: tuple[int, int] | None = None, *, fill=_WHITE) -> np.ndarray:
  """An (h, w, C) uint8 picture of a photo of `shape` (default: the picture's) as the CANVAS shows it.

  A stroke layer (C = 4) is redrawn at the fitted size (`strokes_to_hints`,
  `hints_to_layer`) and surrounded by transparency; a photo (C = 3) is resized
  smoothly and surrounded by `fill`.
  """
  image = np.asarray(image, np.uint8)
  top, left, height, width = canvas_box(shape or image.shape[:2])
  channels = image.shape[-1]
  if channels == 4:  # Strokes: thin ones survive a shrink (`strokes_to_hints`).
    fitted = hints_to_layer(*strokes_to_hints([image], (height, width)))
  else:
    fitted = np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))
  out = np.empty((*CANVAS, channels), np.uint8)
  out[...] = (0, 0, 0, 0) if channels == 4 else fill[:channels]
  out[top : top + height, left : left + width] = fitted
  return out


def strokes_to_hints(layers: list[np.ndarray], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
  """The fg and bg hints painted in the editor's layers.

  Args:
    layers: (H, W, 4) uint8 RGBA layers (the editor's `layers`), any number:
      CANVAS-sized ones hold the photo in `canvas_box` (strokes around it are
      dropped); others are taken as the photo's, resized to it.
    shape: (H, W) of the photo.

  Returns:
    (fg, bg): bool (H, W), where a stroke closer to red (fg) or blue (bg) than to the other is.
  """
  fg, bg = np.zeros(shape, bool), np.zeros(shape, bool)
  for layer in layers:
    layer = np.asarray(layer)
    if layer.ndim != 3 or layer.shape[-1] != 4:
      continue  # An RGB layer has no strokes of its own: it is the photo.
    if layer.shape[:2] == CANVAS:
      top, left, height, width = canvas_box(shape)
      layer = layer[top : top + height, left : left + width]
    rgb = layer[..., :3].astype(np.float32)
    painted = layer[..., 3] >= _STROKE_ALPHA
    to_fg = np.abs(rgb - FG_COLOUR).sum(-1)
    to_bg = np.abs(rgb - BG_COLOUR).sum(-1)
    # Canvas -> photo as hint files are resized (a canvas pixel at most); the cut-out resizes them to its working
    # size its own way (`cutout.shrink_strokes`).
    fg |= image_io.resize_mask(painted & (to_fg < to_bg), shape, keep_thin=True) > 0.5
    bg |= image_io.resize_mask(painted & (to_bg < to_fg), shape, keep_thin=True) > 0.5
  return fg, bg


def hints_to_layer(fg: np.ndarray, bg: np.ndarray, *, alpha: int = 160) -> np.ndarray:
  """Hints (H, W) drawn as an RGBA stroke layer (fg red, bg blue; half transparent), for the editor."""
  layer = np.zeros((*fg.shape, 4), np.uint8)
  layer[fg > 0.5] = (*FG_COLOUR, alpha)
  layer[(bg > 0.5) & ~(fg > 0.5)] = (*BG_COLOUR, alpha)
  return layer


def strokes_to_box(layers: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray | None:
  """The bounding box of every painted pixel as a hint (H, W): 1 inside; None when nothing is painted."""
  fg, bg = strokes_to_hints(layers, shape)
  rows, cols = np.nonzero(fg | bg)
  if not rows.size:
    return None
  box = np.zeros(shape, np.float32)
  box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = 1.0
  return box

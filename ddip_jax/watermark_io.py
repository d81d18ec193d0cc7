"""What the watermark task reads and keeps: its inputs, checked before any optimisation (`load_inputs`),
and each finished run's layers in `run<k>.npz` (`save_run`, `load_run`), reused by a rerun."""

import dataclasses
import io
import json
from typing import Any

import ml_collections
import numpy as np

from ddip_jax import image_io
from ddip_jax import metrics as metrics_lib
from ddip_jax import watermark_cut
from ddip_jax import watermark_strokes
from ddip_jax import writing

# Images of mode 'many' are resized to the first one's size; aspect ratios
# further apart than this (relative) are refused instead of distorted.
ASPECT_TOLERANCE = 0.1


@dataclasses.dataclass
class Inputs:
  """Everything a run reads from disk, checked before any optimisation.

  Attributes:
    paths: the images' paths.
    full: (K, H, W, 3) the images at full size (mode 'many': all at the first one's).
    working: (K, h, w, 3) the same at the working resolution.
    hint, hint_working: (H, W) and (h, w) binary hint (mode 'hint'), else None.
    truths: (K, H, W, 3) clean ground truths, or None.
    box: (rows, cols) slices of the 'in box' metrics at full size, or None.
    polarity: the strokes' polarity and channel when the hint is the strokes found in the box, else None.
    stroke_contrast: then also how much more they stand out inside the box than outside
      (`stroke_contrast`), one of the self-check's signs (`watermark_layers.self_check`).
    box_hint: (H, W) the user's box itself (mode 'hint'; `hint` is the strokes found in it), else None.
    mark: with `watermark.clean_from='cut'`, the mark `watermark_cut.find_mark` found in the box (`hint` is
      the pixels it covers), else None.
  """

  paths: list[str]
  full: np.ndarray
  working: np.ndarray
  hint: np.ndarray | None
  hint_working: np.ndarray | None
  truths: np.ndarray | None
  box: tuple[slice, slice] | None
  polarity: str | None = None
  stroke_contrast: float | None = None
  box_hint: np.ndarray | None = None
  mark: watermark_cut.Mark | None = None


def _like(
    images: list[np.ndarray],
    names: list[str],
    shape: tuple[int, int],
    first: str,
    why: str = 'images sharing a watermark need the same framing',
) -> list[np.ndarray]:
  """RGB images resized to `shape` unless their aspect ratio is too far from it (refused saying `why`)."""
  result = []
  for img, name in zip(images, names):
    if img.shape[:2] != shape:
      aspect, want = img.shape[1] / img.shape[0], shape[1] / shape[0]
      if abs(aspect / want - 1) > ASPECT_TOLERANCE:
        raise image_io.InputError(
            f"{name} is {img.shape[1]}x{img.shape[0]}, aspect ratio {aspect:.3g}, too far from {first}'s "
            f'{shape[1]}x{shape[0]} ({want:.3g}): {why}'
        )
      img = image_io.resize_image(img, shape)
    result.append(img)
  return result


def _load_like(
    paths: list[str], shape: tuple[int, int], first: str, why: str = 'images sharing a watermark need the same framing'
) -> list[np.ndarray]:
  """Loads RGB images, resized to `shape` unless their aspect ratio is too far from it (`_like`)."""
  return _like([image_io.load_image(path) for path in paths], [repr(path) for path in paths], shape, first, why)


def _region(mask: np.ndarray, shape: tuple[int, int], name: str) -> np.ndarray:
  """A binary (H, W) mask (> 0.5) at `shape` that must mark some pixels but not all; `name` names it in errors."""
  region = (image_io.resize_mask(mask, shape) > 0.5).astype(np.float32)
  if not region.any():
    raise image_io.InputError(
        f'{name} marks no pixel (none above 0.5): paint the box around the ' 'watermark white on black'
    )
  if region.all():
    raise image_io.InputError(
        f'{name} covers the whole image: the clean layer is learnt from the '
        'pixels outside the box, so leave some black'
    )
  return region


def _load_region(path: str, shape: tuple[int, int], what: str) -> np.ndarray:
  """`_region` of a mask file."""
  return _region(image_io.load_mask(path, shape=None), shape, f'{what} {path!r}')


def stroke_contrast(image: np.ndarray, box: np.ndarray, *, used: str, width: int) -> float:
  """How much more the strokes `watermark_strokes.stroke_hint` used stand out inside the box than outside it.

  The mean top-hat of the channel and polarity `used` (as `stroke_hint` returns it, e.g. 'light (grey)')
  inside the box over its mean outside: about 1 when the box holds no more thin strokes of that polarity
  than the rest of the photo (a faint mark over texture), well above 1 for a clear mark.

  Returns:
    The ratio (inf when nothing outside the box stands out at all).
  """
  polarity, channel_name = used.split(' ')
  channel_name = channel_name.strip('()')
  channel = image.mean(axis=-1) if channel_name == 'grey' else image[..., 'rgb'.index(channel_name[0])]
  tophat = watermark_strokes.tophat(channel.astype(np.float32), width, polarity)
  inside = box > 0.5
  outside = float(tophat[~inside].mean()) if (~inside).any() else 0.0
  return float(tophat[inside].mean()) / outside if outside > 0 else float('inf')


def load_inputs(config: ml_collections.ConfigDict, arrays: dict[str, Any] | None = None) -> Inputs:
  """Reads and checks the images, hint, ground truths and metric box of a config: the only place the task reads
  any file.

  Args:
    config: the full config.
    arrays: the inputs given as arrays instead of files, by field: 'image' (H, W, 3) and 'watermark.hint' (H, W)
      float32 in [0, 1]; 'watermark.images' a tuple with an (H, W, 3) array, or None (read the config's file),
      per other image.

  Raises:
    image_io.InputError: a file cannot be read, a hint marks no pixel or all, images or truths of other framing.
  """
  wm = config.watermark
  arrays = arrays or {}
  first = arrays['image'] if 'image' in arrays else image_io.load_image(config.image)
  first_name = 'the image array' if 'image' in arrays else repr(config.image)
  shape = first.shape[:2]
  paths = [config.image] + (list(wm.images) if wm.mode == 'many' else [])
  others, names = [], []
  given = arrays.get('watermark.images') or (None,) * (len(paths) - 1)
  for k, (path, array) in enumerate(zip(paths[1:], given), start=1):
    others.append(image_io.load_image(path) if array is None else array)
    names.append(repr(path) if array is None else f'the other{k} array')
  full = np.stack([first] + _like(others, names, shape, first_name))
  min_side = 2 ** max(len(config.generator.channels_down), len(wm.mask_channels))
  working = np.stack(
      [
          image_io.working_image(img, config.max_side, min_side=min_side, path=name)[0]
          for img, name in zip(full, [first_name] + names)
      ]
  )
  hint = hint_working = box_hint = polarity = contrast = mark = None
  if wm.mode == 'hint':
    raw = arrays['watermark.hint'] if 'watermark.hint' in arrays else image_io.load_mask(wm.hint, shape=None)
    hint_name = 'the hint array' if 'watermark.hint' in arrays else f'hint {wm.hint!r}'
    hint = box_hint = _region(raw, shape, hint_name)
    hint_working = (image_io.resize_mask(raw, working.shape[1:3]) > 0.5).astype(np.float32)
    if not hint_working.any() or hint_working.all():
      raise image_io.InputError(
          f'{hint_name} at the working size {working.shape[2]}x{working.shape[1]} '
          'marks no pixel or all of them: draw a larger box, or set max_side=0'
      )
    if wm.clean_from == 'cut':  # Ours: the mark found by a graph cut of its blend; C inpaints what it covers.
      mark = watermark_cut.find_mark(full[0], hint)
      if (mark.coverage > 0).any():
        hint = (mark.coverage > 0).astype(np.float32)
        found = image_io.resize_mask(hint, working.shape[1:3], keep_thin=True) > 0.5
        hint_working = found.astype(np.float32) if found.any() else hint_working
    elif wm.stroke_polarity != 'none':
      hint, polarity = watermark_strokes.stroke_hint(full[0], hint, polarity=wm.stroke_polarity, width=wm.stroke_width)
      contrast = stroke_contrast(full[0], box_hint, used=polarity, width=wm.stroke_width)
      width = max(3, 2 * round((wm.stroke_width - 1) / 2 * working.shape[1] / shape[0]) + 1)  # Odd, scaled.
      hint_working, _ = watermark_strokes.stroke_hint(
          working[0], hint_working, polarity=wm.stroke_polarity, width=width
      )
      if not hint_working.any():
        raise image_io.InputError(
            f'no {wm.stroke_polarity} strokes found in the box of {hint_name}: try '
            'watermark.stroke_polarity=none (the whole box) or another polarity'
        )
  gt_paths = [wm.gt_clean] + (list(wm.gt_images or []) if wm.mode == 'many' else [])
  truths = None
  if wm.gt_clean:
    if wm.mode == 'many' and not wm.gt_images:
      raise image_io.InputError(
          "watermark.gt_clean is set but not watermark.gt_images: give every image's " 'ground truth or none'
      )
    truths = np.stack(
        _load_like(
            gt_paths,
            shape,
            first_name,
            'a ground truth (watermark.gt_clean, gt_images) ' 'shows the same picture without the watermark',
        )
    )
  elif wm.mode == 'many' and wm.gt_images:
    raise image_io.InputError("watermark.gt_images is set but not watermark.gt_clean (the first image's)")
  box = None
  if wm.eval_box:
    box = metrics_lib.bounding_box(_load_region(wm.eval_box, shape, 'eval_box'))
  elif box_hint is not None:
    box = metrics_lib.bounding_box(box_hint)
  return Inputs(paths, full, working, hint, hint_working, truths, box, polarity, contrast, box_hint, mark)


def save_run(path: str, layers: dict[str, np.ndarray], metrics: dict[str, Any], tag: str) -> None:
  buffer = io.BytesIO()
  np.savez(buffer, **layers, _metrics=np.asarray(json.dumps(metrics)), _tag=np.asarray(tag))
  writing.write_bytes(path, buffer.getvalue())


def load_run(path: str, tag: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """A finished run's layers and metrics, written by `save_run` for the same config."""
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {name: data[name] for name in data.files}
  except Exception as err:  # np.load raises many kinds of errors on bad data.
    raise image_io.InputError(f'{path!r} is unreadable ({type(err).__name__}); delete it to redo that run') from err
  if str(arrays.pop('_tag', '')) != tag:
    raise image_io.InputError(
        f'{path!r} holds a run of another config or other input files; give another ' '--workdir, or empty that one'
    )
  metrics = json.loads(str(arrays.pop('_metrics')))
  return arrays, metrics

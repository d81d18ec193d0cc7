"""The Python API: one function per application, numpy arrays in, numpy layers and metrics out.

  import ddip_jax
  result = ddip_jax.segment('photo.jpg', num_steps=300, progress=print)
  result.mask_binary  # (H, W) float32 in {0, 1}

Each function runs its task exactly as `main.py` does (`run_config`: the
config checks, restarts, the run's workdir), with the task's demo config
(`configs/<demo>.py`) unless `config=` names another, the demo's input replaced
by yours (and its ground truth dropped, as on the command line), and keyword
overrides by dotted field name (`**{'segmentation.hint_steps': 500}`) or as
nested dicts (`segmentation={'hint_steps': 500}`).

Inputs are numpy arrays, (H, W, 3) uint8 or float in [0, 1] (masks (H, W)),
or paths; gray (H, W) and RGBA (H, W, 4) images, and uint16 values, are taken
as `main.py` takes such files (alpha composited over white). Arrays are handed
to the task as 8-bit PNG files (`array_inputs`; float inputs are rounded to 8
bits). Nothing is written unless `workdir=` is given: the run goes to a
temporary folder that is removed afterwards; with a workdir, the run is
resumable and its files stay, as with `main.py --workdir`. The layers come back
as float32 arrays read from the run's output files (8-bit precision).

Mistakes raise `InputError` (unreadable input, wrong shape) or `ConfigError`
(a field that does not exist or has a bad value), the errors `main.py` prints
as one `error:` line.
"""

from collections.abc import Mapping, Sequence
import contextlib
import dataclasses
import functools
import os
import sys
import tempfile
from typing import Any

import ml_collections
import numpy as np

from ddip_jax import array_inputs
from ddip_jax import cli
from ddip_jax import clip_io
from ddip_jax import config_check
from ddip_jax import image_io
from ddip_jax import progress_report
from ddip_jax import restarts
from ddip_jax import runner
from ddip_jax import tasks

InputError = image_io.InputError
ConfigError = config_check.ConfigError
ProgressFn = progress_report.ProgressFn
# The config files (configs/*.py) live beside the package, in the repository.
_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ImageLike = array_inputs.ImageLike


def run_config(config: ml_collections.ConfigDict, workdir: str, *,
               overwrite: bool = False) -> tuple[dict[str, Any], bool]:
  """Checks `config` and runs its task into `workdir`: what `main.py`, the batch and this API run.

  The run owns `workdir`, resumes an interrupted run there, and runs
  `config.restarts` seeds (`runner.run`, `restarts.run`).

  Returns:
    (metrics, already_done), as `runner.run`.

  Raises:
    config_check.ConfigError: a field is invalid.
    Whatever `runner.run` raises.
  """
  tasks.validate(config)
  return runner.run(functools.partial(restarts.run, tasks.TASKS[config.task]), config, workdir,
                    overwrite=overwrite)


@dataclasses.dataclass(frozen=True)
class Segmentation:
  """`segment`'s result; images (H, W[, 3]) float32 in [0, 1] at the input's size.

  Attributes:
    fg, bg: the foreground and background layers.
    mask: the refined soft mask.
    mask_binary: the final mask, in {0, 1}.
    recomposed: mask * fg + (1 - mask) * bg with the generator's mask.
    metrics: what metrics.json holds (PSNRs, IoUs with a ground truth, timings, ...).
  """
  fg: np.ndarray
  bg: np.ndarray
  mask: np.ndarray
  mask_binary: np.ndarray
  recomposed: np.ndarray
  metrics: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Separation:
  """`separate`'s result: the two layers (H, W, 3), each mixture's recomposition (None where absent), metrics."""
  layer1: np.ndarray
  layer2: np.ndarray
  recomposed1: np.ndarray
  recomposed2: np.ndarray | None
  metrics: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Dehazing:
  """`dehaze`'s result: the dehazed image and the transmission (H, W[, 3]), the airlight picture, metrics."""
  dehazed: np.ndarray
  transmission: np.ndarray
  airlight: np.ndarray
  metrics: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class WatermarkRemoval:
  """`remove_watermark`'s result.

  Attributes:
    clean: (H, W, 3) the image without its watermark.
    others_clean: the `others` images without it, same order (mode 'many').
    watermark: (h, w, 3) the recovered watermark colour layer.
    mask: (h, w) its opacity.
    metrics: what metrics.json holds.
  """
  clean: np.ndarray
  others_clean: tuple[np.ndarray, ...]
  watermark: np.ndarray
  mask: np.ndarray
  metrics: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class VideoDecomposition:
  """`decompose_video`'s result: (F, H, W, 3) fg and bg, (F, H, W) mask and mask_binary, metrics."""
  fg: np.ndarray
  bg: np.ndarray
  mask: np.ndarray
  mask_binary: np.ndarray
  metrics: dict[str, Any]


def _flat_overrides(overrides: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
  """{'a': {'b': 1}, 'c.d': 2} -> {'a.b': 1, 'c.d': 2}."""
  flat = {}
  for name, value in overrides.items():
    if isinstance(value, Mapping):
      flat.update(_flat_overrides(value, f'{prefix}{name}.'))
    else:
      flat[f'{prefix}{name}'] = value
  return flat


def _set_field(config: ml_collections.ConfigDict, field: str, value: Any) -> None:
  """Sets dotted `field` of `config`, as `--config.<field>=<value>` would.

  Raises:
    ConfigError: no such field, or a value of the wrong type.
  """
  unknown = cli.unknown_field(['', f'--{cli.CONFIG_FLAG}.{field}=x'], config)
  if unknown or isinstance(config_check.get_field(config, field), ml_collections.ConfigDict):
    raise ConfigError(unknown or f'{field} is a config section: give its fields (e.g. as a dict)')
  section, _, leaf = field.rpartition('.')
  try:
    (config_check.get_field(config, section) if section else config)[leaf] = (
        tuple(value) if isinstance(value, list) else value)
  except (TypeError, ValueError) as err:
    raise ConfigError(f'config.{field} = {value!r}: {err}') from err


def make_config(demo: str, config: ml_collections.ConfigDict | str | None, inputs: Mapping[str, Any],
                overrides: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """The config of an API call: `config` (default: configs/<demo>.py), the inputs set, then `overrides`.

  Args:
    demo: the config file the task's function uses by default, e.g. 'zebra'.
    config: None, a config file ('file.py' or 'file.py:argument') or a ConfigDict (copied).
    inputs: dotted field -> value for the call's inputs (e.g. {'image': path}).
    overrides: dotted fields or nested dicts, as `--config.<field>=` on the command line.

  Returns:
    The config, with the ground truths of the original input unset unless
    `overrides` give them (`cli.drop_foreign_ground_truth`).

  Raises:
    ConfigError: an override names no field or has a bad type, or the file does not load.
  """
  if not (config is None or isinstance(config, (str, os.PathLike, ml_collections.ConfigDict))):
    raise ConfigError(f'config={config!r}: expected a config file (path) or an ml_collections.ConfigDict')
  if config is None or isinstance(config, (str, os.PathLike)):
    path = os.fspath(config) if config is not None else os.path.join(_REPOSITORY, 'configs', f'{demo}.py')
    if _REPOSITORY not in sys.path:
      sys.path.append(_REPOSITORY)  # The config files import `configs.default`.
    try:
      file_config = cli.load_config_file(path)
    except cli.UsageError as err:
      raise ConfigError(str(err)) from err
  else:
    path, file_config = '<config>', config
  result = ml_collections.ConfigDict(file_config.to_dict())
  flat = _flat_overrides(overrides)
  for field, value in {**inputs, **flat}.items():
    _set_field(result, field, value)
  cli.unset_empty_optionals(result)
  cli.drop_foreign_ground_truth(result, file_config, set(flat), path, warn=False)
  return result


def _run(config: ml_collections.ConfigDict, workdir: str | None, progress: ProgressFn | bool | None,
         read: Any) -> Any:
  """Runs `config` in `workdir` (or a temporary folder) and returns read(workdir, metrics)."""
  with contextlib.ExitStack() as stack:
    if workdir is None:
      workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix='ddip_jax_run_'))
      config.loop.checkpoint_every = 0  # Nothing to resume from a folder that goes away.
    if isinstance(progress, bool):  # The bar on or off.
      config.progress, progress = progress, None
    elif progress is not None:
      if not callable(progress):
        raise ConfigError(f'progress={progress!r}: expected a function, True or False')
      config.progress = False  # The caller shows progress its own way, not with the command line's bar.
    stack.enter_context(progress_report.reporting_progress(progress))
    metrics, _ = run_config(config, workdir)
    return read(workdir, metrics)


def _image(workdir: str, name: str) -> np.ndarray:
  return image_io.load_image(os.path.join(workdir, f'{name}.png'))


def _mask(workdir: str, name: str, shape: tuple[int, int] | None = None) -> np.ndarray:
  path = os.path.join(workdir, f'{name}.png')
  return image_io.load_mask(path, shape=shape or image_io.load_image(path).shape[:2])


def _call(demo: str, inputs: dict[str, Any], config, workdir, progress, overrides, read):
  """Builds the config in a folder for the array inputs, runs it and reads its outputs."""
  with tempfile.TemporaryDirectory(prefix='ddip_jax_inputs_') as folder:
    files = array_inputs.Inputs(folder)
    paths = {field: (files.frames(value) if field == 'frames' else
                     files.path(value, field.rpartition('.')[2], channels=not field.endswith('hint')))
             for field, value in inputs.items() if value is not None}
    if 'frames' in paths:
      paths['image'] = paths.pop('frames')
    with files.naming_arrays():
      return _run(make_config(demo, config, paths, overrides), workdir, progress, read)


def segment(image: ImageLike, fg_hint: ImageLike | None = None, bg_hint: ImageLike | None = None, *,
            config: ml_collections.ConfigDict | str | None = None, progress: ProgressFn | bool | None = None,
            workdir: str | None = None, **overrides) -> Segmentation:
  """Foreground/background segmentation of one image (task 'segmentation', default configs/zebra.py).

  Args:
    image: (H, W, 3) uint8 or float in [0, 1], or an image file.
    fg_hint, bg_hint: optional (H, W) masks (bool, uint8 or float; 1 where the
      pixel surely is foreground / background), or mask files; without them the
      hints are automatic (`segmentation.auto_hints`).
    config: a config file or ConfigDict instead of configs/zebra.py.
    progress: progress(step, total, loss, psnr, stage), called as the stages run
      (instead of the tqdm bar that `config.progress` shows); or True / False:
      the bar or nothing.
    workdir: keep the run's files there (and resume from it); default: none written.
    **overrides: config fields, e.g. num_steps=300, **{'segmentation.hint_steps': 500}.

  Returns:
    A `Segmentation`.

  Raises:
    InputError, ConfigError: bad input, bad config field.
  """
  def read(folder, metrics):
    fg = _image(folder, 'fg')
    return Segmentation(fg=fg, bg=_image(folder, 'bg'), mask=_mask(folder, 'mask'),
                        mask_binary=_mask(folder, 'mask_binary'), recomposed=_image(folder, 'recomposed'),
                        metrics=metrics)

  return _call('zebra', {'image': image, 'fg_hint': fg_hint, 'bg_hint': bg_hint}, config, workdir, progress,
               overrides, read)


def separate(image1: ImageLike, image2: ImageLike | None = None, *,
             config: ml_collections.ConfigDict | str | None = None, progress: ProgressFn | bool | None = None,
             workdir: str | None = None, **overrides) -> Separation:
  """Separates two transparent layers (task 'transparency').

  With `image2`, two mixtures of the same layers (configs/transparency.py);
  without, one additive mixture I = R + T (configs/textures.py). Arguments as
  `segment`'s; images (H, W, 3).
  """
  def read(folder, metrics):
    two = os.path.exists(os.path.join(folder, 'recomposed2.png'))  # One mixture writes recomposed.png.
    return Separation(layer1=_image(folder, 'layer1'), layer2=_image(folder, 'layer2'),
                      recomposed1=_image(folder, 'recomposed1' if two else 'recomposed'),
                      recomposed2=_image(folder, 'recomposed2') if two else None, metrics=metrics)

  return _call('transparency' if image2 is not None else 'textures',
               {'image': image1, 'transparency.image2': image2}, config, workdir, progress, overrides, read)


def dehaze(image: ImageLike, *, config: ml_collections.ConfigDict | str | None = None,
           progress: ProgressFn | bool | None = None, workdir: str | None = None, **overrides) -> Dehazing:
  """Dehazes one image (task 'dehaze', configs/dehaze.py). Arguments as `segment`'s."""
  def read(folder, metrics):
    return Dehazing(dehazed=_image(folder, 'dehazed'), transmission=_mask(folder, 'transmission'),
                    airlight=_image(folder, 'airlight'), metrics=metrics)

  return _call('dehaze', {'image': image}, config, workdir, progress, overrides, read)


def remove_watermark(image: ImageLike, hint: ImageLike | None = None, *, others: Sequence[ImageLike] = (),
                     config: ml_collections.ConfigDict | str | None = None, progress: ProgressFn | bool | None = None,
                     workdir: str | None = None, **overrides) -> WatermarkRemoval:
  """Removes a watermark (task 'watermark').

  Args:
    image: the watermarked image.
    hint: (H, W) mask, white inside a rough box around the watermark (mode
      'hint', configs/watermark.py).
    others: instead of a hint, other images under the same watermark (mode
      'many', configs/watermark_many.py).
    config, progress, workdir, overrides: as `segment`'s.
  """
  if (hint is None) == (not others):
    raise InputError('remove_watermark needs either a hint (a box around the watermark) or others '
                     '(images under the same watermark), not both')

  def read(folder, metrics):
    if others:
      clean = [_image(folder, f'clean{k}') for k in range(1, len(others) + 2)]
    else:
      clean = [_image(folder, 'clean')]
    return WatermarkRemoval(clean=clean[0], others_clean=tuple(clean[1:]), watermark=_image(folder, 'watermark'),
                            mask=_mask(folder, 'mask'), metrics=metrics)

  with tempfile.TemporaryDirectory(prefix='ddip_jax_inputs_') as folder:
    files = array_inputs.Inputs(folder)
    inputs = {'image': files.path(image, 'image')}
    if others:
      inputs['watermark.images'] = tuple(files.path(o, f'other{k}') for k, o in enumerate(others, start=1))
      inputs['watermark.hint'] = None
    else:
      inputs['watermark.hint'] = files.path(hint, 'hint', channels=False)
    with files.naming_arrays():
      return _run(make_config('watermark_many' if others else 'watermark', config, inputs, overrides), workdir,
                  progress, read)


def decompose_video(frames: ImageLike | Sequence[np.ndarray], *,
                    config: ml_collections.ConfigDict | str | None = None, progress: ProgressFn | bool | None = None,
                    workdir: str | None = None, **overrides) -> VideoDecomposition:
  """Foreground/background decomposition of a clip (task 'video', configs/video.py).

  Args:
    frames: (F, H, W, 3) array or a sequence of (H, W, 3) frames (F >= 2), or
      a folder of frames or an animated GIF.
    config, progress, workdir, overrides: as `segment`'s.
  """
  def read(folder, metrics):
    layers = {}
    for name in ('fg', 'bg', 'mask', 'mask_binary'):
      paths = clip_io.list_frames(os.path.join(folder, name))
      load = image_io.load_image if name in ('fg', 'bg') else (
          lambda p: image_io.load_mask(p, shape=image_io.load_image(p).shape[:2]))
      layers[name] = np.stack([load(p) for p in paths])
    return VideoDecomposition(**layers, metrics=metrics)

  return _call('video', {'frames': frames}, config, workdir, progress, overrides, read)

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
as `main.py` takes such files (alpha composited over white).

Nothing is written unless `workdir=` is given: every function then runs in memory, the arrays go to
the task's decomposition as they are (its `decompose`) and its float32 layers come back, no file
encoded or written. With a workdir, every function runs
as `main.py --workdir` does: resumable, its files kept (the arrays too, in its
`.inputs/` folder, named by their content: the same call again resumes, or
returns the finished run at once; `overwrite=True` redoes it), and the layers
read back from its files.

Mistakes raise `InputError` (unreadable input, None, wrong shape, too large
for the memory) or `ConfigError` (a field that does not exist or has a bad
value, a config of another task), the errors `main.py` prints as one `error:`
line, before anything runs. A run stopped by NaN/Inf raises `NumericalError`,
one stopped by Ctrl-C / SIGTERM `Interrupted` (both `engine.Stopped`, with the
best result so far written when there is a workdir).
"""

from collections.abc import Mapping, Sequence
import contextlib
import dataclasses
import functools
import os
import tempfile
from typing import Any

import ml_collections
import numpy as np

from ddip_jax import api_config
from ddip_jax import api_results
from ddip_jax import array_inputs
from ddip_jax import clip_io
from ddip_jax import config_check
from ddip_jax import engine
from ddip_jax import image_io
from ddip_jax import outputs
from ddip_jax import progress_report
from ddip_jax import restarts
from ddip_jax import runner
from ddip_jax import tasks

InputError = image_io.InputError
ConfigError = config_check.ConfigError
NumericalError = engine.NumericalError
Interrupted = engine.Interrupted
ProgressFn = progress_report.ProgressFn
_REPOSITORY = api_config.REPOSITORY
make_config = api_config.make_config
ImageLike = array_inputs.ImageLike
# The functions' results (re-exported: `ddip_jax.Segmentation` ...).
Segmentation = api_results.Segmentation
Separation = api_results.Separation
Dehazing = api_results.Dehazing
WatermarkRemoval = api_results.WatermarkRemoval
VideoDecomposition = api_results.VideoDecomposition


def run_config(
    config: ml_collections.ConfigDict, workdir: str, *, overwrite: bool = False
) -> tuple[dict[str, Any], bool]:
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
  return runner.run(functools.partial(restarts.run, tasks.TASKS[config.task]), config, workdir, overwrite=overwrite)


def _run(
    config: ml_collections.ConfigDict,
    workdir: str | None,
    progress: ProgressFn | bool | None,
    overwrite: bool,
    read: Any,
) -> Any:
  """Runs `config` in `workdir` (or a temporary folder) and returns read(workdir, metrics)."""
  with contextlib.ExitStack() as stack:
    if workdir is None:
      workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix='ddip_jax_run_'))
      config.loop.checkpoint_every = 0  # Nothing to resume from a folder that goes away.
    stack.enter_context(_progress_shown(config, progress))
    metrics, _ = run_config(config, workdir, overwrite=overwrite)
    return read(workdir, metrics)


def _image(workdir: str, name: str) -> np.ndarray:
  return image_io.load_image(os.path.join(workdir, f'{name}.png'))


def _mask(workdir: str, name: str, shape: tuple[int, int] | None = None) -> np.ndarray:
  path = os.path.join(workdir, f'{name}.png')
  return image_io.load_mask(path, shape=shape or image_io.load_image(path).shape[:2])


def _check_overrides(inputs: dict[str, Any], overrides: Mapping[str, Any]) -> None:
  """Refuses overrides of the function's own inputs (and of `inputs`, a batch)."""
  fields = {'image' if field == 'frames' else field for field in inputs}
  for field in sorted((fields | {'inputs'}) & api_config.flat_overrides(overrides).keys()):
    raise ConfigError(
        'inputs: the Python API runs the input it is given; call it once per image (main.py '
        '--config.inputs runs a batch)'
        if field == 'inputs'
        else f"{field}: give it as the function's argument, not as a config override"
    )


@contextlib.contextmanager
def _progress_shown(config: ml_collections.ConfigDict, progress: ProgressFn | bool | None):
  """`progress` as the API takes it: True / False the bar on or off, a function called instead of the bar."""
  if isinstance(progress, bool):
    config.progress, progress = progress, None
  elif progress is not None:
    if not callable(progress):
      raise ConfigError(f'progress={progress!r}: expected a function, True or False')
    config.progress = False  # The caller shows progress its own way, not with the command line's bar.
  with progress_report.reporting_progress(progress):
    yield


def _call(demo: str, task: str, inputs: dict[str, Any], config, workdir, progress, overwrite, overrides, read):
  """Writes the array inputs (in the workdir's `.inputs/`, or a temporary folder), runs the config, reads the outputs.

  `inputs`: field -> the caller's value (None: unset), 'frames' for a clip
  (set as `image`); `task` is the function's, which a `config` must run.
  """
  _check_overrides(inputs, overrides)
  with contextlib.ExitStack() as stack:
    folder = (
        os.path.join(workdir, runner.INPUTS)
        if workdir is not None
        else stack.enter_context(tempfile.TemporaryDirectory(prefix='ddip_jax_inputs_'))
    )
    files = array_inputs.Inputs(folder)
    paths = {}
    for field, value in inputs.items():
      name = field.rpartition('.')[2]
      if field == 'frames':
        paths['image'] = files.frames(value)
      elif isinstance(value, tuple):
        paths[field] = tuple(files.path(v, f'other{k}') for k, v in enumerate(value, start=1))  # watermark.images
      elif value is not None or field == 'image':
        paths[field] = files.path(value, name, channels=not field.endswith('hint'))
    with files.naming_arrays():
      built = make_config(demo, config, paths, overrides)
      if built.task != task:
        raise ConfigError(f'config={config!r} runs task {built.task!r}: this function runs {task!r}')
      return _run(built, workdir, progress, overwrite, read)


def _in_memory(demo: str, task: str, inputs: dict[str, Any], config, progress, overrides) -> outputs.Decomposition:
  """Runs a task's `decompose` on the caller's arrays (files: read as `main.py` reads them); nothing is written.

  `inputs`: field -> array, path or None (unset; 'image' is required); masks are the fields ending in 'hint'.
  """
  _check_overrides(inputs, overrides)
  files, arrays = {}, {}
  for field, value in inputs.items():
    if value is None and field not in ('image', 'frames'):
      continue
    target = 'image' if field == 'frames' else field  # A clip is the config's `image`.
    if isinstance(value, tuple):  # watermark.images: each an array, or a file the task reads (None in `arrays`).
      names = [f'other{k}' for k in range(1, len(value) + 1)]
      arrays[target] = tuple(
          None if isinstance(v, (str, os.PathLike)) else array_inputs.as_float_image(v, name, channels=True)
          for v, name in zip(value, names)
      )
      files[target] = tuple(
          f'<the {name} array>' if a is not None else array_inputs.Inputs.existing_path(v, name)
          for v, name, a in zip(value, names, arrays[target])
      )
    elif value is None or isinstance(value, (str, os.PathLike)):
      files[target] = array_inputs.Inputs.existing_path(value, field)
    elif field == 'frames':
      arrays[target] = np.stack(array_inputs.as_float_frames(value))
    else:
      arrays[target] = array_inputs.as_float_image(value, field, channels=not field.endswith('hint'))
  built = make_config(demo, config, {**{field: f'<the {field} array>' for field in arrays}, **files}, overrides)
  if built.task != task:
    raise ConfigError(f'config={config!r} runs task {built.task!r}: this function runs {task!r}')
  tasks.validate(built)
  module = tasks.TASKS[task]
  with _progress_shown(built, progress):
    result = restarts.best_of(
        lambda c: module.decompose(c, module.load_inputs(c, arrays)), built, restarts.selection_metric(module)
    )
  return dataclasses.replace(result, metrics={**result.metrics, **runner.run_record(built)})


def segment(
    image: ImageLike,
    fg_hint: ImageLike | None = None,
    bg_hint: ImageLike | None = None,
    *,
    config: ml_collections.ConfigDict | str | None = None,
    progress: ProgressFn | bool | None = None,
    workdir: str | None = None,
    overwrite: bool = False,
    **overrides,
) -> Segmentation:
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
    workdir: keep the run's files there (and resume from it, or return the
      finished run there); default: none written.
    overwrite: with a workdir, redo a finished run (replaced once the new one finishes).
    **overrides: config fields, e.g. num_steps=300, **{'segmentation.hint_steps': 500}.

  Returns:
    A `Segmentation`.

  Raises:
    InputError, ConfigError: bad input (None too), bad config field, a config of another task.
    NumericalError, Interrupted: the run stopped early (NaN/Inf; Ctrl-C or SIGTERM).
  """
  inputs = {'image': image, 'fg_hint': fg_hint, 'bg_hint': bg_hint}
  if workdir is not None:

    def read(folder, metrics):
      return Segmentation(
          fg=_image(folder, 'fg'),
          bg=_image(folder, 'bg'),
          mask=_mask(folder, 'mask'),
          mask_binary=_mask(folder, 'mask_binary'),
          recomposed=_image(folder, 'recomposed'),
          metrics=metrics,
      )

    return _call('zebra', 'segmentation', inputs, config, workdir, progress, overwrite, overrides, read)
  result = _in_memory('zebra', 'segmentation', inputs, config, progress, overrides)
  images = result.images
  return Segmentation(
      fg=images['fg'],
      bg=images['bg'],
      mask=images['mask'],
      mask_binary=images['mask_binary'],
      recomposed=images['recomposed'],
      metrics=result.metrics,
  )


def separate(
    image1: ImageLike,
    image2: ImageLike | None = None,
    *,
    config: ml_collections.ConfigDict | str | None = None,
    progress: ProgressFn | bool | None = None,
    workdir: str | None = None,
    overwrite: bool = False,
    **overrides,
) -> Separation:
  """Separates two transparent layers (task 'transparency').

  With `image2`, two mixtures of the same layers (configs/transparency.py);
  without, one additive mixture I = R + T (configs/textures.py). Arguments as
  `segment`'s; images (H, W, 3).
  """
  demo, inputs = 'transparency' if image2 is not None else 'textures', {'image': image1, 'transparency.image2': image2}
  if workdir is not None:

    def read(folder, metrics):
      two = os.path.exists(os.path.join(folder, 'recomposed2.png'))  # One mixture writes recomposed.png.
      return Separation(
          layer1=_image(folder, 'layer1'),
          layer2=_image(folder, 'layer2'),
          recomposed1=_image(folder, 'recomposed1' if two else 'recomposed'),
          recomposed2=_image(folder, 'recomposed2') if two else None,
          metrics=metrics,
      )

    return _call(demo, 'transparency', inputs, config, workdir, progress, overwrite, overrides, read)
  result = _in_memory(demo, 'transparency', inputs, config, progress, overrides)
  images = result.images
  two = 'recomposed2' in images
  return Separation(
      layer1=images['layer1'],
      layer2=images['layer2'],
      recomposed1=images['recomposed1' if two else 'recomposed'],
      recomposed2=images['recomposed2'] if two else None,
      metrics=result.metrics,
  )


def dehaze(
    image: ImageLike,
    *,
    config: ml_collections.ConfigDict | str | None = None,
    progress: ProgressFn | bool | None = None,
    workdir: str | None = None,
    overwrite: bool = False,
    **overrides,
) -> Dehazing:
  """Dehazes one image (task 'dehaze', configs/dehaze.py). Arguments as `segment`'s."""
  if workdir is not None:

    def read(folder, metrics):
      return Dehazing(
          dehazed=_image(folder, 'dehazed'),
          transmission=_mask(folder, 'transmission'),
          airlight=_image(folder, 'airlight'),
          metrics=metrics,
      )

    return _call('dehaze', 'dehaze', {'image': image}, config, workdir, progress, overwrite, overrides, read)
  result = _in_memory('dehaze', 'dehaze', {'image': image}, config, progress, overrides)
  images = result.images
  return Dehazing(
      dehazed=images['dehazed'],
      transmission=images['transmission'],
      airlight=images['airlight'],
      metrics=result.metrics,
  )


def remove_watermark(
    image: ImageLike,
    hint: ImageLike | None = None,
    *,
    others: Sequence[ImageLike] = (),
    config: ml_collections.ConfigDict | str | None = None,
    progress: ProgressFn | bool | None = None,
    workdir: str | None = None,
    overwrite: bool = False,
    **overrides,
) -> WatermarkRemoval:
  """Removes a watermark (task 'watermark').

  Args:
    image: the watermarked image.
    hint: (H, W) mask, white inside a rough box around the watermark (mode
      'hint', configs/watermark.py).
    others: instead of a hint, other images under the same watermark (mode
      'many', configs/watermark_many.py).
    config, progress, workdir, overwrite, overrides: as `segment`'s.
  """
  if (hint is None) == (not others):
    raise InputError(
        'remove_watermark needs either a hint (a box around the watermark) or others '
        '(images under the same watermark), not both'
    )

  names = [f'clean{k}' for k in range(1, len(others) + 2)] if others else ['clean']
  inputs = {'image': image, 'watermark.hint': hint, 'watermark.images': tuple(others) or None}
  demo = 'watermark_many' if others else 'watermark'
  if workdir is not None:

    def read(folder, metrics):
      clean = [_image(folder, name) for name in names]
      return WatermarkRemoval(
          clean=clean[0],
          others_clean=tuple(clean[1:]),
          watermark=_image(folder, 'watermark'),
          mask=_mask(folder, 'mask'),
          metrics=metrics,
      )

    return _call(demo, 'watermark', inputs, config, workdir, progress, overwrite, overrides, read)
  result = _in_memory(demo, 'watermark', inputs, config, progress, overrides)
  images = result.images
  return WatermarkRemoval(
      clean=images[names[0]],
      others_clean=tuple(images[name] for name in names[1:]),
      watermark=images['watermark'],
      mask=images['mask'][..., 0] if images['mask'].ndim == 3 else images['mask'],
      metrics=result.metrics,
  )


def decompose_video(
    frames: ImageLike | Sequence[np.ndarray],
    *,
    config: ml_collections.ConfigDict | str | None = None,
    progress: ProgressFn | bool | None = None,
    workdir: str | None = None,
    overwrite: bool = False,
    **overrides,
) -> VideoDecomposition:
  """Foreground/background decomposition of a clip (task 'video', configs/video.py).

  Args:
    frames: (F, H, W, 3) array or a sequence of (H, W, 3) frames (F >= 2), or
      a folder of frames or an animated GIF.
    config, progress, workdir, overwrite, overrides: as `segment`'s.
  """
  layers = ('fg', 'bg', 'mask', 'mask_binary')
  if workdir is not None:

    def read(folder, metrics):
      found = {}
      for name in layers:
        paths = clip_io.list_frames(os.path.join(folder, name))
        load = (
            image_io.load_image
            if name in ('fg', 'bg')
            else (lambda p: image_io.load_mask(p, shape=image_io.load_image(p).shape[:2]))
        )
        found[name] = np.stack([load(p) for p in paths])
      return VideoDecomposition(**found, metrics=metrics)

    return _call('video', 'video', {'frames': frames}, config, workdir, progress, overwrite, overrides, read)
  result = _in_memory('video', 'video', {'frames': frames}, config, progress, overrides)
  return VideoDecomposition(**{name: result.frames(name) for name in layers}, metrics=result.metrics)

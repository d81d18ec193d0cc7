"""Rejects nonsense configs before any work starts, naming the field.

Also the registry of the fields that name files: the inputs a run reads (their
content is hashed into checkpoints and metrics), and the ground truths that
describe a config file's own (demo) inputs.
"""

from collections.abc import Iterator
import math
import re
from typing import Any

import ml_collections

from ddip_jax import errors

# Fields naming files a run reads (one file, a folder of frames, or a tuple of files).
INPUT_FILE_FIELDS = (
    'image',
    'fg_hint',
    'bg_hint',
    'gt_mask',
    'transparency.image2',
    'transparency.gt_layer1',
    'transparency.gt_layer2',
    'dehaze.gt_clean',
    'watermark.hint',
    'watermark.images',
    'watermark.gt_clean',
    'watermark.gt_images',
    'watermark.eval_box',
)
# The images a config decomposes; its ground truths (below) describe these.
INPUT_FIELDS = ('image', 'inputs', 'transparency.image2', 'watermark.images')
# Evaluation only (IoU, PSNR, the metrics' box): they belong to the config file's own inputs.
GROUND_TRUTH_FIELDS = (
    'gt_mask',
    'transparency.gt_layer1',
    'transparency.gt_layer2',
    'dehaze.gt_clean',
    'watermark.gt_clean',
    'watermark.gt_images',
    'watermark.eval_box',
)
# Numeric fields that make no sense below 0, by the end of their name (weights, step counts, noise, radii).
_NON_NEGATIVE = re.compile(r'(_weight|_steps|_phase|_radius|sigma|sigma_step)$')


ConfigError = errors.ConfigError

# The config sections each task reads besides the shared ones (generator, loop, the top-level fields); a task's
# own section first. Video reuses segmentation's composition and threshold.
TASK_SECTIONS = {
    'segmentation': ('segmentation',),
    'video': ('video', 'segmentation'),
    'transparency': ('transparency',),
    'dehaze': ('dehaze',),
    'watermark': ('watermark',),
}


def foreign_field(config: ml_collections.ConfigDict, overridden: set[str]) -> str | None:
  """A message for the first of the `overridden` fields (dotted) that belongs to another task's section.

  Such an override would change nothing in the run, yet be recorded in its
  metrics.json and make a finished workdir count as another config's run.
  """
  if config.get('task') not in TASK_SECTIONS:
    return None  # An unknown task: `tasks.validate` says so.
  own = TASK_SECTIONS[config.task]
  for field in sorted(overridden):
    section = field.split('.', 1)[0]
    owners = [task for task, sections in TASK_SECTIONS.items() if sections[0] == section]
    if owners and section not in own:
      return (
          f'config.{field} is a field of task {owners[0]!r}; this config runs task {config.task!r}, which reads '
          f'{" and ".join(f"{s}.*" for s in own)} and the shared fields (configs/default.py)'
      )
  return None


def require(ok: bool, field: str, message: str, value) -> None:
  if not ok:
    raise ConfigError(f'config.{field} = {value!r}: {message}')


def get_field(config: ml_collections.ConfigDict, field: str) -> Any:
  """The value of a dotted field ('watermark.images'), None where a section or field is missing."""
  node = config
  for name in field.split('.'):
    node = node.get(name) if hasattr(node, 'get') else None
  return node


def input_files(config: ml_collections.ConfigDict) -> list[str]:
  """Every path the `INPUT_FILE_FIELDS` of `config` name, in field order (unset fields left out)."""
  paths = []
  for field in INPUT_FILE_FIELDS:
    value = get_field(config, field)
    paths += [str(v) for v in value if v] if isinstance(value, (tuple, list)) else [value] if value else []
  return paths


def numbers(config: ml_collections.ConfigDict, prefix: str = '') -> Iterator[tuple[str, Any]]:
  """(dotted field, value) of every int and float of `config`, tuple entries included (bools are not numbers)."""
  for name, value in config.items():
    field = f'{prefix}{name}'
    if isinstance(value, ml_collections.ConfigDict):
      yield from numbers(value, f'{field}.')
    for item in value if isinstance(value, (tuple, list)) else [value]:
      if isinstance(item, (int, float)) and not isinstance(item, bool):
        yield field, item


def require_ints(values, field: str, minimum: int) -> None:
  """Every entry of `values` is an int >= `minimum`."""
  values = tuple(values)
  require(
      all(isinstance(v, int) and not isinstance(v, bool) for v in values),
      field,
      'must be whole numbers, e.g. --config.' + field + "='(8, 16)'",
      values,
  )
  require(all(v >= minimum for v in values), field, f'entries must be >= {minimum}', values)


def _check_numbers(config: ml_collections.ConfigDict) -> None:
  """Every number is finite; weights, step counts, noise levels and radii are >= 0."""
  for field, value in numbers(config):
    whole = get_field(config, field)
    require(math.isfinite(value), field, 'must be a finite number', whole)
    require(value >= 0 or not _NON_NEGATIVE.search(field), field, 'must be >= 0', whole)


def validate(config: ml_collections.ConfigDict, *, min_num_steps: int = 1) -> None:
  """Checks the fields every task uses (`tasks.validate` checks the task's own fields too).

  `min_num_steps`: the least `num_steps`, 0 for a task whose last stage is optional (the task checks when).

  Raises:
    ConfigError: naming the first invalid field.
  """
  require(
      bool(config.get('image')) or bool(config.get('inputs')),
      'image',
      'an input image path is required (or config.inputs for many images)',
      config.get('image'),
  )
  _check_numbers(config)
  require(config.restarts >= 1, 'restarts', 'must be at least 1', config.restarts)
  require(config.num_steps >= min_num_steps, 'num_steps', f'must be at least {min_num_steps}', config.num_steps)
  require(config.learning_rate > 0, 'learning_rate', 'must be positive', config.learning_rate)
  require(config.max_side >= 0, 'max_side', 'must be >= 0 (0: no limit)', config.max_side)
  gen = config.generator
  for field in ('channels_down', 'channels_up', 'channels_skip'):
    value = tuple(gen[field])
    require(len(value) > 0, f'generator.{field}', 'must list at least one scale', value)
    require_ints(value, f'generator.{field}', 0 if field == 'channels_skip' else 1)
    require(
        len(value) == len(gen.channels_down),
        f'generator.{field}',
        'needs one entry per scale, like generator.channels_down',
        value,
    )
  for field in ('kernel_down', 'kernel_up'):
    require(gen[field] >= 1 and gen[field] % 2 == 1, f'generator.{field}', 'must be an odd size >= 1', gen[field])
  require(
      gen.upsample_mode in ('bilinear', 'nearest'),
      'generator.upsample_mode',
      "must be 'bilinear' or 'nearest'",
      gen.upsample_mode,
  )
  require(gen.dtype in ('float32', 'bfloat16'), 'generator.dtype', "must be 'float32' or 'bfloat16'", gen.dtype)
  require(gen.input_depth >= 1, 'generator.input_depth', 'must be at least 1', gen.input_depth)
  require(gen.noise_var > 0, 'generator.noise_var', 'must be positive (the noise is uniform in +-var/2)', gen.noise_var)
  require(gen.negative_slope >= 0, 'generator.negative_slope', 'must be >= 0', gen.negative_slope)
  require(
      gen.noise_method in ('noise', 'meshgrid'),
      'generator.noise_method',
      "must be 'noise' or 'meshgrid'",
      gen.noise_method,
  )
  loop = config.loop
  require(
      loop.strategy in ('auto', 'step', 'unroll', 'scan'),
      'loop.strategy',
      "must be 'auto', 'step', 'unroll' or 'scan'",
      loop.strategy,
  )
  for field in ('steps_per_call', 'check_every', 'num_perturbations'):
    require(loop[field] >= 1, f'loop.{field}', 'must be at least 1', loop[field])
  require(
      loop.cpu_convolutions in ('eigen', 'xla_default'),
      'loop.cpu_convolutions',
      "must be 'eigen' or 'xla_default'",
      loop.cpu_convolutions,
  )
  require(
      loop.checkpoint_every >= 0, 'loop.checkpoint_every', 'must be >= 0 (0: no checkpoints)', loop.checkpoint_every
  )

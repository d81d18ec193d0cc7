"""Rejects nonsense configs before any work starts, naming the field."""

import ml_collections


class ConfigError(ValueError):
  """A config field has an invalid value."""


def require(ok: bool, field: str, message: str, value) -> None:
  if not ok:
    raise ConfigError(f'config.{field} = {value!r}: {message}')


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the fields every task uses.

  Raises:
    ConfigError: naming the first invalid field.
  """
  from ddip_jax import tasks  # pylint: disable=g-import-not-at-top

  require(config.task in tasks.TASKS, 'task', f'unknown task (one of {sorted(tasks.TASKS)})', config.task)
  require(bool(config.get('image')) or bool(config.get('inputs')), 'image',
          'an input image path is required (or config.inputs for many images)', config.get('image'))
  require(config.restarts >= 1, 'restarts', 'must be at least 1', config.restarts)
  require(config.num_steps >= 1, 'num_steps', 'must be at least 1', config.num_steps)
  require(config.learning_rate > 0, 'learning_rate', 'must be positive', config.learning_rate)
  require(config.max_side >= 0, 'max_side', 'must be >= 0 (0: no limit)', config.max_side)
  gen = config.generator
  for field in ('channels_down', 'channels_up', 'channels_skip'):
    value = tuple(gen[field])
    require(len(value) > 0, f'generator.{field}', 'must list at least one scale', value)
    require(all(int(c) >= 0 for c in value), f'generator.{field}', 'channels must be >= 0', value)
    require(len(value) == len(gen.channels_down), f'generator.{field}',
             'needs one entry per scale, like generator.channels_down', value)
  require(all(int(c) > 0 for c in gen.channels_down), 'generator.channels_down', 'channels must be > 0',
           tuple(gen.channels_down))
  require(all(int(c) > 0 for c in gen.channels_up), 'generator.channels_up', 'channels must be > 0',
           tuple(gen.channels_up))
  for field in ('kernel_down', 'kernel_up'):
    require(gen[field] >= 1 and gen[field] % 2 == 1, f'generator.{field}', 'must be an odd size >= 1', gen[field])
  require(gen.upsample_mode in ('bilinear', 'nearest'), 'generator.upsample_mode',
           "must be 'bilinear' or 'nearest'", gen.upsample_mode)
  require(gen.dtype in ('float32', 'bfloat16'), 'generator.dtype', "must be 'float32' or 'bfloat16'", gen.dtype)
  require(gen.input_depth >= 1, 'generator.input_depth', 'must be at least 1', gen.input_depth)
  require(gen.noise_method in ('noise', 'meshgrid'), 'generator.noise_method',
           "must be 'noise' or 'meshgrid'", gen.noise_method)
  loop = config.loop
  require(loop.strategy in ('auto', 'step', 'unroll', 'scan'), 'loop.strategy',
           "must be 'auto', 'step', 'unroll' or 'scan'", loop.strategy)
  for field in ('steps_per_call', 'check_every', 'num_perturbations'):
    require(loop[field] >= 1, f'loop.{field}', 'must be at least 1', loop[field])
  require(loop.cpu_convolutions in ('eigen', 'xla_default'), 'loop.cpu_convolutions',
          "must be 'eigen' or 'xla_default'", loop.cpu_convolutions)
  require(loop.checkpoint_every >= 0, 'loop.checkpoint_every', 'must be >= 0 (0: no checkpoints)',
          loop.checkpoint_every)
  task_validate = getattr(tasks.TASKS[config.task], 'validate', None)
  if task_validate is not None:
    task_validate(config)

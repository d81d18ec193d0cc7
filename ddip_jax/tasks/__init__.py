"""Double-DIP applications. Each task module exposes `run(config, workdir) -> metrics` and may expose
`validate(config)`, raising `config_check.ConfigError` for its own fields; `validate` here checks a
config for its task. A task module imports no other task module (shared machinery lives in ddip_jax/)."""

import ml_collections

from ddip_jax import config_check
from ddip_jax.tasks import dehaze
from ddip_jax.tasks import segmentation
from ddip_jax.tasks import transparency
from ddip_jax.tasks import video
from ddip_jax.tasks import watermark

TASKS = {
    'dehaze': dehaze,
    'segmentation': segmentation,
    'transparency': transparency,
    'video': video,
    'watermark': watermark,
}


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks `config`: a known task, the fields every task uses (`config_check.validate`), then the task's own.

  Raises:
    config_check.ConfigError: naming the first invalid field.
  """
  config_check.require(config.task in TASKS, 'task', f'unknown task (one of {sorted(TASKS)})', config.task)
  # A task's `min_num_steps(config)`: 0 where its last stage is optional (its `validate` says when).
  min_num_steps = getattr(TASKS[config.task], 'min_num_steps', lambda _: 1)(config)
  config_check.validate(config, min_num_steps=min_num_steps)
  task_validate = getattr(TASKS[config.task], 'validate', None)
  if task_validate is not None:
    task_validate(config)

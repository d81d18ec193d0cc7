r"""Runs a Double-DIP task from a config file.

  python main.py --config=configs/zebra.py [--config.num_steps=500] [--workdir=DIR]
  python main.py --config=configs/zebra.py --config.inputs='photos/*.jpg' --workdir=DIR  # Many images.

Several processes (hosts) share a batch of images with --coordinator_address,
--num_processes and --process_id (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
JAX_PROCESS_ID; or a cluster manager `jax.distributed` detects, with --distributed).
"""

import os
import signal
import sys

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags

from ddip_jax import batch
from ddip_jax import config_check
from ddip_jax import engine
from ddip_jax import image_io
from ddip_jax import outputs
from ddip_jax import restarts
from ddip_jax import tasks

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/zebra.py', 'Task config file.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output folder (default: results/<config name>).')
_VERBOSE = flags.DEFINE_bool('verbose', False, 'Show full tracebacks for errors.')
_COORDINATOR = flags.DEFINE_string('coordinator_address', None,
                                   'host:port of process 0, for a batch shared by several processes.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Number of processes sharing the batch.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process\'s index, 0 .. num_processes - 1.')
_DISTRIBUTED = flags.DEFINE_bool('distributed', False,
                                 'Initialise jax.distributed even without the flags above (cluster managers).')
_COMPILATION_CACHE = flags.DEFINE_string(
    'compilation_cache', os.path.join(os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'),
                                      'ddip_jax', 'xla'),
    'Folder of JAX\'s persistent compilation cache: a rerun of the same config and image size skips '
    'the compilation of its steps. Empty: no cache.')


def _enable_compilation_cache(path: str) -> None:
  """Keeps every compiled program (the steps, and the small eager ones too) in `path` across runs."""
  if path:
    jax.config.update('jax_compilation_cache_dir', path)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)


def _prepare_workdir(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Creates the workdir and checks it is writable and holds no other config's run, before any work."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, '.write_test')
    with open(probe, 'w') as f:
      f.write('ok')
    os.remove(probe)
  except OSError as err:
    raise image_io.InputError(f'cannot write to --workdir {workdir!r}: {err.strerror or err}') from err
  outputs.check_workdir(workdir, config)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  config = _CONFIG.value
  config_name = os.path.splitext(os.path.basename(flags.FLAGS['config'].config_filename))[0]
  workdir = _WORKDIR.value or os.path.join('results', config_name)
  created = not os.path.exists(workdir)
  try:
    config_check.validate(config)
    _enable_compilation_cache(_COMPILATION_CACHE.value)
    batch.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                                 force=_DISTRIBUTED.value)
    _prepare_workdir(workdir, config)
    logging.info('task %s, writing to %s', config.task, workdir)
    if config.inputs:
      return 0 if all(row.ok for row in batch.run(config, workdir)) else 1
    metrics = restarts.run(tasks.TASKS[config.task], config, workdir)
  except engine.Interrupted as err:
    if config.loop.checkpoint_every > 0:
      print(f'{err}: the best result so far and a checkpoint are in {workdir}/; '
            'run the same command again to resume', file=sys.stderr)
    else:
      print(f'{err}: the best result so far is in {workdir}/ (checkpoints are off)', file=sys.stderr)
    return 128 + getattr(signal, err.reason, signal.SIGINT)
  except KeyboardInterrupt:  # Before or after the optimisation, or a second Ctrl-C.
    print('interrupted', file=sys.stderr)
    return 128 + signal.SIGINT
  except (image_io.InputError, config_check.ConfigError, engine.NumericalError, engine.CheckpointError) as err:
    if created and os.path.isdir(workdir) and not os.listdir(workdir):
      os.rmdir(workdir)  # Leave no empty folder behind for a run that never started.
    if _VERBOSE.value:
      raise
    print(f'error: {err}', file=sys.stderr)
    return 2
  summary = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and k != 'status'}
  print(f'done: outputs in {workdir}/  ' + '  '.join(
      f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in summary.items()))
  return 0


if __name__ == '__main__':
  app.run(lambda argv: sys.exit(main(argv)))

r"""The command line: runs a Double-DIP task from a config file (`main.py` and the `ddip-jax` command).

  python main.py --config=configs/zebra.py [--config.num_steps=500] [--workdir=DIR]
  python main.py --config=configs/zebra.py --config.inputs='photos/*.jpg' --workdir=DIR  # Many images.

The same command again resumes an interrupted run, or says 'already done' for a
finished one (--overwrite redoes it, replacing the results once it finishes).
One run owns a workdir at a time; every mistake is one `error:` line, exit 2.

Several processes (hosts) share a batch of images with --coordinator_address,
--num_processes and --process_id (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
JAX_PROCESS_ID; or a cluster manager `jax.distributed` detects, with --distributed).
"""

import functools
import os
import signal
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from ddip_jax import api
from ddip_jax import batch
from ddip_jax import cli
from ddip_jax import errors
from ddip_jax import memory
from ddip_jax import resume
from ddip_jax import runner
from ddip_jax import tasks

_DEFAULT_CONFIG = 'configs/zebra.py'
# No default here: it would be loaded, with the command line's overrides, before
# any mistake in them can be reported; `cli.parse` supplies _DEFAULT_CONFIG.
_CONFIG = config_flags.DEFINE_config_file(
    'config', None, f'Task config file (default: {_DEFAULT_CONFIG}).', lock_config=True
)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output folder (default: results/<config name>).')
_VERBOSE = flags.DEFINE_bool('verbose', False, 'Show full tracebacks for errors.')
_OVERWRITE = flags.DEFINE_bool(
    'overwrite',
    False,
    'Run again even if the workdir holds a finished run of this config (or one made '
    'from other input files); its results are replaced only once the new run finishes.',
)
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'host:port of process 0, for a batch shared by several processes.'
)
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Number of processes sharing the batch.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, "This process's index, 0 .. num_processes - 1.")
_BIND_ADDRESS = flags.DEFINE_string(
    'coordinator_bind_address',
    None,
    "Where process 0's coordinator listens (default: --coordinator_address; " '[::]:PORT for every interface).',
)
_DISTRIBUTED = flags.DEFINE_bool(
    'distributed', False, 'Initialise jax.distributed even without the flags above (cluster managers).'
)
_COMPILATION_CACHE = flags.DEFINE_string(
    'compilation_cache',
    os.path.join(os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'ddip_jax', 'xla'),
    "Folder of JAX's persistent compilation cache: a rerun of the same config and image size skips "
    'the compilation of its steps. Empty: no cache.',
)


def _enable_compilation_cache(path: str) -> None:
  """Keeps every compiled program (the steps, and the small eager ones too) in `path` across runs."""
  if path:
    jax.config.update('jax_compilation_cache_dir', path)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)


def _where_it_stands(config, workdir: str) -> str:
  """After an interruption outside an optimisation: whether the outputs are complete, and what to do."""
  if config.inputs:
    return (
        f': {os.path.join(workdir, batch.RESULTS)} lists the images finished; run the same command again '
        'for the others'
    )
  if runner.finished_metrics(workdir, config) is not None:
    return f'after the run finished: its outputs are complete in {workdir}/'
  return 'before the outputs were complete: run the same command again to resume (or redo) it'


def main(argv):
  del argv  # Only the program name: `cli.parse` refuses extra arguments.
  config = _CONFIG.value
  config_name = os.path.splitext(os.path.basename(flags.FLAGS['config'].config_filename.split(':')[0]))[0]
  workdir = _WORKDIR.value or os.path.join('results', config_name)
  created = not os.path.exists(workdir)
  try:
    with resume.terminating():  # SIGTERM outside an optimisation: a message and 143, as Ctrl-C's 130.
      tasks.validate(config)
      _enable_compilation_cache(_COMPILATION_CACHE.value)
      batch.initialize_distributed(
          _COORDINATOR.value,
          _NUM_PROCESSES.value,
          _PROCESS_ID.value,
          force=_DISTRIBUTED.value,
          bind_address=_BIND_ADDRESS.value,
      )
      logging.info('task %s, writing to %s', config.task, workdir)
      if config.inputs:
        return 1 if any(row.failed for row in batch.run(config, workdir, overwrite=_OVERWRITE.value)) else 0
      metrics, already_done = api.run_config(config, workdir, overwrite=_OVERWRITE.value)
  except errors.Interrupted as err:
    where = getattr(err, 'workdir', workdir)
    if config.loop.checkpoint_every > 0:
      print(
          f'{err}: the best result so far and a checkpoint are in {where}/; ' 'run the same command again to resume',
          file=sys.stderr,
      )
    else:
      print(f'{err}: the best result so far is in {where}/ (checkpoints are off)', file=sys.stderr)
    return 128 + getattr(signal, err.reason, signal.SIGINT)
  except (KeyboardInterrupt, errors.Terminated) as err:  # Outside an optimisation, or a second Ctrl-C.
    name = 'SIGTERM' if isinstance(err, errors.Terminated) else 'SIGINT'
    print(f'interrupted ({name}) ' + _where_it_stands(config, workdir), file=sys.stderr)
    return 128 + getattr(signal, name)
  except (errors.Error, MemoryError) as err:  # Every error of ours is one line (errors.py).
    if created and os.path.isdir(workdir) and not os.listdir(workdir):
      os.rmdir(workdir)  # Leave no empty folder behind for a run that never started.
    if _VERBOSE.value:
      raise
    if isinstance(err, MemoryError):
      err = f'out of memory; {memory.MEMORY_ENV} set lower refuses such inputs before they start'
    print(f'error: {err}', file=sys.stderr)
    return 2
  summary = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and k != 'status'}
  print(
      ('already done (same config and input files; --overwrite to run it again)' if already_done else 'done')
      + f': outputs in {workdir}/  '
      + '  '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in summary.items())
  )
  return 0


def run() -> None:
  """The program: `python main.py ...` and the `ddip-jax` command (pyproject.toml) run this."""
  app.run(
      lambda argv: sys.exit(main(argv)),
      flags_parser=functools.partial(cli.parse_or_exit, default_config=_DEFAULT_CONFIG),
  )

"""A run's workdir: who owns it, what run it holds, and when that run may be resumed or replaced.

Guarantees, for every task and for each image of a batch (`run`):
- **One owner.** A run holds an exclusive lock on `<workdir>/.lock`
  (`fcntl.flock`, released by the OS when the process dies, even by kill -9);
  a second run into the same workdir is refused, naming the holder's PID.
- **Runs never mix.** A workdir holding a run (a checkpoint or a metrics.json)
  of another config is refused, naming the differing fields; one made from
  other input files (their SHA-256 are recorded in every checkpoint and
  metrics.json) is refused naming the file (`check_workdir`).
- **Finished results stay.** Running the same config on the same inputs again
  finds the finished run and returns it untouched ('already done'). With
  `overwrite`, the new run is made in `<workdir>/.overwrite/` and moved in only
  once it has finished, so an interrupted or failed redo leaves the finished
  results whole (and resumes from its own checkpoint when run again).
- **Inputs are never written over.** A workdir that holds (at any depth) one
  of the run's input files is refused before anything is written
  (`check_inputs_outside`); only its `.inputs/` folder, where the Python API
  keeps the arrays it was given and no run writes, may hold inputs.
"""

from collections.abc import Callable, Iterator
import contextlib
import fcntl
import glob
import json
import os
import shutil
from typing import Any

import ml_collections

from ddip_jax import checkpoint_io
from ddip_jax import clip_io
from ddip_jax import config_check
from ddip_jax import errors
from ddip_jax import image_io
from ddip_jax import writing

CHECKPOINT = 'checkpoint.msgpack'  # In the workdir; a task running several optimisations names each.
METRICS = 'metrics.json'
LOCK = '.lock'  # In the workdir while a run owns it; holds the owner's PID.
STAGING = '.overwrite'  # In the workdir: where an `overwrite` run is made before it replaces the finished one.
INPUTS = '.inputs'  # In the workdir: the Python API's array inputs, named by content; no run writes there.
# Config fields that cannot change a run's results: a run in a workdir can be
# resumed, or its outputs replaced, by a config that differs only in these.
_NOT_RESULT_FIELDS = ('progress', 'loop.checkpoint_every')


WorkdirBusy = errors.WorkdirBusy


# The errors of a run that are the user's to fix (bad input, config or disk; NaN/Inf): the command line
# prints them as one `error:` line, a batch records them for the image and goes on.
RUN_ERRORS = (errors.InputError, errors.ConfigError, errors.NumericalError, errors.CheckpointError)


def run_config(config: ml_collections.ConfigDict | dict[str, Any]) -> dict[str, Any]:
  """The config as JSON data, without the fields that cannot change results."""
  data = json.loads(json.dumps(config.to_dict() if hasattr(config, 'to_dict') else config))
  for field in _NOT_RESULT_FIELDS:
    *parents, leaf = field.split('.')
    node = data
    for name in parents:
      node = node.get(name, {}) if isinstance(node, dict) else {}
    if isinstance(node, dict):
      node.pop(leaf, None)
  return data


def run_record(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """What every metrics.json records to identify its run: the seed, the full config, the inputs' SHA-256."""
  return {'seed': config.seed, 'config': config.to_dict(), 'input_sha256': input_digests(config)}


def _inside(path: str, folder: str) -> bool:
  return os.path.commonpath([path, folder]) == folder


def check_inputs_outside(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Refuses a workdir that holds one of the run's input files, at any depth, so outputs never replace one.

  A run writes its layers, restarts, frames and checkpoints anywhere under its
  workdir (and `overwrite` swaps folders in), so no input may live there, by
  its path or through symbolic links; the workdir's `INPUTS` folder is the
  exception (no run writes there).

  Raises:
    image_io.InputError: naming the first input file found in `workdir`.
  """
  folder, real_folder = os.path.abspath(workdir), os.path.realpath(workdir)
  for path in config_check.input_files(config):
    plain = os.path.abspath(path)
    real = os.path.join(os.path.realpath(os.path.dirname(plain)), os.path.basename(plain))
    inside = [(p, f) for p, f in ((plain, folder), (real, real_folder)) if _inside(p, f)]
    if inside and not any(_inside(p, os.path.join(f, INPUTS)) for p, f in inside):
      raise image_io.InputError(
          f"--workdir {workdir!r} holds the input {path!r}: the run's outputs could replace it; give a "
          '--workdir that holds none of its inputs (e.g. a new folder in results/)'
      )


def input_digests(config: ml_collections.ConfigDict | dict[str, Any]) -> dict[str, str]:
  """SHA-256 of every input file `config` names (`config_check.INPUT_FILE_FIELDS`), by path."""
  config = config if isinstance(config, ml_collections.ConfigDict) else ml_collections.ConfigDict(config)
  return clip_io.file_digests(config_check.input_files(config))


def run_tag(config: ml_collections.ConfigDict) -> str:
  """What identifies a run in its checkpoints: the config (`run_config`) and its inputs' digests, as JSON."""
  return json.dumps({'config': run_config(config), 'input_sha256': input_digests(config)}, sort_keys=True)


def _read_metrics(workdir: str) -> dict[str, Any] | None:
  try:
    with open(os.path.join(workdir, METRICS)) as f:
      metrics = json.load(f)
  except (OSError, ValueError):
    return None
  return metrics if isinstance(metrics, dict) else None


def finished_metrics(workdir: str, config: ml_collections.ConfigDict) -> dict[str, Any] | None:
  """The metrics of a finished run (status 'ok') of `config` on the same input files in `workdir`, or None.

  Lets a caller that runs many optimisations (restarts, many images) skip the
  ones already done when the same command runs again.
  """
  metrics = _read_metrics(workdir)
  if (
      metrics is None
      or metrics.get('status') != 'ok'
      or not isinstance(metrics.get('config'), dict)
      or run_config(metrics['config']) != run_config(config)
  ):
    return None
  return metrics if metrics.get('input_sha256') == input_digests(config) else None


def _flatten(data: Any, prefix: str = '') -> dict[str, Any]:
  if not isinstance(data, dict):
    return {prefix: data}
  flat = {}
  for name, value in data.items():
    flat.update(_flatten(value, f'{prefix}{name}.' if isinstance(value, dict) else f'{prefix}{name}'))
  return flat


def _differences(old: dict[str, Any], new: dict[str, Any], describe: Callable[[str, Any, Any], str]) -> str:
  """The first 3 keys whose values differ, described; '<unset>' stands for a missing key."""
  keys = sorted(k for k in old.keys() | new.keys() if old.get(k, '<unset>') != new.get(k, '<unset>'))
  what = '; '.join(describe(k, old.get(k, '<unset>'), new.get(k, '<unset>')) for k in keys[:3])
  return what + (f' and {len(keys) - 3} more' if len(keys) > 3 else '')


def _changed_file(path: str, old: str, new: str) -> str:
  if new == '<unset>':
    return f'{path!r} is missing now'
  if old == '<unset>':
    return f'{path!r} is new'
  return f'{path!r} changed: sha256 {old[:12]}... there, {new[:12]}... now'


def check_workdir(workdir: str, config: ml_collections.ConfigDict, *, inputs: bool = True) -> None:
  """Refuses a workdir that holds a run of another config or other input files, so that runs never mix.

  A workdir holds a run when it has a checkpoint (or, without one, a
  metrics.json); that run's config must equal `config` except for fields that
  cannot change results (`progress`, `loop.checkpoint_every`), and (if
  `inputs`) the SHA-256 of the input files it recorded must be the files' now.

  Raises:
    image_io.InputError: naming the first differing fields, or the changed file.
    checkpoint_io.CheckpointError: the checkpoint cannot be read.
  """
  checkpoints = checkpoint_files(workdir)
  if checkpoints:
    source, tag = checkpoints[0], checkpoint_io.load_checkpoint(checkpoints[0]).get('tag')
    try:
      record = json.loads(tag)
    except (TypeError, ValueError):
      record = None
  else:
    source, record = os.path.join(workdir, METRICS), _read_metrics(workdir)
    if record is None and not os.path.exists(source):
      return
  record = record if isinstance(record, dict) else {}
  if 'config' not in record and 'task' in record:  # An older version's checkpoint tag: the config alone.
    record = {'config': record}
  stored = run_config(record['config']) if isinstance(record.get('config'), dict) else None
  if stored != run_config(config):
    what = (
        f'{source} records no config'
        if stored is None
        else _differences(
            _flatten(stored), _flatten(run_config(config)), lambda k, old, new: f'{k}: {old!r} there, {new!r} now'
        )
    )
    raise image_io.InputError(
        f'--workdir {workdir!r} holds a run of another config ({what}); ' 'give another --workdir, or empty that one'
    )
  recorded, current = record.get('input_sha256'), input_digests(config)
  if inputs and recorded != current:
    what = (
        _differences(recorded, current, _changed_file)
        if isinstance(recorded, dict)
        else f'{source} records no input digests (an older version)'
    )
    raise image_io.InputError(
        f'--workdir {workdir!r} holds a run of other input files ({what}); '
        'give another --workdir, or add --overwrite to redo it'
    )


def checkpoint_files(workdir: str) -> list[str]:
  """The checkpoints in `workdir` (`checkpoint.msgpack`, `checkpoint_<name>.msgpack`)."""
  return sorted(glob.glob(os.path.join(glob.escape(workdir), CHECKPOINT.replace('.', '*.', 1))))


def checkpoint_path(workdir: str, name: str = '') -> str:
  """`workdir`/checkpoint.msgpack, or checkpoint_<name>.msgpack for a named optimisation."""
  return os.path.join(workdir, CHECKPOINT.replace('.', f'_{name}.', 1) if name else CHECKPOINT)


def remove_checkpoints(workdir: str) -> None:
  """Removes the workdir's checkpoints, once a finished run's outputs are written."""
  for path in checkpoint_files(workdir):
    os.remove(path)


def _holder(path: str) -> str:
  try:
    with open(path) as f:
      pid = f.read().strip()
  except OSError:
    pid = ''
  return f'pid {pid}' if pid.isdigit() else 'pid unknown'


def _lock(path: str, workdir: str) -> int:
  """An open descriptor of the lock file at `path`, exclusively locked, with our PID written in it.

  The PID is only for messages: a full disk that cannot take it leaves the lock held all the same.
  """
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      if os.path.samestat(os.fstat(fd), os.stat(path)):
        with contextlib.suppress(OSError):
          os.ftruncate(fd, 0)
          os.write(fd, f'{os.getpid()}\n'.encode())
        return fd
    except BlockingIOError:
      os.close(fd)
      raise WorkdirBusy(
          f'--workdir {workdir!r} is in use by another run ({_holder(path)}); wait for it to '
          'finish, or give another --workdir'
      ) from None
    except FileNotFoundError:
      pass  # Locked a lock file that its owner has just removed: try again.
    except BaseException:
      os.close(fd)
      raise
    os.close(fd)


@contextlib.contextmanager
def owned(workdir: str) -> Iterator[None]:
  """Makes this process the one owner of `workdir` (created if needed) while the block runs.

  An exclusive `flock` on `<workdir>/.lock`, which holds our PID; the lock
  dies with the process. The file is removed on release; a process that
  locked a file being removed sees that it is no longer the one at that path
  and tries again.

  Raises:
    WorkdirBusy: another process (or thread) owns `workdir`.
    image_io.InputError: `workdir` cannot be created or written.
  """
  path = os.path.join(workdir, LOCK)
  created = not os.path.lexists(workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
    fd = _lock(path, workdir)
  except OSError as err:
    if created:  # Leave no folder behind (a full disk can make the folder but not the lock file).
      with contextlib.suppress(OSError):
        os.rmdir(workdir)
    raise image_io.InputError(f'cannot use --workdir {workdir!r}: {err.strerror or err}') from err
  try:
    yield
  finally:
    with contextlib.suppress(OSError):
      os.remove(path)
    os.close(fd)


def _swap_in(staging: str, workdir: str) -> None:
  """Replaces the run in `workdir` by the finished one in `staging` (same config, so the same file names).

  The old metrics.json goes first and the new one comes last, so the workdir
  never claims a finished run while its files change.
  """
  try:
    with contextlib.suppress(FileNotFoundError):
      os.remove(os.path.join(workdir, METRICS))
    remove_checkpoints(workdir)
    for name in sorted(os.listdir(staging), key=lambda n: n == METRICS):
      target = os.path.join(workdir, name)
      if os.path.isdir(target) and not os.path.islink(target):
        shutil.rmtree(target)
      os.replace(os.path.join(staging, name), target)
    os.rmdir(staging)
  except OSError as err:
    raise writing.OutputError(
        f'cannot move the new results from {staging!r} into {workdir!r}: ' f'{err.strerror or err}'
    ) from err


def run(
    run_fn: Callable[[ml_collections.ConfigDict, str], dict[str, Any]],
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    overwrite: bool = False,
) -> tuple[dict[str, Any], bool]:
  """Runs `run_fn(config, workdir)` as the one owner of `workdir` (see the module docstring).

  Args:
    run_fn: the run, e.g. `functools.partial(restarts.run, task)`.
    config: the full config.
    workdir: the output folder.
    overwrite: redo a run of this config that `workdir` holds (finished, or
      made from other input files); the new results replace it once finished.

  Returns:
    (metrics, already_done): the finished run's metrics, and whether they are
    those of a run found finished in `workdir` (then nothing was run or written).

  Raises:
    WorkdirBusy: another process owns `workdir`.
    image_io.InputError: `workdir` holds one of the inputs, or a run of
      another config, or of other input files without `overwrite`.
    engine.Stopped: the run stopped early; `err.workdir` is the folder that
      holds its best result so far and its checkpoint.
    Whatever `run_fn` raises.
  """
  check_inputs_outside(workdir, config)
  done = finished_metrics(workdir, config)
  if done is not None and not overwrite:  # Read only, no lock: a finished run is 'already done' even on a full disk.
    return done, True
  with owned(workdir):
    target = workdir
    try:
      done = finished_metrics(workdir, config)
      if done is not None and not overwrite:
        return done, True
      check_workdir(workdir, config, inputs=not overwrite)
      if overwrite and (checkpoint_files(workdir) or os.path.exists(os.path.join(workdir, METRICS))):
        target = os.path.join(workdir, STAGING)
        try:
          check_workdir(target, config)
        except (errors.InputError, errors.CheckpointError):
          shutil.rmtree(target, ignore_errors=True)  # Our own folder: a redo of other inputs, not to resume.
        metrics = finished_metrics(target, config) or run_fn(config, target)
        _swap_in(target, workdir)
        return metrics, False
      return run_fn(config, workdir), False
    except errors.Stopped as err:
      err.workdir = getattr(err, 'workdir', None) or target
      raise

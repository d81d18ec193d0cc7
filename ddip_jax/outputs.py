"""What every task shares around its optimisation: working resolution, loop
options from the config, running the optimisation with checkpoints in the
workdir and a clean stop on Ctrl-C / SIGTERM, and writing layers, the summary
picture and metrics."""

from collections.abc import Callable, Iterator
import contextlib
import glob
import importlib.metadata
import json
import os
import platform
import signal
import threading
from typing import Any

from absl import logging
import jax
import ml_collections
import numpy as np

from ddip_jax import engine
from ddip_jax import image_io

CHECKPOINT = 'checkpoint.msgpack'  # In the workdir; a task running several optimisations names each.
# Config fields that cannot change a run's results: a run in a workdir can be
# resumed, or its outputs replaced, by a config that differs only in these.
_NOT_RESULT_FIELDS = ('progress', 'loop.checkpoint_every')
# Metrics that measure wall-clock time (everything else is reproducible).
_TIMINGS = ('seconds', 'steps_per_second', 'hint_seconds', 'frames_per_second')


def working_image(image: np.ndarray, max_side: int, *, min_side: int = 1,
                  path: str = 'the image') -> tuple[np.ndarray, float]:
  """Downscales an image so that its longer side is at most `max_side`.

  Args:
    image: (H, W, C) float in [0, 1].
    max_side: the working resolution's longest side (<= 0: no limit).
    min_side: the shortest side the working image may have.
    path: names the image in messages.

  Returns:
    (working image, scale) with scale = working side / original side (<= 1).

  Raises:
    image_io.InputError: the working image has a side shorter than `min_side`.
  """
  height, width = image.shape[:2]
  longest = max(height, width)
  working, scale = image, 1.0
  if 0 < max_side < longest:
    scale = max_side / longest
    shape = (max(1, round(height * scale)), max(1, round(width * scale)))
    working = image_io.resize_image(image, shape)
    logging.info('%s is %dx%d: working at %dx%d (max_side=%d), results come back at full size',
                 path, width, height, shape[1], shape[0], max_side)
  if min(working.shape[:2]) < min_side:
    scaled = f', {working.shape[1]}x{working.shape[0]} at max_side={max_side}' if scale < 1 else ''
    raise image_io.InputError(f'{path} is {width}x{height}{scaled}: too small, the generators need '
                              f'sides of at least {min_side} pixels')
  return working, scale


def loop_options(config: ml_collections.ConfigDict) -> engine.LoopOptions:
  """The engine's loop options from `config.loop` and `config.progress`."""
  return engine.LoopOptions(
      strategy=config.loop.strategy,
      steps_per_call=config.loop.steps_per_call,
      check_every=config.loop.check_every,
      num_perturbations=config.loop.num_perturbations,
      progress=config.progress,
      cpu_convolutions=config.loop.cpu_convolutions,
  )


def without_timings(metrics: Any) -> Any:
  """`metrics` less its wall-clock entries: what must match between two runs of one config."""
  if isinstance(metrics, dict):
    return {k: without_timings(v) for k, v in metrics.items() if k not in _TIMINGS}
  return metrics


def environment() -> dict[str, Any]:
  """Versions and backend, recorded in every metrics file."""
  import flax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top

  return {
      'python': platform.python_version(),
      'jax': jax.__version__,
      'jaxlib': importlib.metadata.version('jaxlib'),
      'flax': flax.__version__,
      'optax': optax.__version__,
      'numpy': np.__version__,
      'backend': jax.default_backend(),
      'devices': [str(d) for d in jax.devices()],
  }


def write_outputs(
    workdir: str,
    config: ml_collections.ConfigDict,
    *,
    images: dict[str, np.ndarray],
    metrics: dict[str, Any],
    summary: list[tuple[str, np.ndarray]] | np.ndarray,
) -> None:
  """Writes `<name>.png` for every image, `summary.png` and `metrics.json`.

  `summary` is a list of (title, image) panels for `image_io.make_summary`, or
  the finished (H, W, 3) picture. A name may hold a folder ('fg/0003').

  Every file is written atomically, so an interrupted run never leaves a
  half-written output; metrics also record the config, seed and environment.
  """
  os.makedirs(workdir, exist_ok=True)
  for name, img in images.items():
    image_io.save_image(os.path.join(workdir, f'{name}.png'), img)
  picture = summary if isinstance(summary, np.ndarray) else image_io.make_summary(summary)
  image_io.save_image(os.path.join(workdir, 'summary.png'), picture)
  record = {
      **metrics,
      'seed': config.seed,
      'config': config.to_dict(),
      'environment': environment(),
  }
  image_io.write_json(os.path.join(workdir, 'metrics.json'), record)


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


def finished_metrics(workdir: str, config: ml_collections.ConfigDict) -> dict[str, Any] | None:
  """The metrics of a finished run (status 'ok') of `config` in `workdir`, or None.

  Lets a caller that runs many optimisations (restarts, many images) skip the
  ones already done when the same command runs again.
  """
  try:
    with open(os.path.join(workdir, 'metrics.json')) as f:
      metrics = json.load(f)
  except (OSError, ValueError):
    return None
  if not isinstance(metrics, dict) or metrics.get('status') != 'ok' or not isinstance(metrics.get('config'), dict):
    return None
  return metrics if run_config(metrics['config']) == run_config(config) else None


def _flatten(data: Any, prefix: str = '') -> dict[str, Any]:
  if not isinstance(data, dict):
    return {prefix: data}
  flat = {}
  for name, value in data.items():
    flat.update(_flatten(value, f'{prefix}{name}.' if isinstance(value, dict) else f'{prefix}{name}'))
  return flat


def check_workdir(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Refuses a workdir that holds a run of another config, so that runs never mix.

  A workdir holds a run when it has a checkpoint (or, without one, a
  metrics.json); that run's config must equal `config` except for fields that
  cannot change results (`progress`, `loop.checkpoint_every`).

  Raises:
    image_io.InputError: naming the first differing fields.
    engine.CheckpointError: the checkpoint cannot be read.
  """
  checkpoints = _checkpoints(workdir)
  metrics = os.path.join(workdir, 'metrics.json')
  if checkpoints:
    source, tag = checkpoints[0], engine.load_checkpoint(checkpoints[0]).get('tag')
    try:
      stored = json.loads(tag)
    except (TypeError, ValueError):
      stored = None
  elif os.path.exists(metrics):
    source = metrics
    try:
      with open(metrics) as f:
        stored = run_config(json.load(f)['config'])
    except (OSError, KeyError, TypeError, ValueError):
      stored = None
  else:
    return
  current = run_config(config)
  if stored == current:
    return
  if stored is None:
    what = f'{source} records no config'
  else:
    old, new = _flatten(stored), _flatten(current)
    fields = sorted(k for k in old.keys() | new.keys() if old.get(k, '<unset>') != new.get(k, '<unset>'))
    what = '; '.join(f'{k}: {old.get(k, "<unset>")!r} there, {new.get(k, "<unset>")!r} now' for k in fields[:3])
    what += f' and {len(fields) - 3} more' if len(fields) > 3 else ''
  raise image_io.InputError(f'--workdir {workdir!r} holds a run of another config ({what}); '
                            'give another --workdir, or empty that one')


def _checkpoints(workdir: str) -> list[str]:
  return sorted(glob.glob(os.path.join(glob.escape(workdir), CHECKPOINT.replace('.', '*.', 1))))


def checkpoint_path(workdir: str, name: str = '') -> str:
  """`workdir`/checkpoint.msgpack, or checkpoint_<name>.msgpack for a named optimisation."""
  return os.path.join(workdir, CHECKPOINT.replace('.', f'_{name}.', 1) if name else CHECKPOINT)


def checkpointing(config: ml_collections.ConfigDict, workdir: str, *, name: str = '') -> engine.Checkpointing | None:
  """`engine.optimize`'s checkpoint options for a run of `config` in `workdir`.

  A task that runs several optimisations (e.g. passes) gives each its own
  `name`. None when `config.loop.checkpoint_every` is 0.
  """
  if config.loop.checkpoint_every <= 0:
    return None
  return engine.Checkpointing(checkpoint_path(workdir, name), every=config.loop.checkpoint_every,
                              tag=json.dumps(run_config(config), sort_keys=True))


# The stop request of the main thread's active `stop_on_signals`, shared with
# worker threads (e.g. one per device), where Python cannot install handlers.
_main_thread_stop: list[Callable[[], str | None]] = []


@contextlib.contextmanager
def stop_on_signals(
    signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
) -> Iterator[Callable[[], str | None]]:
  """Turns the first Ctrl-C / SIGTERM into a stop request for `engine.optimize`.

  Yields a callable, for `engine.optimize(stop=...)`, that returns the signal's
  name ('SIGINT', 'SIGTERM') once one has arrived and None before. The first
  signal restores the previous handlers, so a second one acts at once (Ctrl-C:
  KeyboardInterrupt); the handlers are restored on exit too. Outside the main
  thread, where Python cannot install handlers, nothing is installed: the
  callable is that of the main thread's active `stop_on_signals` if there is
  one (so runs in worker threads stop too), else it never asks to stop.
  """
  received = []
  if threading.current_thread() is not threading.main_thread():
    yield _main_thread_stop[-1] if _main_thread_stop else (lambda: None)
    return
  previous = {s: signal.getsignal(s) for s in signals}

  def restore():
    for s, handler in previous.items():
      signal.signal(s, signal.SIG_DFL if handler is None else handler)

  def on_signal(signum, frame):
    del frame
    received.append(signal.Signals(signum).name)
    restore()
    logging.warning('%s: stopping after the current steps, writing a checkpoint and the best result so far '
                    '(again to quit at once)', received[0])

  def stop():
    return received[0] if received else None

  for s in signals:
    signal.signal(s, on_signal)
  _main_thread_stop.append(stop)
  try:
    yield stop
  finally:
    _main_thread_stop.remove(stop)
    restore()


def optimize_and_write(
    problem: engine.Problem,
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    key: jax.Array,
    finish: Callable[[engine.Result, str], dict[str, Any]],
) -> dict[str, Any]:
  """Runs a task's problem with checkpoints in `workdir`, then writes its outputs.

  Every task ends with this. The run resumes from the workdir's checkpoint if
  there is one (a workdir holding another config's run is refused), saves one
  every `config.loop.checkpoint_every` steps and at every stage's end, and stops
  cleanly on Ctrl-C / SIGTERM. When the run stops early (NaN/Inf, interrupted),
  the best result so far is written, with status 'stopped: <why>', before the
  error is re-raised. Once the outputs of the finished run are written, the
  checkpoint is removed (it can be large; a rerun gives the same outputs).

  Args:
    problem: the task's problem.
    config: the full config.
    workdir: the output folder.
    key: the root key for `engine.optimize`.
    finish: finish(result, status) writes every output and returns the metrics.

  Returns:
    `finish`'s metrics for the finished run (status 'ok').

  Raises:
    engine.NumericalError, engine.Interrupted: after writing the best result so far.
    engine.CheckpointError, image_io.InputError: the workdir holds another run.
  """
  check_workdir(workdir, config)
  with stop_on_signals() as stop:
    try:
      result = engine.optimize(problem, key=key, options=loop_options(config),
                               checkpoint=checkpointing(config, workdir), stop=stop)
    except engine.Stopped as err:
      if err.result.best:
        finish(err.result, f'stopped: {err}')
      raise
  metrics = finish(result, 'ok')
  remove_checkpoints(workdir)
  return metrics


def remove_checkpoints(workdir: str) -> None:
  """Removes the workdir's checkpoints, once a finished run's outputs are written."""
  for path in _checkpoints(workdir):
    os.remove(path)


def optimize_parts_and_write(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    num_parts: int,
    part_name: str,
    key: jax.Array,
    problem: Callable[[int], engine.Problem],
    keep: Callable[[int, engine.Result], None],
    finish: Callable[[str], dict[str, Any]],
) -> dict[str, Any]:
  """`optimize_and_write` for a task that runs several optimisations in turn.

  Part i (dehazing passes, video windows) is `problem(i)`, built when part i-1
  is done, optimised with key fold_in(key, i) and its own checkpoint in the
  workdir (`<part_name><i + 1>`): a rerun resumes the part that was running and
  finished parts come back from theirs at once. `keep(i, result)` records each
  part's result. When a part stops early (NaN/Inf, Ctrl-C / SIGTERM), its best
  result so far, if any, is kept too, and if anything was kept the outputs are
  written with status 'stopped in <part_name> <i + 1>: <why>' before the error
  is re-raised. Once the finished run's outputs are written, the checkpoints
  are removed.

  Args:
    config: the full config.
    workdir: the output folder.
    num_parts: how many optimisations.
    part_name: names the parts in checkpoints and statuses, e.g. 'pass'.
    key: the root key; part i uses fold_in(key, i).
    problem: problem(i) builds part i's problem.
    keep: keep(i, result) records part i's result.
    finish: finish(status) writes every output from the kept results and
      returns the metrics.

  Returns:
    `finish`'s metrics for the finished run (status 'ok').

  Raises:
    engine.NumericalError, engine.Interrupted: after writing what was kept.
    engine.CheckpointError, image_io.InputError: the workdir holds another run.
  """
  check_workdir(workdir, config)
  kept = False
  with stop_on_signals() as stop:
    for index in range(num_parts):
      try:
        result = engine.optimize(problem(index), key=jax.random.fold_in(key, index), options=loop_options(config),
                                 checkpoint=checkpointing(config, workdir, name=f'{part_name}{index + 1}'),
                                 stop=stop)
      except engine.Stopped as err:
        if err.result.best:
          keep(index, err.result)
          kept = True
        if kept:
          finish(f'stopped in {part_name} {index + 1}: {err}')
        raise
      keep(index, result)
      kept = True
  metrics = finish('ok')
  remove_checkpoints(workdir)
  return metrics

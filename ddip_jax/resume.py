"""A task's optimisation in its workdir: checkpoints to resume from, a clean stop on Ctrl-C / SIGTERM,
and the best result so far written when a run stops early.

Every optimisation goes through `solve`, or `solve_parts` for several in turn
(dehazing passes, video windows, watermark runs), in memory or with checkpoints
in a workdir. Every task decomposes in memory (`tasks.<task>.decompose`) and
runs in its workdir through `run_decomposition` / `decompose_and_write`;
`optimize_and_write` remains for a `finish` that writes its own files (tests).
`runner.run` around it owns the workdir and decides whether to run at all.
"""

from collections.abc import Callable, Iterator
import contextlib
import signal
import threading
from typing import Any, TypeVar

from absl import logging
import jax
import ml_collections

from ddip_jax import checkpoint_io
from ddip_jax import engine
from ddip_jax import errors
from ddip_jax import hooks
from ddip_jax import outputs
from ddip_jax import runner

T = TypeVar('T')


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


def checkpointing(
    config: ml_collections.ConfigDict, workdir: str, *, name: str = ''
) -> checkpoint_io.Checkpointing | None:
  """`engine.optimize`'s checkpoint options for a run of `config` in `workdir`.

  A task that runs several optimisations (e.g. passes) gives each its own
  `name`. None when `config.loop.checkpoint_every` is 0.
  """
  if config.loop.checkpoint_every <= 0:
    return None
  return checkpoint_io.Checkpointing(
      runner.checkpoint_path(workdir, name), every=config.loop.checkpoint_every, tag=runner.run_tag(config)
  )


Terminated = errors.Terminated


@contextlib.contextmanager
def terminating() -> Iterator[None]:
  """Makes SIGTERM raise `Terminated` in the main thread while the block runs, so that the command line
  says where the run stands and exits with 143 instead of dying silently; `stop_on_signals` turns it into
  a clean stop during an optimisation."""

  def on_sigterm(signum, frame):
    del signum, frame
    raise Terminated('SIGTERM')

  previous = signal.signal(signal.SIGTERM, on_sigterm)
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, previous)


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
  KeyboardInterrupt); the handlers are restored on exit too. A signal that no
  stop acted on (it came as the last steps ran, and the block ended normally)
  is delivered again to the previous handler on exit, so it is never lost. Outside the main
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
    logging.warning(
        '%s: stopping after the current steps, writing a checkpoint and the best result so far '
        '(again to quit at once)',
        received[0],
    )

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
  if received:  # The block ended normally: nothing stopped for it.
    signal.raise_signal(signal.Signals[received[0]])


def solve(
    problem: engine.Problem,
    config: ml_collections.ConfigDict,
    *,
    key: jax.Array,
    finish: Callable[[engine.Result, str], T],
    checkpoints: str | None = None,
) -> T:
  """Runs a task's problem and returns `finish(result, 'ok')`: every task's optimisation goes through here.

  In memory unless `checkpoints` names a workdir: then the run resumes from
  its checkpoint if there is one, saves one every `config.loop.checkpoint_every`
  steps and at every stage's end. Either way the first Ctrl-C / SIGTERM stops
  it cleanly (`stop_on_signals`). When it stops early (NaN/Inf, interrupted),
  the error is re-raised with `partial` = finish(best so far, 'stopped: <why>')
  (None when there is no result yet), for `decompose_and_write` to write.

  Args:
    problem: the task's problem.
    config: the full config.
    key: the root key for `engine.optimize`.
    finish: finish(result, status) makes the task's result from the optimisation's.
    checkpoints: the workdir to keep checkpoints in, or None.

  Raises:
    engine.NumericalError, engine.Interrupted: with `partial` set.
    checkpoint_io.CheckpointError: the checkpoint is of another run.
  """
  with stop_on_signals() as stop:
    try:
      result = engine.optimize(
          problem,
          key=key,
          options=loop_options(config),
          checkpoint=checkpointing(config, checkpoints) if checkpoints else None,
          stop=stop,
      )
    except engine.Stopped as err:
      if err.result.best:
        err.partial = finish(err.result, f'stopped: {err}')
      raise
  return finish(result, 'ok')


def decompose_and_write(
    config: ml_collections.ConfigDict, workdir: str, decompose: Callable[[], T], write: Callable[[T], None]
) -> T:
  """A task's run in its workdir: `decompose()` (which `solve`s with checkpoints in `workdir`), then `write` its result.

  The workdir must not hold another config's run (checked first). A run
  stopped early writes its best result so far (the error's `partial`) before the
  error is re-raised. Once the finished run's outputs are written, the
  checkpoints are removed (they can be large; a rerun gives the same outputs).

  Raises:
    engine.NumericalError, engine.Interrupted: after writing the best result so far.
    checkpoint_io.CheckpointError, image_io.InputError: the workdir holds another run.
  """
  runner.check_workdir(workdir, config)
  try:
    result = decompose()
  except engine.Stopped as err:
    if err.partial is not None:
      write(err.partial)
    raise
  write(result)
  runner.remove_checkpoints(workdir)
  return result


def run_decomposition(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    load_inputs: Callable[[Any], Any],
    decompose: Callable[..., Any],
    write: Callable[[Any, Any, str], None] | None = None,
) -> dict[str, Any]:
  """A task's `run(config, workdir)`: files in (`load_inputs(config)`), `decompose(config, inputs, checkpoints=workdir)`
  (`decompose_and_write`'s rules), files out (`write(result, config, workdir)`, default `outputs.write`).

  Returns:
    The metrics of the result written.
  """
  inputs = load_inputs(config)
  write = write or outputs.write
  return decompose_and_write(
      config,
      workdir,
      lambda: decompose(config, inputs, checkpoints=workdir),
      lambda result: write(result, config, workdir),
  ).metrics


def optimize_and_write(
    problem: engine.Problem,
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    key: jax.Array,
    finish: Callable[[engine.Result, str], dict[str, Any]],
) -> dict[str, Any]:
  """`solve` with checkpoints in `workdir` for a task whose `finish` writes its outputs itself and returns the
  metrics (`decompose_and_write`'s rules: a stopped run's best result is written, checkpoints removed at the end).

  Raises:
    As `decompose_and_write`.
  """
  return decompose_and_write(
      config, workdir, lambda: solve(problem, config, key=key, finish=finish, checkpoints=workdir), lambda metrics: None
  )


def solve_parts(
    config: ml_collections.ConfigDict,
    *,
    num_parts: int,
    part_name: str,
    key: jax.Array,
    problem: Callable[[int], engine.Problem],
    keep: Callable[[int, engine.Result], None],
    finish: Callable[[str], T],
    checkpoints: str | None = None,
    first: int = 0,
) -> T:
  """`solve` for a task that runs several optimisations in turn; returns `finish('ok')`.

  Part i (dehazing passes, video windows) is `problem(i)`, built when part i-1
  is done, optimised with key fold_in(key, i) and, with `checkpoints`, its own
  checkpoint in that workdir (`<part_name><i + 1>`): a rerun resumes the part
  that was running and finished parts come back from theirs at once.
  `keep(i, result)` records each part's result. When a part stops early
  (NaN/Inf, Ctrl-C / SIGTERM), its best result so far, if any, is kept too,
  and the error is re-raised with `partial` = finish('stopped in <part_name>
  <i + 1>: <why>') when anything was kept.

  Args:
    config: the full config.
    num_parts: how many optimisations.
    part_name: names the parts in checkpoints and statuses, e.g. 'pass'.
    key: the root key; part i uses fold_in(key, i).
    problem: problem(i) builds part i's problem.
    keep: keep(i, result) records part i's result.
    finish: finish(status) makes the task's result from the kept ones.
    checkpoints: the workdir to keep checkpoints in, or None.
    first: the parts before it are done (the caller kept their results, e.g. from files of its own).

  Raises:
    engine.NumericalError, engine.Interrupted: with `partial` set.
    checkpoint_io.CheckpointError: a checkpoint is of another run.
  """
  kept = first > 0
  with stop_on_signals() as stop:
    for index in range(first, num_parts):
      checkpoint = checkpointing(config, checkpoints, name=f'{part_name}{index + 1}') if checkpoints else None
      try:
        with hooks.part(f'{part_name} {index + 1} of {num_parts}'):
          result = engine.optimize(
              problem(index),
              key=jax.random.fold_in(key, index),
              options=loop_options(config),
              checkpoint=checkpoint,
              stop=stop,
          )
      except engine.Stopped as err:
        if err.result.best:
          keep(index, err.result)
          kept = True
        if kept:
          err.partial = finish(f'stopped in {part_name} {index + 1}: {err}')
        raise
      keep(index, result)
      kept = True
  return finish('ok')

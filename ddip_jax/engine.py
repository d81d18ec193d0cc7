"""The optimisation engine shared by every Double-DIP task.

A task describes its problem as data: generators (flax modules), their fixed
noise inputs and a list of stages, each with a pure loss function of all the
generators' parameters. The engine owns the rest: initialisation, one Adam
optimiser over all trainable generators (fresh for each stage), the jitted step
(with the data its loss closes over as arguments, so that another restart or
another image of the same size reuses the compiled executable), per-step keys (`fold_in(key, step)`, so results do not depend on how the loop is
chunked), `vmap` over noise perturbations, on-device best-result tracking,
early stopping, NaN/Inf detection, progress reporting, checkpoints and resuming,
and stopping cleanly on request (Ctrl-C, SIGTERM).

Checkpoints (their format: `checkpoint_io`) make a resumed run end bit-identical
to an uninterrupted one. The problem's types live in `problem` (re-exported
here), the step and its compiled chunks in `steps`, which compiles them on a
background thread while this loop initialises and runs the earlier stages.
"""

from collections.abc import Callable, Iterator
import contextlib
import dataclasses
import json
import math
import os
import threading
import time
from typing import Any

from absl import logging
from flax import serialization
import jax
import numpy as np

from ddip_jax import checkpoint_io
from ddip_jax import compile_cache
from ddip_jax import errors
from ddip_jax import models
from ddip_jax import progress_report
from ddip_jax import steps
# The problem's types, re-exported: tasks write `engine.Stage`, `engine.Problem`.
from ddip_jax.problem import LoopOptions  # pylint: disable=unused-import
from ddip_jax.problem import LossFn  # pylint: disable=unused-import
from ddip_jax.problem import Outputs  # pylint: disable=unused-import
from ddip_jax.problem import Problem
from ddip_jax.problem import PyTree
from ddip_jax.problem import Stage
from ddip_jax.problem import TrainState

initial_state = steps.initial_state  # Re-exported for benchmarks and tests.
resolve_strategy = steps.resolve_strategy


Stopped = errors.Stopped
NumericalError = errors.NumericalError
Interrupted = errors.Interrupted


@dataclasses.dataclass
class Result:
  """What `optimize` returns: final variables, best outputs and run facts.

  Attributes:
    last: the outputs of the last stage's final step when that stage does not
      track a best result (a task whose result is the last iterate); else empty.
  """

  params: PyTree
  batch_stats: PyTree
  best: dict[str, Any]
  best_psnr: float
  best_step: int
  metrics: dict[str, Any]
  last: dict[str, Any] = dataclasses.field(default_factory=dict)
  state: TrainState | None = None  # The last stage's final state: `optimize(start=...)` continues from it.


# Observer = (stage, steps done, state) -> a stop reason or None; the state's
# buffers are donated to the next call, so copy what you keep.
Observer = Callable[[Stage, int, TrainState], str | None]
_OBSERVER = threading.local()  # Per thread: a server observes the run of its worker thread only.


@contextlib.contextmanager
def observe(observer: Observer) -> Iterator[None]:
  """Calls `observer` after every compiled call of every `optimize` run in this thread while the block runs.

  For a front end (the web app) that shows progress and previews and offers a
  stop button without changing how a task is run: a non-empty string returned
  by `observer` stops the run as a signal does (checkpoint, best result, `Interrupted`).
  """
  previous = getattr(_OBSERVER, 'observer', None)
  _OBSERVER.observer = observer
  try:
    yield
  finally:
    _OBSERVER.observer = previous


def _finite_by_generator(params: PyTree) -> dict[str, bool]:
  """For each generator, whether all its parameters are finite.

  Checked on the host: a jitted check is one more program to compile (seconds
  of a cold start), and the check runs only every `check_every` steps.
  """
  host = jax.device_get(params)
  return {name: all(bool(np.isfinite(x).all()) for x in jax.tree.leaves(p)) for name, p in host.items()}


def _check_finite(state: TrainState, done: int, stage: Stage) -> None:
  """Raises NumericalError if the loss or any parameter is NaN or infinite."""
  loss = float(state.loss)
  if not math.isfinite(loss):
    raise NumericalError(f'loss is {loss} at step {done} of stage {stage.name!r}')
  bad = [name for name, ok in _finite_by_generator(state.params).items() if not ok]
  if bad:
    raise NumericalError(f'parameters of {", ".join(sorted(bad))} are not finite at step {done} '
                         f'of stage {stage.name!r}')


def _crossed(prev: int, done: int, every: int) -> bool:
  """Whether a multiple of `every` lies in (prev, done]."""
  return done // every != prev // every


@dataclasses.dataclass
class _Record:
  """What a run has produced besides the current stage's state (checkpointed with it).

  Attributes:
    metrics: loop facts and the finished stages' metrics.
    best: best outputs of the last finished stage that tracks them (host arrays).
    best_psnr, best_step: their PSNR and step.
    seconds: optimisation time spent before the current session.
  """

  metrics: dict[str, Any]
  best: dict[str, Any] = dataclasses.field(default_factory=dict)
  best_psnr: float = -math.inf
  best_step: int = -1
  seconds: float = 0.0


def _stage_metrics(stage: Stage, state: TrainState, done: int, stopped_early: bool, seconds: float):
  metrics = {
      'steps': done,
      'stopped_early': stopped_early,
      'seconds': round(seconds, 3),
      'steps_per_second': round(done / max(seconds, 1e-9), 2),
      'final_loss': float(state.loss),
      'final_psnr': float(state.psnr),
  }
  if stage.track_best:
    metrics['best_psnr'] = float(state.best_psnr)
  return metrics


def _partial_result(stage: Stage, state: TrainState, record: _Record, stage_metrics: dict[str, Any]) -> Result:
  """The best result so far of a run stopped in `stage`.

  That is the stage's best if it tracks one; else the last finished tracking
  stage's; else the stage's latest outputs. Non-finite outputs are dropped.
  """
  best, best_psnr, best_step = record.best, record.best_psnr, record.best_step
  if stage.track_best and float(state.best_psnr) > -math.inf:
    best, best_psnr, best_step = jax.device_get(state.best), float(state.best_psnr), int(state.best_step)
  elif not stage.track_best and not best and int(state.step) > 0:
    best, best_psnr, best_step = jax.device_get(state.best), float(state.psnr), int(state.step) - 1
  if not all(np.isfinite(x).all() for x in jax.tree.leaves(best)):
    best, best_psnr, best_step = {}, -math.inf, -1
  metrics = {**record.metrics, 'stages': {**record.metrics['stages'], stage.name: stage_metrics}}
  return Result(state.params, state.batch_stats, best, best_psnr, best_step, metrics, state=state)


def optimize(
    problem: Problem,
    *,
    key: jax.Array,
    options: LoopOptions = LoopOptions(),
    on_check: Callable[[str, TrainState], None] | None = None,
    checkpoint: checkpoint_io.Checkpointing | None = None,
    stop: Callable[[], str | None] | None = None,
    start: TrainState | None = None,
) -> Result:
  """Runs all stages of a problem and returns the best outputs.

  Args:
    problem: generators, their inputs and the stages.
    key: root PRNG key; initialisation uses fold_in(key, 0), stage i's steps
      fold_in(fold_in(key, i + 1), step).
    options: loop strategy and progress options.
    on_check: called at every check point with (stage name, state), e.g. to
      log; the state's buffers are donated to the next call, so copy what you keep.
    checkpoint: where to save the state; if its file exists, the run resumes
      from it (a finished run's checkpoint gives the finished result at once).
    stop: polled after every compiled call; a non-empty string (the reason)
      makes the run save a checkpoint and raise `Interrupted`.
    start: a state to continue from (a `Result.state`: variables and Adam's
      moments) instead of initialising the generators; the first stage starts
      there with its step counter going on and a new best result. Its stages'
      step is then the compiled program of the earlier run (no compilation)
      when their loss computes the same on other data (e.g. new hints).

  Returns:
    A `Result`; `best` holds the best outputs of the last stage that tracks
    them (numpy arrays), `metrics` per-stage steps, wall time and steps/s.

  Raises:
    NumericalError: the loss or a parameter became non-finite; `err.result`
      holds the best outputs so far.
    Interrupted: `stop` asked for it; `err.result` as above.
    checkpoint_io.CheckpointError: the checkpoint file is unreadable or of another run.
  """
  strategy, per_call = resolve_strategy(options)
  xla_options = compile_cache.compiler_options(options)
  key_data = np.asarray(jax.random.key_data(key))
  stage_list = [[s.name, s.num_steps] for s in problem.stages]
  record = _Record(metrics={'loop_strategy': strategy, 'steps_per_call': per_call, 'stages': {}})
  saved, first = None, 0
  if start is not None and checkpoint is not None:
    raise ValueError('a run continued from a state is not checkpointed')
  if checkpoint is not None and os.path.exists(checkpoint.path):
    saved = checkpoint_io.load_checkpoint(checkpoint.path)
    if saved.get('tag') != checkpoint.tag:
      raise checkpoint_io.CheckpointError(f'checkpoint {checkpoint.path!r} belongs to a run of another config; '
                                          'delete it or use another workdir')
    if not np.array_equal(saved.get('key'), key_data) or saved.get('stages') != stage_list:
      raise checkpoint_io.CheckpointError(f'checkpoint {checkpoint.path!r} belongs to a run with another seed or '
                                          'stages; delete it or use another workdir')
    first = int(saved['stage'])
    rec = saved['record']
    record = _Record(json.loads(rec['metrics']), dict(rec['best']), float(rec['best_psnr']),
                     int(rec['best_step']), float(rec['seconds']))
  # Every stage's step is traced and compiled on a thread while the generators
  # are initialised and the earlier stages run (`steps.ChunksAhead`).
  init_key = jax.random.fold_in(key, 0)
  shapes = models.generator_shapes(problem.generators, problem.inputs, init_key)
  # A stage a checkpoint holds as complete needs no step.
  ahead_from = first + 1 if saved is not None and bool(saved['complete']) else first
  ahead = steps.ChunksAhead(
      problem, [(i, s, jax.random.fold_in(key, i + 1)) for i, s in enumerate(problem.stages) if i >= ahead_from],
      *shapes,
      strategy=strategy, steps_per_call=per_call, num_perturbations=options.num_perturbations, options=xla_options)
  try:
    if start is None:
      params, batch_stats = models.init_generators(problem.generators, problem.inputs, init_key)
    else:
      params, batch_stats = start.params, start.batch_stats
    continued, start = start, time.perf_counter()

    def save(index: int, state: TrainState, done: int, complete: bool, stage_seconds: float) -> None:
      payload = {
          'tag': checkpoint.tag, 'key': key_data, 'stages': stage_list,
          'stage': index, 'done': done, 'complete': complete, 'stage_seconds': stage_seconds,
          'state': serialization.to_state_dict(jax.device_get(state)),
          'record': {'metrics': json.dumps(record.metrics), 'best': record.best, 'best_psnr': record.best_psnr,
                     'best_step': record.best_step, 'seconds': record.seconds + time.perf_counter() - start},
      }
      checkpoint_io.save(checkpoint.path, payload)

    for index, stage in enumerate(problem.stages):
      if index < first:
        continue
      stage_key = jax.random.fold_in(key, index + 1)
      built = ahead.get(index)
      if continued is not None and index == 0:  # Adam's moments and the step go on; the best is of this run.
        state = continued._replace(best_psnr=jax.numpy.float32(-math.inf), best_step=jax.numpy.int32(-1))
      else:
        state, _ = initial_state(problem, stage, params=params, batch_stats=batch_stats,
                                 num_perturbations=options.num_perturbations,
                                 best_shapes=built[0].best if built else None)
      done, complete, seconds_before = 0, False, 0.0
      if saved is not None and index == first:
        state = checkpoint_io.restore_like(state, saved['state'], checkpoint.path)
        done, complete, seconds_before = int(saved['done']), bool(saved['complete']), float(saved['stage_seconds'])
        logging.info('resuming from %s: stage %r, step %d', checkpoint.path, stage.name, done)
      finished_before = complete  # Its metrics and best are in `record` already.
      progress = progress_report.Progress(stage, options.progress and not complete, initial=done)
      observer = getattr(_OBSERVER, 'observer', None)
      stage_start = time.perf_counter()
      chunks = {min(per_call, stage.num_steps): built[1]} if built else {}
      reason, stopped_early = None, False
      try:
        while not complete:
          n = min(per_call, stage.num_steps - done)
          if n not in chunks:
            chunks[n] = steps.stage_chunk(stage, options.num_perturbations, strategy, n, state, stage_key, xla_options)
          state = chunks[n](state, stage_key)
          prev, done = done, done + n
          progress.update(n, state)
          observed = observer(stage, done, state) if observer is not None else None
          reason = (stop() if stop is not None else None) or observed
          check = _crossed(prev, done, options.check_every) or done == stage.num_steps
          periodic = checkpoint is not None and _crossed(prev, done, checkpoint.every)
          if check or periodic or reason:
            _check_finite(state, done, stage)
          if check:
            if on_check is not None:
              on_check(stage.name, state)
            stopped_early = stage.early_stop_psnr is not None and float(state.best_psnr) > stage.early_stop_psnr
          complete = done == stage.num_steps or stopped_early
          if not complete and (periodic or reason) and checkpoint is not None:
            save(index, state, done, False, seconds_before + time.perf_counter() - stage_start)
          if not complete and reason:
            raise Interrupted(f'interrupted ({reason}) at step {done} of stage {stage.name!r}', reason)
        if not finished_before:
          jax.block_until_ready(state)
          record.metrics['stages'][stage.name] = _stage_metrics(
              stage, state, done, stopped_early, seconds_before + time.perf_counter() - stage_start)
          if stage.track_best:
            record.best = jax.device_get(state.best)
            record.best_psnr, record.best_step = float(state.best_psnr), int(state.best_step)
          if checkpoint is not None:
            save(index, state, done, True, record.metrics['stages'][stage.name]['seconds'])
        if reason and index + 1 < len(problem.stages):
          raise Interrupted(f'interrupted ({reason}) at the end of stage {stage.name!r}', reason)
      except Stopped as err:
        err.result = _partial_result(stage, state, record, _stage_metrics(
            stage, state, done, stopped_early, seconds_before + time.perf_counter() - stage_start))
        raise
      finally:
        progress.close()
      params, batch_stats = state.params, state.batch_stats
    record.metrics['seconds'] = round(record.seconds + time.perf_counter() - start, 3)
    logging.info('optimisation finished in %.1f s', record.metrics['seconds'])
    # A stage that does not track a best result keeps its latest outputs in `best`.
    last = jax.device_get(state.best) if problem.stages and not problem.stages[-1].track_best else {}
    return Result(params, batch_stats, record.best, record.best_psnr, record.best_step, record.metrics, last,
                  state=state)
  finally:
    ahead.close()

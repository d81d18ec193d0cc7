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

from collections.abc import Callable, Sequence
import dataclasses
import json
import math
import os
import time
from typing import Any

from absl import logging
from flax import serialization
import jax
import numpy as np

from ddip_jax import checkpoint_io
from ddip_jax import compile_cache
from ddip_jax import errors
from ddip_jax import hooks as hooks_lib
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
    raise NumericalError(
        f'parameters of {", ".join(sorted(bad))} are not finite at step {done} ' f'of stage {stage.name!r}'
    )


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
    hooks: Sequence[hooks_lib.Hook] = (),
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
    options: loop strategy and progress options (`progress`: a tqdm bar, a hook).
    hooks: what is told of the run (`hooks.Event`s), with those of the
      `hooks.listening` blocks around the call; a reason one returns stops it.
    on_check: a hook's shorthand: called at every check point with (stage
      name, state), e.g. to log; the state's buffers are donated to the next
      call, so copy what you keep.
    checkpoint: where to save the state; if its file exists, the run resumes
      from it (a finished run's checkpoint gives the finished result at once).
    stop: a hook's shorthand: polled after every compiled call; a non-empty
      string (the reason) makes the run save a checkpoint and raise `Interrupted`.
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
    Interrupted: a hook asked for it; `err.result` as above.
    checkpoint_io.CheckpointError: the checkpoint file is unreadable or of another run.
  """
  if start is not None and checkpoint is not None:
    raise ValueError('a run continued from a state is not checkpointed')
  listeners = list(hooks)
  if options.progress:
    listeners.append(progress_report.ProgressHook(progress_report.TqdmBar(), skip_finished=True))
  if stop is not None:
    listeners.append(hooks_lib.stopping_when(stop))
  if on_check is not None:
    listeners.append(hooks_lib.at_checks(on_check))
  return _Run(problem, key, options, hooks_lib.active(listeners), checkpoint).run(start)


class _Run:
  """One `optimize` call, read top to bottom: `run` resumes or starts, then each stage `_prepare`s its state,
  takes its `_steps` and is `_recorded`; `_save` writes the checkpoint."""

  def __init__(
      self,
      problem: Problem,
      key: jax.Array,
      options: LoopOptions,
      listeners: Sequence[hooks_lib.Hook],
      checkpoint: checkpoint_io.Checkpointing | None,
  ):
    self.problem, self.key, self.options, self.checkpoint = problem, key, options, checkpoint
    self.listeners, self.part = tuple(listeners), hooks_lib.current_part()
    self.strategy, self.per_call = resolve_strategy(options)
    self.xla_options = compile_cache.compiler_options(options)
    self.key_data = np.asarray(jax.random.key_data(key))
    self.stage_list = [[s.name, s.num_steps] for s in problem.stages]
    self.record = _Record(metrics={'loop_strategy': self.strategy, 'steps_per_call': self.per_call, 'stages': {}})
    self.saved, self.first = self._resume_point()
    self.started = time.perf_counter()

  def _resume_point(self) -> tuple[dict[str, Any] | None, int]:
    """The checkpoint's contents (None: none) and the stage it resumes; the record takes its facts."""
    checkpoint = self.checkpoint
    if checkpoint is None or not os.path.exists(checkpoint.path):
      return None, 0
    saved = checkpoint_io.load_checkpoint(checkpoint.path)
    if saved.get('tag') != checkpoint.tag:
      raise checkpoint_io.CheckpointError(
          f'checkpoint {checkpoint.path!r} belongs to a run of another config; ' 'delete it or use another workdir'
      )
    if not np.array_equal(saved.get('key'), self.key_data) or saved.get('stages') != self.stage_list:
      raise checkpoint_io.CheckpointError(
          f'checkpoint {checkpoint.path!r} belongs to a run with another seed or '
          'stages; delete it or use another workdir'
      )
    rec = saved['record']
    self.record = _Record(
        json.loads(rec['metrics']),
        dict(rec['best']),
        float(rec['best_psnr']),
        int(rec['best_step']),
        float(rec['seconds']),
    )
    return saved, int(saved['stage'])

  def run(self, start: TrainState | None) -> Result:
    problem, key = self.problem, self.key
    # Every stage's step is traced and compiled on a thread while the generators
    # are initialised and the earlier stages run (`steps.ChunksAhead`).
    init_key = jax.random.fold_in(key, 0)
    shapes = models.generator_shapes(problem.generators, problem.inputs, init_key)
    # A stage a checkpoint holds as complete needs no step.
    ahead_from = self.first + 1 if self.saved is not None and bool(self.saved['complete']) else self.first
    ahead = steps.ChunksAhead(
        problem,
        [(i, s, jax.random.fold_in(key, i + 1)) for i, s in enumerate(problem.stages) if i >= ahead_from],
        *shapes,
        strategy=self.strategy,
        steps_per_call=self.per_call,
        num_perturbations=self.options.num_perturbations,
        options=self.xla_options,
    )
    try:
      if start is None:
        params, batch_stats = models.init_generators(problem.generators, problem.inputs, init_key)
      else:
        params, batch_stats = start.params, start.batch_stats
      self.started = time.perf_counter()
      state = None
      for index, stage in enumerate(problem.stages):
        if index < self.first:
          continue
        built = ahead.get(index)
        state, done, complete, seconds_before = self._prepare(
            index, stage, built, params, batch_stats, start if index == 0 else None
        )
        state = self._steps(index, stage, state, done, complete, seconds_before, built)
        params, batch_stats = state.params, state.batch_stats
      self.record.metrics['seconds'] = round(self.record.seconds + time.perf_counter() - self.started, 3)
      logging.info('optimisation finished in %.1f s', self.record.metrics['seconds'])
      # A stage that does not track a best result keeps its latest outputs in `best`.
      last = jax.device_get(state.best) if problem.stages and not problem.stages[-1].track_best else {}
      record = self.record
      return Result(
          params, batch_stats, record.best, record.best_psnr, record.best_step, record.metrics, last, state=state
      )
    finally:
      ahead.close()

  def _prepare(
      self, index: int, stage: Stage, built, params: PyTree, batch_stats: PyTree, continued: TrainState | None
  ) -> tuple[TrainState, int, bool, float]:
    """Stage `index`'s starting state, steps done, whether it is complete and its seconds before this session:
    fresh (a new Adam), continued from `continued` (Adam's moments and the step go on; the best is of this
    run) or restored from the checkpoint."""
    if continued is not None:
      state = continued._replace(best_psnr=jax.numpy.float32(-math.inf), best_step=jax.numpy.int32(-1))
    else:
      state, _ = initial_state(
          self.problem,
          stage,
          params=params,
          batch_stats=batch_stats,
          num_perturbations=self.options.num_perturbations,
          best_shapes=built[0].best if built else None,
      )
    if self.saved is None or index != self.first:
      return state, 0, False, 0.0
    saved = self.saved
    state = checkpoint_io.restore_like(state, saved['state'], self.checkpoint.path)
    logging.info('resuming from %s: stage %r, step %d', self.checkpoint.path, stage.name, int(saved['done']))
    return state, int(saved['done']), bool(saved['complete']), float(saved['stage_seconds'])

  def _steps(
      self, index: int, stage: Stage, state: TrainState, done: int, complete: bool, seconds_before: float, built
  ) -> TrainState:
    """Runs the stage's remaining steps in compiled chunks, telling the hooks ('start', 'step', 'check', 'end'),
    checking for NaN/Inf and early stopping, checkpointing; records the finished stage. Raises `Stopped` with
    the best result so far."""
    options, checkpoint, per_call = self.options, self.checkpoint, self.per_call
    stage_key = jax.random.fold_in(self.key, index + 1)
    finished_before = complete  # Its metrics and best are in `record` already.
    stage_start = time.perf_counter()
    chunks = {min(per_call, stage.num_steps): built[1]} if built else {}
    reason, stopped_early = None, False

    def seconds() -> float:
      return seconds_before + time.perf_counter() - stage_start

    self._send('start', index, stage, done, state)
    try:
      while not complete:
        n = min(per_call, stage.num_steps - done)
        if n not in chunks:
          chunks[n] = steps.stage_chunk(
              stage, options.num_perturbations, self.strategy, n, state, stage_key, self.xla_options
          )
        state = chunks[n](state, stage_key)
        prev, done = done, done + n
        reason = self._send('step', index, stage, done, state)
        check = _crossed(prev, done, options.check_every) or done == stage.num_steps
        periodic = checkpoint is not None and _crossed(prev, done, checkpoint.every)
        if check or periodic or reason:
          _check_finite(state, done, stage)
        if check:
          self._send('check', index, stage, done, state)
          stopped_early = stage.early_stop_psnr is not None and float(state.best_psnr) > stage.early_stop_psnr
        complete = done == stage.num_steps or stopped_early
        if not complete and (periodic or reason) and checkpoint is not None:
          self._save(index, state, done, False, seconds())
        if not complete and reason:
          raise Interrupted(f'interrupted ({reason}) at step {done} of stage {stage.name!r}', reason)
      if not finished_before:
        self._recorded(index, stage, state, done, stopped_early, seconds())
      if reason and index + 1 < len(self.problem.stages):
        raise Interrupted(f'interrupted ({reason}) at the end of stage {stage.name!r}', reason)
    except Stopped as err:
      err.result = _partial_result(
          stage, state, self.record, _stage_metrics(stage, state, done, stopped_early, seconds())
      )
      raise
    finally:
      self._send('end', index, stage, done, state)
    return state

  def _recorded(
      self, index: int, stage: Stage, state: TrainState, done: int, stopped_early: bool, seconds: float
  ) -> None:
    """A finished stage's metrics (and best outputs, if it tracks them) go to the record and the checkpoint."""
    jax.block_until_ready(state)
    record = self.record
    record.metrics['stages'][stage.name] = _stage_metrics(stage, state, done, stopped_early, seconds)
    if stage.track_best:
      record.best = jax.device_get(state.best)
      record.best_psnr, record.best_step = float(state.best_psnr), int(state.best_step)
    if self.checkpoint is not None:
      self._save(index, state, done, True, record.metrics['stages'][stage.name]['seconds'])

  def _send(self, kind: str, index: int, stage: Stage, done: int, state: TrainState) -> str | None:
    return hooks_lib.send(
        self.listeners,
        hooks_lib.Event(
            kind=kind,
            part=self.part,
            stage=stage.name,
            stage_index=index,
            num_stages=len(self.problem.stages),
            done=done,
            total=stage.num_steps,
            state=state,
        ),
    )

  def _save(self, index: int, state: TrainState, done: int, complete: bool, stage_seconds: float) -> None:
    record = self.record
    payload = {
        'tag': self.checkpoint.tag,
        'key': self.key_data,
        'stages': self.stage_list,
        'stage': index,
        'done': done,
        'complete': complete,
        'stage_seconds': stage_seconds,
        'state': serialization.to_state_dict(jax.device_get(state)),
        'record': {
            'metrics': json.dumps(record.metrics),
            'best': record.best,
            'best_psnr': record.best_psnr,
            'best_step': record.best_step,
            'seconds': record.seconds + time.perf_counter() - self.started,
        },
    }
    checkpoint_io.save(self.checkpoint.path, payload)

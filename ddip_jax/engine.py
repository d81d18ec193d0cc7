"""The optimisation engine shared by every Double-DIP task.

A task describes its problem as data: generators (flax modules), their fixed
noise inputs and a list of stages, each with a pure loss function of all the
generators' parameters. The engine owns the rest: initialisation, one Adam
optimiser over all trainable generators (fresh for each stage), the jitted step,
per-step keys (`fold_in(key, step)`, so results do not depend on how the loop is
chunked), `vmap` over noise perturbations, on-device best-result tracking,
early stopping, NaN detection and progress reporting.
"""

from collections.abc import Callable, Mapping, Sequence
import dataclasses
import functools
import math
import sys
import time
from typing import Any, NamedTuple

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import tqdm

PyTree = Any
Outputs = dict[str, jax.Array]
# loss_fn(params, batch_stats, step, key) -> (loss, (batch_stats, outputs, psnr)).
# `params`/`batch_stats` map generator names to their collections, `step` is the
# int32 step within the stage, `outputs` are the layers worth keeping and `psnr`
# is the reconstruction PSNR used to select the best result.
LossFn = Callable[..., tuple[jax.Array, tuple[PyTree, Outputs, jax.Array]]]


class NumericalError(RuntimeError):
  """The loss became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class Stage:
  """One optimisation stage (a fresh Adam over `trainable` generators).

  Attributes:
    name: shown in progress lines and metrics.
    num_steps: number of iterations.
    loss_fn: see `LossFn`.
    learning_rate: Adam learning rate.
    trainable: generator names optimised in this stage (None: all).
    track_best: keep the outputs with the best PSNR seen in this stage.
    early_stop_psnr: stop once the PSNR exceeds this (None: never).
  """

  name: str
  num_steps: int
  loss_fn: LossFn
  learning_rate: float = 1e-3
  trainable: tuple[str, ...] | None = None
  track_best: bool = True
  early_stop_psnr: float | None = None


@dataclasses.dataclass(frozen=True)
class Problem:
  """What a task hands to the engine."""

  generators: Mapping[str, nn.Module]
  inputs: Mapping[str, jax.Array]
  stages: Sequence[Stage]


@dataclasses.dataclass(frozen=True)
class LoopOptions:
  """How the engine drives the steps (numerics do not depend on these).

  Attributes:
    strategy: 'auto', 'step' (one jitted step per call), 'unroll' (a jit of
      `steps_per_call` Python-unrolled steps) or 'scan' (lax.scan over them).
    steps_per_call: steps per compiled call for 'unroll' / 'scan'.
    check_every: steps between early-stopping / NaN checks (host syncs); a
      multiple of steps_per_call keeps the stopping step independent of it.
    num_perturbations: noise perturbations per step, batched with `jax.vmap`
      (the loss is their mean).
    progress: show a progress bar.
  """

  strategy: str = 'auto'
  steps_per_call: int = 1
  check_every: int = 10
  num_perturbations: int = 1
  progress: bool = True


class TrainState(NamedTuple):
  step: jax.Array
  params: PyTree
  batch_stats: PyTree
  opt_state: PyTree
  loss: jax.Array
  psnr: jax.Array
  best_psnr: jax.Array
  best_step: jax.Array
  best: Outputs


@dataclasses.dataclass
class Result:
  """What `optimize` returns: final variables, best outputs and run facts."""

  params: PyTree
  batch_stats: PyTree
  best: dict[str, Any]
  best_psnr: float
  best_step: int
  metrics: dict[str, Any]


def apply_generators(
    generators: Mapping[str, nn.Module],
    params: PyTree,
    batch_stats: PyTree,
    inputs: Mapping[str, jax.Array],
) -> tuple[Outputs, PyTree]:
  """Runs each named generator on its input (train-mode BatchNorm).

  Returns:
    (outputs, new_batch_stats), both keyed like `inputs`.
  """
  outputs, new_stats = {}, {}
  for name, z in inputs.items():
    out, updates = generators[name].apply(
        {'params': params[name], 'batch_stats': batch_stats[name]}, z, mutable=['batch_stats'])
    outputs[name] = out
    new_stats[name] = updates['batch_stats']
  return outputs, {**batch_stats, **new_stats}


def init_generators(
    generators: Mapping[str, nn.Module], inputs: Mapping[str, jax.Array], key: jax.Array
) -> tuple[PyTree, PyTree]:
  """Initialises every generator with its own key folded from `key`."""
  params, batch_stats = {}, {}
  for i, name in enumerate(sorted(generators)):
    variables = generators[name].init(jax.random.fold_in(key, i), inputs[name])
    params[name] = variables['params']
    batch_stats[name] = variables.get('batch_stats', {})
  return params, batch_stats


def resolve_strategy(options: LoopOptions) -> tuple[str, int]:
  """Picks the loop strategy for the current backend (see benchmarks/loop_strategy.py).

  On XLA:CPU a `lax.scan` body loses the fast convolution path, so CPU uses a
  jit of a few Python-unrolled steps; accelerators amortise dispatch with scan.
  """
  if options.strategy == 'step':  # One step per call, whatever steps_per_call says.
    return 'step', 1
  if options.strategy != 'auto':
    return options.strategy, max(1, options.steps_per_call)
  if jax.default_backend() == 'cpu':
    return 'unroll', 2
  return 'scan', 10


def _make_step(stage: Stage, optimizer: optax.GradientTransformation, num_perturbations: int):
  """Builds the pure single-step function for a stage."""

  def loss_over_perturbations(trainable, frozen, batch_stats, step, key):
    params = {**frozen, **trainable}
    if num_perturbations == 1:
      return stage.loss_fn(params, batch_stats, step, key)
    keys = jax.random.split(key, num_perturbations)
    losses, (stats, outputs, psnrs) = jax.vmap(
        stage.loss_fn, in_axes=(None, None, None, 0))(params, batch_stats, step, keys)
    stats = jax.tree.map(lambda s: s.mean(axis=0), stats)
    outputs = jax.tree.map(lambda o: o[0], outputs)
    return losses.mean(), (stats, outputs, psnrs[0])

  grad_fn = jax.value_and_grad(loss_over_perturbations, has_aux=True)

  def step_fn(state: TrainState, key: jax.Array) -> TrainState:
    names = stage.trainable or tuple(state.params)
    trainable = {n: state.params[n] for n in names}
    frozen = {n: p for n, p in state.params.items() if n not in names}
    step_key = jax.random.fold_in(key, state.step)
    (loss, (stats, outputs, psnr)), grads = grad_fn(
        trainable, frozen, state.batch_stats, state.step, step_key)
    updates, opt_state = optimizer.update(grads, state.opt_state, trainable)
    trainable = optax.apply_updates(trainable, updates)
    if stage.track_best:
      better = psnr > state.best_psnr
      best = jax.tree.map(lambda new, old: jnp.where(better, new, old), outputs, state.best)
      best_psnr = jnp.where(better, psnr, state.best_psnr)
      best_step = jnp.where(better, state.step, state.best_step)
    else:
      best, best_psnr, best_step = outputs, state.best_psnr, state.best_step
    return TrainState(
        step=state.step + 1,
        params={**frozen, **trainable},
        batch_stats=stats,
        opt_state=opt_state,
        loss=loss,
        psnr=psnr,
        best_psnr=best_psnr,
        best_step=best_step,
        best=best,
    )

  return step_fn


def make_chunk(step_fn, strategy: str, num_steps: int):
  """A jitted function running `num_steps` steps; the state buffer is donated."""
  if strategy == 'scan' and num_steps > 1:

    def chunk(state, key):
      return jax.lax.scan(lambda s, _: (step_fn(s, key), None), state, None, length=num_steps)[0]

  else:

    def chunk(state, key):
      for _ in range(num_steps):
        state = step_fn(state, key)
      return state

  return jax.jit(chunk, donate_argnums=0)


def initial_state(
    problem: Problem,
    stage: Stage,
    *,
    params: PyTree | None = None,
    batch_stats: PyTree | None = None,
    key: jax.Array | None = None,
    num_perturbations: int = 1,
) -> tuple[TrainState, Callable[[TrainState, jax.Array], TrainState]]:
  """A stage's starting state (fresh Adam) and its pure step function.

  Args:
    problem: the task's problem.
    stage: one of `problem.stages`.
    params, batch_stats: variables to start from; initialised from `key` if None.
    key: initialisation key (only used when `params` is None).
    num_perturbations: noise perturbations per step (vmapped).

  Returns:
    (state, step_fn) with step_fn(state, stage_key) -> next state.
  """
  if params is None:
    params, batch_stats = init_generators(problem.generators, problem.inputs, key)
  optimizer = optax.adam(stage.learning_rate)
  names = stage.trainable or tuple(params)
  state = TrainState(
      step=jnp.int32(0), params=params, batch_stats=batch_stats,
      opt_state=optimizer.init({n: params[n] for n in names}),
      loss=jnp.float32(jnp.nan), psnr=jnp.float32(-jnp.inf),
      best_psnr=jnp.float32(-jnp.inf), best_step=jnp.int32(-1),
      best=_output_template(stage, params, batch_stats))
  return state, _make_step(stage, optimizer, num_perturbations)


def _output_template(stage: Stage, params, batch_stats) -> Outputs:
  """Zero arrays shaped like the stage's outputs (the initial best result)."""
  shapes = jax.eval_shape(
      lambda p, s: stage.loss_fn(p, s, jnp.int32(0), jax.random.key(0))[1][1], params, batch_stats)
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


class _Progress:
  """A tqdm bar whose loss/PSNR postfix is fetched from the device at most twice a second."""

  def __init__(self, stage: Stage, enabled: bool):
    interactive = sys.stderr.isatty()
    self._bar = tqdm.tqdm(
        total=stage.num_steps, desc=stage.name, disable=not enabled, file=sys.stderr,
        mininterval=0.5 if interactive else 15.0, dynamic_ncols=True, unit='it')
    self._last = 0.0
    self._interval = 0.5 if interactive else 15.0

  def update(self, n: int, state: TrainState):
    self._bar.update(n)
    now = time.monotonic()
    if not self._bar.disable and now - self._last > self._interval:
      self._last = now
      self._bar.set_postfix(loss=f'{float(state.loss):.4f}', psnr=f'{float(state.psnr):.2f}', refresh=False)

  def close(self):
    self._bar.close()


def optimize(
    problem: Problem,
    *,
    key: jax.Array,
    options: LoopOptions = LoopOptions(),
    on_check: Callable[[str, TrainState], None] | None = None,
) -> Result:
  """Runs all stages of a problem and returns the best outputs.

  Args:
    problem: generators, their inputs and the stages.
    key: root PRNG key; initialisation uses fold_in(key, 0), stage i's steps
      fold_in(fold_in(key, i + 1), step).
    options: loop strategy and progress options.
    on_check: called at every check point with (stage name, state), e.g. to
      write checkpoints or log.

  Returns:
    A `Result`; `best` holds the best outputs of the last stage that tracks
    them (numpy arrays), `metrics` per-stage steps, wall time and steps/s.

  Raises:
    NumericalError: the loss became non-finite; `err.result` holds the best
      outputs so far.
  """
  strategy, per_call = resolve_strategy(options)
  params, batch_stats = init_generators(problem.generators, problem.inputs, jax.random.fold_in(key, 0))
  best, best_psnr, best_step = None, -math.inf, -1
  metrics: dict[str, Any] = {'loop_strategy': strategy, 'steps_per_call': per_call, 'stages': {}}
  start = time.perf_counter()
  for index, stage in enumerate(problem.stages):
    stage_key = jax.random.fold_in(key, index + 1)
    state, step_fn = initial_state(problem, stage, params=params, batch_stats=batch_stats,
                                   num_perturbations=options.num_perturbations)
    chunk_fns = {}
    progress = _Progress(stage, options.progress)
    stage_start = time.perf_counter()
    done, stopped_early = 0, False
    try:
      while done < stage.num_steps:
        n = min(per_call, stage.num_steps - done)
        if n not in chunk_fns:
          chunk_fns[n] = make_chunk(step_fn, strategy, n)
        state = chunk_fns[n](state, stage_key)
        prev, done = done, done + n
        progress.update(n, state)
        if done // options.check_every != prev // options.check_every or done == stage.num_steps:
          if not math.isfinite(float(state.loss)):
            raise NumericalError(f'loss is {float(state.loss)} at step {done} of stage {stage.name!r}')
          if on_check is not None:
            on_check(stage.name, state)
          if stage.early_stop_psnr is not None and float(state.best_psnr) > stage.early_stop_psnr:
            stopped_early = True
            break
    except NumericalError as err:
      err.result = Result(state.params, state.batch_stats, best or {}, best_psnr, best_step, metrics)
      if stage.track_best and float(state.best_psnr) > -math.inf:
        err.result.best = jax.tree.map(jax.device_get, state.best)
        err.result.best_psnr = float(state.best_psnr)
        err.result.best_step = int(state.best_step)
      raise
    finally:
      progress.close()
    jax.block_until_ready(state)
    elapsed = time.perf_counter() - stage_start
    params, batch_stats = state.params, state.batch_stats
    metrics['stages'][stage.name] = {
        'steps': done,
        'stopped_early': stopped_early,
        'seconds': round(elapsed, 3),
        'steps_per_second': round(done / max(elapsed, 1e-9), 2),
        'final_loss': float(state.loss),
        'final_psnr': float(state.psnr),
    }
    if stage.track_best:
      best = jax.tree.map(jax.device_get, state.best)
      best_psnr, best_step = float(state.best_psnr), int(state.best_step)
      metrics['stages'][stage.name]['best_psnr'] = best_psnr
  metrics['seconds'] = round(time.perf_counter() - start, 3)
  logging.info('optimisation finished in %.1f s', metrics['seconds'])
  return Result(params, batch_stats, best or {}, best_psnr, best_step, metrics)

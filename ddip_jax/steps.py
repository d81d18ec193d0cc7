"""A stage's pure step and its compiled chunks, built ahead of their use.

`make_step` is one Adam step over all trainable generators (loss and gradients
of the stage's pure loss, `vmap` over noise perturbations, on-device best-result
tracking); `stage_chunk` is a chunk of such steps compiled as a function of the
data the loss closes over (`compile_cache.cached_jit`). `ChunksAhead` traces and
compiles every stage's chunk on a background thread from the state's shapes
alone: XLA compiles without holding Python's GIL, so the compiles overlap the
generators' initialisation and the earlier stages' steps instead of adding to
them (issue 17: they are most of a cold start on a CPU).
"""

from collections.abc import Callable, Sequence
import threading
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import optax

from ddip_jax import compile_cache
from ddip_jax import models
from ddip_jax.problem import LoopOptions
from ddip_jax.problem import Outputs
from ddip_jax.problem import Problem
from ddip_jax.problem import PyTree
from ddip_jax.problem import Stage
from ddip_jax.problem import TrainState

Chunk = Callable[[TrainState, jax.Array], TrainState]


def resolve_strategy(options: LoopOptions) -> tuple[str, int]:
  """Picks the loop strategy for the current backend (see benchmarks/loop_strategy.py).

  On XLA:CPU a `lax.scan` body loses the fast convolution path, so CPU calls a
  jitted step from Python, one step per call: unrolling 2 steps per call is
  within noise per step but takes 1.6x (idle) to 3.4x (loaded machine) as long
  to compile, a large part of a short run (docs/speed.md). Accelerators
  amortise dispatch with scan.
  """
  if options.strategy == 'step':  # One step per call, whatever steps_per_call says.
    return 'step', 1
  if options.strategy != 'auto':
    return options.strategy, max(1, options.steps_per_call)
  if jax.default_backend() == 'cpu':
    return 'step', 1
  return 'scan', 10


def make_step(stage: Stage, optimizer: optax.GradientTransformation, num_perturbations: int):
  """Builds the pure single-step function for a stage: step_fn(state, key) -> state, or
  step_fn(state, key, data) -> state for a stage with `data` (its loss's last argument)."""

  def loss_fn(params, batch_stats, step, key, *data):
    return stage.loss_fn(params, batch_stats, step, key, *data)

  def loss_over_perturbations(trainable, frozen, batch_stats, step, key, *data):
    params = {**frozen, **trainable}
    if num_perturbations == 1:
      return loss_fn(params, batch_stats, step, key, *data)
    keys = jax.random.split(key, num_perturbations)
    losses, (stats, outputs, psnrs) = jax.vmap(loss_fn, in_axes=(None, None, None, 0) + (None,) * len(data))(
        params, batch_stats, step, keys, *data
    )
    stats = jax.tree.map(lambda s: s.mean(axis=0), stats)
    outputs = jax.tree.map(lambda o: o[0], outputs)
    return losses.mean(), (stats, outputs, psnrs[0])

  grad_fn = jax.value_and_grad(loss_over_perturbations, has_aux=True)

  def step_fn(state: TrainState, key: jax.Array, *data: PyTree) -> TrainState:
    names = stage.trainable or tuple(state.params)
    trainable = {n: state.params[n] for n in names}
    frozen = {n: p for n, p in state.params.items() if n not in names}
    step_key = jax.random.fold_in(key, state.step)
    (loss, (stats, outputs, psnr)), grads = grad_fn(trainable, frozen, state.batch_stats, state.step, step_key, *data)
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


def optimizer(stage: Stage) -> optax.GradientTransformation:
  """A stage's optimiser: Adam at its learning rate, fresh for each stage (as the official code). The one place
  it is built: the state's moments (`initial_state`) and the step's updates (`stage_chunk`) must be of one."""
  return optax.adam(stage.learning_rate)


def stage_chunk(
    stage: Stage,
    num_perturbations: int,
    strategy: str,
    num_steps: int,
    state: TrainState,
    key: jax.Array,
    options: dict[str, str],
) -> Callable[[TrainState, jax.Array], TrainState]:
  """The compiled chunk of a stage's steps, as `chunk(state, key) -> state` (`compile_cache.cached_jit`).

  A task's loss functions close over its data (image, hints, noise inputs...);
  the cache compiles the chunk as a function of that data, so that another
  restart or image of the same size reuses the compiled executable. A stage's
  `data` is an argument of the chunk, bound to the chunk returned.
  `options` are XLA compiler options (`compile_cache.compiler_options`).
  """
  step_fn = make_step(stage, optimizer(stage), num_perturbations)
  data = () if stage.data is None else (stage.data,)
  # With data, the stage's loss function names the program: a stage of the same loss on other data (the other
  # step of segmentation, a correction's new hints) finds it without tracing it again.
  identity = (
      None
      if stage.data is None
      else (
          stage.loss_fn,
          stage.learning_rate,
          stage.trainable,
          stage.track_best,
          num_perturbations,
          strategy,
          num_steps,
      )
  )
  return compile_cache.cached_jit(
      compile_cache.chunk_fn(step_fn, strategy, num_steps), state, key, *data, options=options, identity=identity
  )


def initial_state(
    problem: Problem,
    stage: Stage,
    *,
    params: PyTree | None = None,
    batch_stats: PyTree | None = None,
    key: jax.Array | None = None,
    num_perturbations: int = 1,
    best_shapes: Outputs | None = None,
) -> tuple[TrainState, Callable[[TrainState, jax.Array], TrainState]]:
  """A stage's starting state (fresh Adam) and its pure step function.

  Args:
    problem: the task's problem.
    stage: one of `problem.stages`.
    params, batch_stats: variables to start from; initialised from `key` if None.
    key: initialisation key (only used when `params` is None).
    num_perturbations: noise perturbations per step (vmapped).
    best_shapes: the stage's output shapes (`jax.ShapeDtypeStruct`s), if known;
      else found by tracing the loss (a second or so).

  Returns:
    (state, step_fn) with step_fn(state, stage_key) -> next state.
  """
  if params is None:
    params, batch_stats = models.init_generators(problem.generators, problem.inputs, key)
  adam = optimizer(stage)
  names = stage.trainable or tuple(params)
  state = TrainState(
      step=jnp.int32(0),
      params=params,
      batch_stats=batch_stats,
      opt_state=adam.init({n: params[n] for n in names}),
      loss=jnp.float32(jnp.nan),
      psnr=jnp.float32(-jnp.inf),
      best_psnr=jnp.float32(-jnp.inf),
      best_step=jnp.int32(-1),
      best=output_template(stage, params, batch_stats, best_shapes),
  )
  return state, make_step(stage, adam, num_perturbations)


def output_template(stage: Stage, params, batch_stats, shapes: Outputs | None = None) -> Outputs:
  """Zero arrays shaped like the stage's outputs (the initial best result); `shapes` if given, else traced."""
  if shapes is None:
    data = () if stage.data is None else (stage.data,)
    shapes = jax.eval_shape(
        lambda p, s: stage.loss_fn(p, s, jnp.int32(0), jax.random.key(0), *data)[1][1], params, batch_stats
    )
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def abstract_state(
    problem: Problem, stage: Stage, params: PyTree, batch_stats: PyTree, num_perturbations: int = 1
) -> TrainState:
  """The shapes and dtypes (`jax.ShapeDtypeStruct`s) of a stage's starting state, for variables like those given."""
  return jax.eval_shape(
      lambda p, s: initial_state(problem, stage, params=p, batch_stats=s, num_perturbations=num_perturbations)[0],
      params,
      batch_stats,
  )


class ChunksAhead:
  """Each stage's state shapes and compiled chunk, built in order on a background thread.

  Built from the shapes of the generators' variables (`models.generator_shapes`)
  while the caller initialises them and runs the earlier stages. The chunk is
  the program `stage_chunk` builds on the concrete state: its first call does
  not compile, and results do not change. A build that fails yields None, and
  the caller builds it itself (raising the same error in its own thread).
  """

  def __init__(
      self,
      problem: Problem,
      stages: Sequence[tuple[int, Stage, jax.Array]],
      params: PyTree,
      batch_stats: PyTree,
      *,
      strategy: str,
      steps_per_call: int,
      num_perturbations: int,
      options: dict[str, str],
  ):
    """`stages`: (index, stage, its key) in the order they run; `params`, `batch_stats`: the variables' shapes."""
    stages = [(index, stage, key) for index, stage, key in stages if stage.num_steps > 0]  # Others run no step.
    self._planned = {index for index, _, _ in stages}
    self._built: dict[int, tuple[TrainState, Chunk] | None] = {}
    self._done = threading.Condition()
    self._closed = False

    def build_all():
      for index, stage, key in stages:
        with self._done:
          if self._closed:
            break
        try:
          state = abstract_state(problem, stage, params, batch_stats, num_perturbations)
          # The chunk the stage's loop calls first: a stage shorter than a chunk runs in one shorter call.
          chunk = stage_chunk(
              stage, num_perturbations, strategy, min(steps_per_call, stage.num_steps), state, key, options
          )
          compile_cache.compile_ahead(chunk, state, key)
          built = (state, chunk)
        except Exception as err:  # pylint: disable=broad-exception-caught  # The caller builds it and raises.
          logging.debug('building stage %r ahead failed (%s); it is built when it runs', stage.name, err)
          built = None
        with self._done:
          self._built[index] = built
          self._done.notify_all()
      with self._done:
        self._closed = True
        self._done.notify_all()

    self._thread = compile_cache.thread_in_this_context(build_all, 'ddip_jax-chunks-ahead')
    self._thread.start()

  def get(self, index: int) -> tuple[TrainState, Chunk] | None:
    """Stage `index`'s (state shapes, chunk of min(steps_per_call, its num_steps) steps), waiting for it; None if
    it failed or is not built."""
    if index not in self._planned:
      return None
    with self._done:
      self._done.wait_for(lambda: index in self._built or self._closed)
      return self._built.get(index)

  def close(self) -> None:
    """Builds nothing more and waits for the build under way (a compile cannot be cut short)."""
    with self._done:
      self._closed = True
    self._thread.join()

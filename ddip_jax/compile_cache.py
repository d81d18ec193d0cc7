"""Compiling the engine's steps once: a cache of compiled chunks across runs, and XLA options.

A task's loss functions close over its data (image, hints, noise inputs...).
Left in the traced step, those would be constants of the compiled program, and
every restart or image would compile it anew (seconds to a minute on a CPU).
`cached_jit` traces a chunk of steps to a jaxpr, whose constants are exactly
that data, and compiles the jaxpr as a function of its constants, memoised on
the jaxpr's text and the arguments' structure: a run whose step computes the
same thing on other data of the same shapes (another restart, another image of
the same size) reuses the compiled executable. The numbers are those of
compiling the same program anew, so results do not depend on what ran before.
"""

import collections
from collections.abc import Callable, Iterator
import contextlib
import functools
import threading
from typing import Any

import jax
import numpy as np

# XLA:CPU hands these kinds of operations to the YNNPACK library; its default
# (jax 0.10) also hands it every convolution. Without them the DIP convolutions
# run in XLA's Eigen kernels: 6-18% less time per step for our generators at
# 64-512 px (`benchmarks/step_time.py --xla_default_too`).
# Reductions stay in YNNPACK: XLA's own are slower still.
_YNN_FUSION_OPTION = 'xla_cpu_experimental_ynn_fusion_type'


_YNN_WITHOUT_CONVOLUTIONS = 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE'


@functools.cache
def _accepts_compiler_options(options: tuple[tuple[str, str], ...]) -> bool:
  """Whether this jaxlib's compiler knows `options` (older ones lack the YNNPACK option)."""
  try:
    jax.jit(lambda x: x + 1, compiler_options=dict(options)).lower(np.float32(0)).compile()
  except Exception:  # pylint: disable=broad-exception-caught  # Any refusal means: do not use them.
    return False
  return True


# Options of programs that run once (the generators' initialisation): with LLVM's
# optimisations off they compile about 4x faster, and run slower, once.
_RUN_ONCE = (('xla_backend_optimization_level', '0'),)


def run_once_options() -> dict[str, str]:
  """XLA compiler options for a program that runs once: compile fast (none if this jaxlib refuses them)."""
  return dict(_RUN_ONCE) if _accepts_compiler_options(_RUN_ONCE) else {}


def compiler_options(options: Any) -> dict[str, str]:
  """XLA compiler options for the compiled steps on the default backend (`options`: an `engine.LoopOptions`,
  see its `cpu_convolutions`)."""
  if options.cpu_convolutions == 'xla_default' or jax.default_backend() != 'cpu':
    return {}
  if options.cpu_convolutions != 'eigen':
    raise ValueError(f'unknown cpu_convolutions {options.cpu_convolutions!r}')
  wanted = ((_YNN_FUSION_OPTION, _YNN_WITHOUT_CONVOLUTIONS),)
  return dict(wanted) if _accepts_compiler_options(wanted) else {}


# The compiled chunks of `cached_jit`, least recently used first.
_COMPILED: dict[tuple[Any, ...], Callable[..., Any]] = {}


_COMPILED_LOCK = threading.Lock()  # Runs on several devices use it from several threads.


_COMPILED_SIZE = 8


# The `_COMPILED` keys whose program `compile_ahead` has compiled: lowering it again costs a second or so.
_AHEAD: set[tuple[Any, ...]] = set()


# The name of the engine's jitted function of its steps, in compilation logs and events.
STEP_FUNCTION_NAME = 'jit(chunk)'


class Compilations:
  """XLA compilations by function name, with their seconds (see `count_compilations`)."""

  def __init__(self):
    self.count: collections.Counter[str] = collections.Counter()
    self.seconds: collections.Counter[str] = collections.Counter()

  @property
  def steps(self) -> int:
    """How many compilations of the engine's steps."""
    return self.count[STEP_FUNCTION_NAME]

  def on_event(self, event: str, duration: float, **kwargs) -> None:
    if event == '/jax/core/compile/backend_compile_duration':
      self.count[kwargs.get('fun_name', '?')] += 1
      self.seconds[kwargs.get('fun_name', '?')] += duration


@contextlib.contextmanager
def count_compilations() -> Iterator[Compilations]:
  """Counts the XLA compilations made in the block (all threads), from `jax.monitoring` events."""
  compilations = Compilations()
  jax.monitoring.register_event_duration_secs_listener(compilations.on_event)
  try:
    yield compilations
  finally:
    jax.monitoring.unregister_event_duration_listener(compilations.on_event)


def chunk_fn(step_fn, strategy: str, num_steps: int):
  """A function running `num_steps` steps of `step_fn` (a `lax.scan` for 'scan'): chunk(state, key, *data)."""
  if strategy == 'scan' and num_steps > 1:

    def chunk(state, key, *data):
      return jax.lax.scan(lambda s, _: (step_fn(s, key, *data), None), state, None, length=num_steps)[0]

  else:

    def chunk(state, key, *data):
      for _ in range(num_steps):
        state = step_fn(state, key, *data)
      return state

  return chunk


def make_chunk(step_fn, strategy: str, num_steps: int, options: dict[str, str] | None = None):
  """A jitted function running `num_steps` steps; the state buffer is donated.

  `options`: XLA compiler options (`compiler_options`).
  """
  return jax.jit(chunk_fn(step_fn, strategy, num_steps), donate_argnums=0, compiler_options=options)


class Chunk:
  """A `cached_jit` program bound to its constants (and trailing arguments): chunk(state, key) -> state."""

  def __init__(self, jitted: Callable[..., Any], consts: list[Any], cache_key: tuple[Any, ...], extra: tuple[Any, ...]):
    self.jitted, self.consts, self.cache_key, self.extra = jitted, consts, cache_key, extra

  def __call__(self, state: Any, key: jax.Array) -> Any:
    return self.jitted(self.consts, state, key, *self.extra)

  def compile(self, state: Any, key: Any) -> None:
    """Compiles the program for arguments like (state, key) (shapes and dtypes are what matter)."""
    self.jitted.lower(self.consts, state, key, *self.extra).compile()


# `cached_jit` by the caller's identity of `fn` (e.g. the stage's loss function) and the arguments' types: a
# caller that runs the same `fn` again on other trailing arguments (a correction's new hints) finds its program
# without tracing it again (about a second); least recently used dropped beyond `_COMPILED_SIZE`.
_BY_IDENTITY: dict[tuple[Any, ...], tuple[tuple[Any, ...], list[Any]]] = {}


def _avals(tree: Any) -> tuple[Any, ...]:
  return jax.tree.structure(tree), tuple(jax.typeof(x) for x in jax.tree.leaves(tree))


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
  """Puts `value` last (most recently used) and drops the least recently used beyond `_COMPILED_SIZE`."""
  cache.pop(key, None)
  cache[key] = value
  while len(cache) > _COMPILED_SIZE:
    dropped = next(iter(cache))
    if cache is _COMPILED:
      _AHEAD.discard(dropped)
    cache.pop(dropped)


def cached_jit(
    fn: Callable[..., Any], state: Any, key: jax.Array, *extra: Any, options: dict[str, str], identity: Any = None
) -> Chunk:
  """`fn` (e.g. a `chunk_fn`) compiled for arguments like (state, key, *extra), state donated (module docstring).

  Args:
    fn: fn(state, key, *extra) -> new state.
    state, key: example arguments (their structure, shapes and dtypes).
    *extra: trailing arguments, bound to the chunk returned (a stage's data).
    options: XLA compiler options.
    identity: a hashable that names what `fn` computes (None: nothing): a
      later call with the same identity and arguments of the same types reuses
      the program found then without tracing `fn`.

  Returns:
    chunk(state, key) -> fn(state, key, *extra), sharing the compiled
    executable with every earlier call whose `fn` traced to the same program
    on arguments of the same structure, shapes and dtypes (least recently used
    of `_COMPILED_SIZE` dropped).
  """
  known = None
  if identity is not None:
    identity = (identity, _avals((state, key, extra)), tuple(sorted(options.items())))
    with _COMPILED_LOCK:
      known = _BY_IDENTITY.get(identity)
      if known is not None and known[0] in _COMPILED:
        _remember(_BY_IDENTITY, identity, known)
        _remember(_COMPILED, known[0], _COMPILED[known[0]])
        return Chunk(_COMPILED[known[0]], known[1], known[0], extra)
  closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(state, key, *extra)
  in_tree, out_tree = jax.tree.structure((state, key, extra)), jax.tree.structure(out_shape)
  cache_key = (
      str(closed.jaxpr),
      in_tree,
      out_tree,
      tuple(map(jax.typeof, closed.consts)),
      tuple(sorted(options.items())),
  )
  with _COMPILED_LOCK:
    compiled = _COMPILED.get(cache_key)
    if compiled is None:
      jaxpr = closed.jaxpr

      def chunk(consts, state, key, *extra):  # pylint: disable=redefined-outer-name  # STEP_FUNCTION_NAME.
        flat = jax.core.eval_jaxpr(jaxpr, consts, *jax.tree.leaves((state, key, extra)))
        return jax.tree.unflatten(out_tree, flat)

      compiled = jax.jit(chunk, donate_argnums=1, compiler_options=options)
    _remember(_COMPILED, cache_key, compiled)
    if identity is not None:
      _remember(_BY_IDENTITY, identity, (cache_key, closed.consts))
  return Chunk(compiled, closed.consts, cache_key, extra)


def compile_ahead(chunk: Chunk, state: Any, key: Any) -> None:
  """Compiles a `cached_jit` chunk for arguments like (state, key) now, so that its first call does not.

  `state` and `key` may be `jax.ShapeDtypeStruct`s: only their shapes and
  dtypes matter. XLA compiles without holding the GIL, so on a thread this
  overlaps other work. A program compiled ahead before is not lowered again
  (an interactive correction reuses the first result's).
  """
  with _COMPILED_LOCK:
    if chunk.cache_key in _AHEAD:
      return
  chunk.compile(state, key)
  with _COMPILED_LOCK:
    _AHEAD.add(chunk.cache_key)


def thread_in_this_context(target: Callable[[], None], name: str) -> threading.Thread:
  """A daemon thread running `target` with this thread's default device (`jax.default_device` is per thread:
  a batch runs each device's images in its own thread)."""
  device = jax.config.jax_default_device

  def run():
    with jax.default_device(device):
      target()

  return threading.Thread(target=run, name=name, daemon=True)

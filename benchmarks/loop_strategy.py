r"""Times the engine's loop strategies on the zebra segmentation step.

  PYTHONPATH=. python benchmarks/loop_strategy.py [--steps=40]

For each strategy ('step': one jitted step per Python call; 'unroll': a jit of K
Python-unrolled steps; 'scan': lax.scan over K steps) it reports compile time
and the median ms/step over a few repeats, and the ratio to 'step', all in one
run on the current backend. `engine.resolve_strategy` picks the fastest per
backend from these numbers.
"""

import time

from absl import app
from absl import flags
import jax
import numpy as np

from configs import zebra
from ddip_jax import compile_cache
from ddip_jax import engine
from ddip_jax import hints
from ddip_jax import image_io
from ddip_jax.tasks import segmentation

_STEPS = flags.DEFINE_integer('steps', 40, 'Timed steps per repeat.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed repeats (median reported).')

STRATEGIES = (('step', 1), ('unroll', 2), ('unroll', 4), ('scan', 4), ('scan', 10))


def time_strategy(problem: engine.Problem, strategy: str, per_call: int) -> tuple[float, float]:
  """(compile seconds, median ms/step) of the problem's main stage."""
  stage = problem.stages[-1]
  state, step_fn = engine.initial_state(problem, stage, key=jax.random.key(0))
  chunk = compile_cache.make_chunk(step_fn, strategy, per_call, compile_cache.compiler_options(engine.LoopOptions()))
  key = jax.random.key(1)
  start = time.perf_counter()
  state = jax.block_until_ready(chunk(state, key))
  compile_s = time.perf_counter() - start
  calls = max(1, _STEPS.value // per_call)
  times = []
  for _ in range(_REPEATS.value):
    start = time.perf_counter()
    for _ in range(calls):
      state = chunk(state, key)
    jax.block_until_ready(state)
    times.append((time.perf_counter() - start) / (calls * per_call))
  return compile_s, 1000 * float(np.median(times))


def main(argv):
  del argv
  config = zebra.get_config()
  image = image_io.load_image(config.image)
  fg, bg, _ = hints.resolve_hints(image, fg_path=None, bg_path=None, method=config.segmentation.auto_hints)
  problem = segmentation.build_problem(config, image, fg, bg, jax.random.key(0))
  print(f'backend {jax.default_backend()}, image {image.shape[:2]}, 3 generators')
  rows = [(s, k, *time_strategy(problem, s, k)) for s, k in STRATEGIES]
  base = rows[0][3]
  print(f'{"strategy":>10} {"K":>3} {"compile s":>10} {"ms/step":>8} {"vs step":>8}')
  for strategy, k, compile_s, ms in rows:
    print(f'{strategy:>10} {k:>3} {compile_s:>10.1f} {ms:>8.1f} {base / ms:>7.2f}x')


if __name__ == '__main__':
  app.run(main)

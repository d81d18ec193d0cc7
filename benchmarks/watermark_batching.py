r"""Times the watermark task's independent runs one after another vs batched with jax.vmap.

  PYTHONPATH=. python benchmarks/watermark_batching.py [--runs=3] [--size=128] \
      [--mode=hint] [--steps=20] [--repeats=3]

Builds the main stage of configs/watermark.py (or, with --mode=many,
configs/watermark_many.py) on the demo image resized to --size, once for a
single run and once with --runs runs batched (every generator's parameters
with a leading run axis, `models.batched_generator`), and reports for each
the compile time and the median ms per step, then the time per run-step:
sequential runs cost runs x (one run's step) and compile once (they share
the compiled step), batched ones one batched step.
`watermark.resolve_batching` ('auto') picks sequential on CPU from these
numbers. The timing loop is benchmarks/loop_strategy.py's, with the engine's
per-backend loop strategy.
"""

from absl import app
from absl import flags
import jax
import numpy as np

from benchmarks import loop_strategy
from configs import watermark as watermark_config
from configs import watermark_many as watermark_many_config
from ddip_jax import engine
from ddip_jax import image_io
from ddip_jax import watermark_io
from ddip_jax.tasks import watermark

_RUNS = flags.DEFINE_integer('runs', 3, 'Runs batched together.')
_SIZE = flags.DEFINE_integer('size', 128, 'Side of the (square) image in pixels.')
_MODE = flags.DEFINE_enum('mode', 'hint', watermark.MODES, 'Which demo config to time.')


def build(runs: int) -> engine.Problem:
  """The demo's watermark problem with `runs` runs (1: a plain one)."""
  config = (watermark_config if _MODE.value == 'hint' else watermark_many_config).get_config()
  inputs = watermark_io.load_inputs(config)
  shape = (_SIZE.value, _SIZE.value)
  images = np.stack([image_io.resize_image(img, shape) for img in inputs.working])
  hint = None
  if inputs.hint_working is not None:
    hint = (image_io.resize_image(inputs.hint_working, shape) > 0.5).astype(np.float32)
  keys = [jax.random.fold_in(jax.random.key(0), r) for r in range(runs)]
  return watermark.build_problem(config, images, hint, keys)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  strategy, per_call = engine.resolve_strategy(engine.LoopOptions())
  runs = _RUNS.value
  print(
      f'backend {jax.default_backend()}, mode {_MODE.value}, {_SIZE.value}x{_SIZE.value}, {runs} runs, '
      f'loop {strategy} x{per_call}, {flags.FLAGS.steps} steps x {flags.FLAGS.repeats} repeats'
  )
  one_compile, one_ms = loop_strategy.time_strategy(build(1), strategy, per_call)
  all_compile, all_ms = loop_strategy.time_strategy(build(runs), strategy, per_call)
  print(f'{"variant":>22} {"compile s":>10} {"ms/step":>8} {"ms per run-step":>16}')
  print(f'{"sequential (one run)":>22} {one_compile:>10.1f} {one_ms:>8.1f} {one_ms:>16.1f}')
  print(f'{f"batched ({runs} runs)":>22} {all_compile:>10.1f} {all_ms:>8.1f} {all_ms / runs:>16.1f}')
  # Sequential runs share one compiled step (watermark.reseed + the engine's per-Stage memo).
  print(
      f'batched / sequential time per run-step: {all_ms / runs / one_ms:.2f}x; '
      f'compile: sequential {one_compile:.0f} s once for all runs, batched {all_compile:.0f} s'
  )


if __name__ == '__main__':
  app.run(main)

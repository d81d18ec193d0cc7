r"""Compilations and wall time of R restarts and of N same-size images.

  PYTHONPATH=. python benchmarks/compile_reuse.py [--restarts=2] [--images=2]
      [--max_side=64] [--hint_steps=100] [--num_steps=100]

Runs the zebra segmentation (`configs/zebra.py`, at `--max_side` px and a short
schedule) with `config.restarts = R`, then `--config.inputs` over N images of
the same size (the zebra photo and its mirror images), each in a temporary
workdir, and prints, for every restart and every image, its wall time, how
many XLA compilations of the training step (the engine's jitted chunks, named
'chunk') it caused and their compile seconds, and the total of all compilations.
A compiled step that is reused shows 0 compilations after the first run.

Compilations are counted from `jax.monitoring`'s backend-compile events, so the
script also measures a version of ddip_jax whose step has the task's data
baked in as constants (run it with that version first on PYTHONPATH).
"""

import collections
import os
import tempfile
import time

from absl import app
from absl import flags
import jax
import numpy as np

from configs import zebra
from ddip_jax import batch
from ddip_jax import image_io
from ddip_jax import restarts
from ddip_jax import writing
from ddip_jax.tasks import segmentation

_RESTARTS = flags.DEFINE_integer('restarts', 2, 'Restarts of one image.')
_IMAGES = flags.DEFINE_integer('images', 2, 'Same-size images in one batch (at most 4).')
_MAX_SIDE = flags.DEFINE_integer('max_side', 64, 'Working resolution (longest side).')
_HINT_STEPS = flags.DEFINE_integer('hint_steps', 100, 'Segmentation step-1 iterations.')
_NUM_STEPS = flags.DEFINE_integer('num_steps', 100, 'Segmentation step-2 iterations.')

STEP_NAME = 'jit(chunk)'  # The engine's jitted function of its steps (compile_cache.STEP_FUNCTION_NAME).


class CompileCounter:
  """Counts XLA backend compilations by function name, with their seconds."""

  def __init__(self):
    self.count = collections.Counter()
    self.seconds = collections.Counter()
    jax.monitoring.register_event_duration_secs_listener(self._on_event)

  def _on_event(self, event: str, duration: float, **kwargs) -> None:
    if event == '/jax/core/compile/backend_compile_duration':
      name = kwargs.get('fun_name', '?')
      self.count[name] += 1
      self.seconds[name] += duration

  def snapshot(self) -> tuple[int, float, int, float]:
    """(step compilations, their seconds, all compilations, their seconds) so far."""
    return (self.count[STEP_NAME], self.seconds[STEP_NAME], sum(self.count.values()), sum(self.seconds.values()))


class _TimedTask:
  """The segmentation task, each run's wall time and compilations recorded."""

  SELECTION_METRIC = restarts.selection_metric(segmentation)

  def __init__(self, counter: CompileCounter, label: str):
    self.counter, self.label = counter, label

  def run(self, config, workdir):
    before, start = self.counter.snapshot(), time.perf_counter()
    metrics = segmentation.run(config, workdir)
    report(f'{self.label} seed {config.seed}', time.perf_counter() - start, before, self.counter.snapshot())
    return metrics


def report(label: str, seconds: float, before, after) -> None:
  step, step_s, total, total_s = (b - a for a, b in zip(before, after))
  print(
      f'{label:<24} {seconds:8.1f} s wall   step compiles {step:2d} ({step_s:5.1f} s)   '
      f'all compiles {total:4d} ({total_s:5.1f} s)',
      flush=True,
  )


def config_for():
  config = zebra.get_config()
  config.max_side = _MAX_SIDE.value
  config.segmentation.hint_steps = _HINT_STEPS.value
  config.num_steps = _NUM_STEPS.value
  config.progress = False
  config.loop.checkpoint_every = 0
  return config


def main(argv):
  del argv
  counter = CompileCounter()
  print(
      f'backend {jax.default_backend()}, zebra at max_side {_MAX_SIDE.value}, '
      f'{_HINT_STEPS.value} + {_NUM_STEPS.value} steps'
  )
  with tempfile.TemporaryDirectory() as tmp:
    config = config_for()
    config.restarts = _RESTARTS.value
    before, start = counter.snapshot(), time.perf_counter()
    restarts.run(_TimedTask(counter, 'restart'), config, os.path.join(tmp, 'restarts'))
    report(f'{config.restarts} restarts in all', time.perf_counter() - start, before, counter.snapshot())

    photo = image_io.load_image(config.image)
    variants = [photo, photo[:, ::-1], photo[::-1], photo[::-1, ::-1]][: _IMAGES.value]
    for i, image in enumerate(variants):
      writing.save_image(os.path.join(tmp, 'in', f'image_{i}.png'), np.ascontiguousarray(image))
    config = config_for()
    config.inputs = os.path.join(tmp, 'in', '*.png')
    before, start = counter.snapshot(), time.perf_counter()
    rows = []
    for path in batch.input_paths(config.inputs):  # batch.run's loop, one image at a time to count each.
      row_before, row_start = counter.snapshot(), time.perf_counter()
      row = batch.run_image(
          config,
          path,
          os.path.join(tmp, 'batch', os.path.basename(path)),
          batch.Row(image=path, output=os.path.basename(path)),
      )
      report(
          f'image {os.path.basename(path)} ({row.status})',
          time.perf_counter() - row_start,
          row_before,
          counter.snapshot(),
      )
      rows.append(row)
    report(f'{len(rows)} images in all', time.perf_counter() - start, before, counter.snapshot())


if __name__ == '__main__':
  app.run(main)

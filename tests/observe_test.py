"""`engine.observe`: a front end sees every compiled call of the runs in its thread, and can stop them."""

import threading

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from ddip_jax import engine
from ddip_jax import losses
from ddip_jax import models

_SIZE = 8


def _problem() -> engine.Problem:
  """One generator fitting a ramp: a stage without best tracking (3 steps), then one with it (5 steps)."""
  generators = {'a': models.SkipGenerator(out_channels=3, channels_down=(4,), channels_up=(4,), channels_skip=(0,))}
  inputs = {'a': models.make_noise(jax.random.key(0), (_SIZE, _SIZE), 2, var=0.1)}
  target = jnp.broadcast_to(jnp.linspace(0.2, 0.8, _SIZE)[None, None, :, None], (1, _SIZE, _SIZE, 3))

  def loss_fn(params, batch_stats, step, key):
    del step, key
    out, stats = models.apply_generators(generators, params, batch_stats, inputs)
    return losses.l1(out['a'], target), (stats, out, losses.psnr(out['a'], target))

  stages = [engine.Stage('warm', 3, loss_fn, 0.01, track_best=False), engine.Stage('fit', 5, loss_fn, 0.01)]
  return engine.Problem(generators, inputs, stages)


_OPTIONS = engine.LoopOptions(strategy='step', progress=False)  # One step a compiled call.


class ObserveTest(absltest.TestCase):

  def test_sees_every_compiled_call_in_its_thread_only(self):
    seen, psnrs = [], []

    def observer(stage, done, state):
      seen.append((stage.name, done, stage.num_steps))
      psnrs.append(float(state.psnr))  # The state is live during the call.
      return None

    with engine.observe(observer):
      other = threading.Thread(target=lambda: engine.optimize(_problem(), key=jax.random.key(1), options=_OPTIONS))
      other.start()
      other.join()
      self.assertEmpty(seen)  # Another thread's run is not this observer's.
      engine.optimize(_problem(), key=jax.random.key(1), options=_OPTIONS)
    self.assertEqual(seen, [('warm', k, 3) for k in (1, 2, 3)] + [('fit', k, 5) for k in (1, 2, 3, 4, 5)])
    self.assertTrue(np.isfinite(psnrs).all())
    engine.optimize(_problem(), key=jax.random.key(1), options=_OPTIONS)
    self.assertLen(seen, 8)  # Not observed once the block has ended.

  def test_a_reason_stops_the_run_with_the_best_so_far(self):
    calls = []

    def observer(stage, done, state):
      del state
      calls.append((stage.name, done))
      return 'stop button' if (stage.name, done) == ('fit', 2) else None

    with engine.observe(observer), self.assertRaises(engine.Interrupted) as stopped:
      engine.optimize(_problem(), key=jax.random.key(1), options=_OPTIONS)
    self.assertEqual(stopped.exception.reason, 'stop button')
    self.assertEqual(calls[-1], ('fit', 2))
    result = stopped.exception.result
    self.assertIn('a', result.best)
    self.assertBetween(result.best_step, 0, 1)


if __name__ == '__main__':
  absltest.main()

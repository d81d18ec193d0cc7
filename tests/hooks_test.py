"""`hooks`: one event type for every listener of a run; a front end listening in its thread sees every compiled
call of the runs there, and can stop them."""

import dataclasses
import threading

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from ddip_jax import engine
from ddip_jax import hooks
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


class HooksTest(absltest.TestCase):

  def test_a_listener_sees_every_compiled_call_in_its_thread_only(self):
    seen, psnrs = [], []

    def hook(event):
      if event.kind == 'step':
        seen.append((event.stage, event.done, event.total))
        psnrs.append(float(event.state.psnr))  # The state is live during the call.

    with hooks.listening(hook):
      other = threading.Thread(target=lambda: engine.optimize(_problem(), key=jax.random.key(1), options=_OPTIONS))
      other.start()
      other.join()
      self.assertEmpty(seen)  # Another thread's run is not this listener's.
      engine.optimize(_problem(), key=jax.random.key(1), options=_OPTIONS)
    self.assertEqual(seen, [('warm', k, 3) for k in (1, 2, 3)] + [('fit', k, 5) for k in (1, 2, 3, 4, 5)])
    self.assertTrue(np.isfinite(psnrs).all())
    engine.optimize(_problem(), key=jax.random.key(1), options=_OPTIONS)
    self.assertLen(seen, 8)  # Not told once the block has ended.

  def test_events_come_in_order_with_the_run_part(self):
    events = []
    with hooks.part('restart 2'), hooks.part('pass 1'):
      engine.optimize(
          _problem(),
          key=jax.random.key(1),
          options=dataclasses.replace(_OPTIONS, check_every=2),
          hooks=[lambda e: events.append((e.kind, e.part, e.stage, e.stage_index, e.num_stages, e.done))],
      )
    part = 'restart 2 / pass 1'
    self.assertEqual(
        events,
        [
            ('start', part, 'warm', 0, 2, 0),
            ('step', part, 'warm', 0, 2, 1),
            ('step', part, 'warm', 0, 2, 2),
            ('check', part, 'warm', 0, 2, 2),
            ('step', part, 'warm', 0, 2, 3),
            ('check', part, 'warm', 0, 2, 3),
            ('end', part, 'warm', 0, 2, 3),
            ('start', part, 'fit', 1, 2, 0),
            ('step', part, 'fit', 1, 2, 1),
            ('step', part, 'fit', 1, 2, 2),
            ('check', part, 'fit', 1, 2, 2),
            ('step', part, 'fit', 1, 2, 3),
            ('step', part, 'fit', 1, 2, 4),
            ('check', part, 'fit', 1, 2, 4),
            ('step', part, 'fit', 1, 2, 5),
            ('check', part, 'fit', 1, 2, 5),
            ('end', part, 'fit', 1, 2, 5),
        ],
    )
    self.assertEqual(hooks.current_part(), '')

  def test_a_reason_stops_the_run_with_the_best_so_far_and_every_hook_is_told(self):
    calls, others = [], []

    def hook(event):
      if event.kind != 'step':
        return None
      calls.append((event.stage, event.done))
      return 'stop button' if (event.stage, event.done) == ('fit', 2) else None

    with hooks.listening(hook), self.assertRaises(engine.Interrupted) as stopped:
      engine.optimize(_problem(), key=jax.random.key(1), options=_OPTIONS, hooks=[lambda e: others.append(e.kind)])
    self.assertEqual(stopped.exception.reason, 'stop button')
    self.assertEqual(calls[-1], ('fit', 2))
    self.assertEqual(others[-2:], ['step', 'end'])  # The stage's end is told when it stops too.
    result = stopped.exception.result
    self.assertIn('a', result.best)
    self.assertBetween(result.best_step, 0, 1)


if __name__ == '__main__':
  absltest.main()

"""Tests of ddip_jax.steps' chunks built ahead and compile_cache's background compiles."""

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np

from ddip_jax import compile_cache
from ddip_jax import engine
from ddip_jax import losses
from ddip_jax import models
from ddip_jax import steps

_SIZE = 16


def _problem(loss_scale: float = 1.0, fail: bool = False) -> engine.Problem:
  """One tiny generator fitting a ramp under L1 (`loss_scale` makes another program); `fail`: tracing raises."""
  generators = {'a': models.SkipGenerator(out_channels=3, channels_down=(8,), channels_up=(8,), channels_skip=(0,))}
  inputs = {'a': models.make_noise(jax.random.key(0), (_SIZE, _SIZE), 2, var=0.1)}
  target = jnp.asarray(np.linspace(0.2, 0.8, _SIZE * _SIZE * 3, dtype=np.float32).reshape(1, _SIZE, _SIZE, 3))

  def loss_fn(params, batch_stats, step, key):
    del step
    if fail:
      raise ValueError('this loss cannot be traced')
    noisy = {'a': models.perturb(inputs['a'], key, jnp.float32(0.01))}
    out, stats = models.apply_generators(generators, params, batch_stats, noisy)
    return loss_scale * losses.l1(out['a'], target), (stats, out, losses.psnr(out['a'], target))

  return engine.Problem(generators, inputs, [engine.Stage('fit', 5, loss_fn, 0.01)])


def _ahead(problem: engine.Problem) -> steps.ChunksAhead:
  shapes = models.generator_shapes(problem.generators, problem.inputs, jax.random.key(1))
  return steps.ChunksAhead(
      problem,
      [(0, problem.stages[0], jax.random.key(2))],
      *shapes,
      strategy='step',
      steps_per_call=1,
      num_perturbations=1,
      options={},
  )


class StepsTest(absltest.TestCase):

  def test_chunk_built_ahead_runs_without_compiling(self):
    problem = _problem(loss_scale=1.5)  # A program no other test compiles.
    ahead = _ahead(problem)
    shapes, chunk = ahead.get(0)
    ahead.close()
    params, stats = models.init_generators(problem.generators, problem.inputs, jax.random.key(1))
    state, _ = steps.initial_state(
        problem, problem.stages[0], params=params, batch_stats=stats, best_shapes=shapes.best
    )
    chex.assert_trees_all_equal_shapes_and_dtypes(state, shapes)
    with compile_cache.count_compilations() as compiled:
      state = chunk(state, jax.random.key(2))
      jax.block_until_ready(state)
    self.assertEqual(compiled.steps, 0)
    self.assertEqual(int(state.step), 1)

  def test_a_stage_not_planned_is_none_at_once(self):
    ahead = _ahead(_problem())
    self.assertIsNone(ahead.get(3))
    ahead.close()

  def test_failed_build_is_none_and_optimize_raises_in_the_caller(self):
    problem = _problem(fail=True)
    ahead = _ahead(problem)
    self.assertIsNone(ahead.get(0))
    ahead.close()
    with self.assertRaisesRegex(ValueError, 'cannot be traced'):
      engine.optimize(problem, key=jax.random.key(0), options=engine.LoopOptions(progress=False))

  def test_optimize_compiles_the_step_once(self):
    problem = _problem(loss_scale=2.5)
    with compile_cache.count_compilations() as compiled:
      result = engine.optimize(problem, key=jax.random.key(0), options=engine.LoopOptions(progress=False))
    self.assertEqual(compiled.steps, 1)
    self.assertEqual(result.metrics['stages']['fit']['steps'], 5)

  def test_background_threads_keep_the_callers_default_device(self):
    seen = []
    device = jax.devices()[0]
    with jax.default_device(device):
      thread = compile_cache.thread_in_this_context(lambda: seen.append(jax.config.jax_default_device), 'test')
    thread.start()
    thread.join()
    self.assertEqual(seen, [device])


if __name__ == '__main__':
  absltest.main()

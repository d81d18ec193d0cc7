"""Tests of ddip_jax.engine on a toy problem: one tiny generator fitting a 16x16 image."""

import functools
import math
import os
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from ddip_jax import checkpoint_io
from ddip_jax import compile_cache
from ddip_jax import engine
from ddip_jax import losses
from ddip_jax import models
from ddip_jax import outputs

_SIZE = 16
_STEPS = 31  # Chunks of 2, 3 and 5 steps all leave a 1-step tail.
_LR = 0.01


def _target() -> np.ndarray:
  """A smooth (1, 16, 16, 3) image in [0.2, 0.8] that a small generator can fit."""
  yy, xx = np.mgrid[0:_SIZE, 0:_SIZE] / (_SIZE - 1)
  rgb = [0.2 + 0.6 * xx, 0.2 + 0.6 * yy, 0.5 + 0.3 * np.sin(3 * xx) * np.cos(2 * yy)]
  return np.stack(rgb, -1)[None].astype(np.float32)


def _generator(out_channels: int = 3) -> models.SkipGenerator:
  return models.SkipGenerator(out_channels=out_channels, channels_down=(8,), channels_up=(8,), channels_skip=(0,))


class _Toy:
  """Generator 'a' fits the target under L1, its input perturbed by N(0, 0.01^2) per step.

  `traces` counts how often the loss function is traced (by jit, eval_shape or scan).
  """

  def __init__(self, *, nan_from_step: int | None = None, nan_grad_from_step: int | None = None, data_seed: int = 0):
    self.traces = 0
    self.generators = {'a': _generator()}
    # `data_seed` > 0: other data of the same shapes (noise, and the target shifted).
    self.inputs = {'a': models.make_noise(jax.random.key(data_seed), (_SIZE, _SIZE), 2, var=0.1)}
    self.target = jnp.asarray(np.roll(_target(), data_seed, axis=2))
    self.nan_from_step = nan_from_step
    self.nan_grad_from_step = nan_grad_from_step

  def loss_fn(self, params, batch_stats, step, key):
    self.traces += 1
    noisy = {'a': models.perturb(self.inputs['a'], key, jnp.float32(0.01))}
    out, stats = models.apply_generators(self.generators, params, batch_stats, noisy)
    loss = losses.l1(out['a'], self.target)
    if self.nan_from_step is not None:
      # Multiplied in, so that the gradients (and the update) are NaN too.
      loss = loss * jnp.where(step >= self.nan_from_step, jnp.nan, 1.0)
    if self.nan_grad_from_step is not None:
      # A finite loss whose gradient is NaN: the unselected branch of a `where`
      # is sqrt of a negative number, and 0 * its infinite slope is NaN.
      bad = step >= self.nan_grad_from_step
      s = jax.tree.leaves(params)[0].sum()
      loss = loss + jnp.where(bad, 0.0, jnp.sqrt(jnp.where(bad, -1.0 - s * s, 1.0)) - 1.0)
    return loss, (stats, out, losses.psnr(out['a'], self.target))

  def problem(self, num_steps: int = _STEPS, **stage_kwargs) -> engine.Problem:
    stage = engine.Stage('fit', num_steps, self.loss_fn, _LR, **stage_kwargs)
    return engine.Problem(self.generators, self.inputs, [stage])


def _options(**kwargs) -> engine.LoopOptions:
  kwargs.setdefault('strategy', 'step')
  return engine.LoopOptions(progress=False, **kwargs)


class _Recorder:
  """on_check callback keeping host copies (the state's buffers are donated next call)."""

  def __init__(self):
    self.loss, self.psnr, self.best_psnr, self.step = [], [], [], []

  def __call__(self, name, state):
    del name
    self.loss.append(float(state.loss))
    self.psnr.append(float(state.psnr))
    self.best_psnr.append(float(state.best_psnr))
    self.step.append(int(state.step))


@functools.lru_cache(maxsize=None)
def _reference():
  """The 'step' strategy run, checked every step (shared by several tests)."""
  toy = _Toy()
  recorder = _Recorder()
  result = engine.optimize(toy.problem(), key=jax.random.key(42), options=_options(check_every=1), on_check=recorder)
  return toy, recorder, result


def _host(tree):
  return jax.tree.map(np.asarray, tree)


def _render(toy: _Toy, result: engine.Result) -> np.ndarray:
  """The generator's output from the final variables on the unperturbed input."""
  out, _ = models.apply_generators(toy.generators, result.params, result.batch_stats, toy.inputs)
  return np.asarray(out['a'])


class EngineTest(parameterized.TestCase):

  @parameterized.parameters(
      ('step', 5, ('step', 1)),  # One step per call, whatever steps_per_call says.
      ('unroll', 3, ('unroll', 3)),
      ('scan', 0, ('scan', 1)),
  )
  def test_resolve_strategy(self, strategy, steps_per_call, expected):
    options = engine.LoopOptions(strategy=strategy, steps_per_call=steps_per_call)
    self.assertEqual(engine.resolve_strategy(options), expected)

  def test_resolve_auto_strategy(self):
    expected = ('step', 1) if jax.default_backend() == 'cpu' else ('scan', 10)
    self.assertEqual(engine.resolve_strategy(engine.LoopOptions(steps_per_call=7)), expected)

  def test_compiler_options(self):
    self.assertEqual(compile_cache.compiler_options(engine.LoopOptions(cpu_convolutions='xla_default')), {})
    eigen = compile_cache.compiler_options(engine.LoopOptions())
    if jax.default_backend() == 'cpu' and jax.__version_info__ >= (0, 10):
      # YNNPACK keeps dots and reductions, not convolutions.
      self.assertEqual(
          eigen,
          {'xla_cpu_experimental_ynn_fusion_type': 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE'},
      )
    with self.assertRaisesRegex(ValueError, 'cpu_convolutions'):
      compile_cache.compiler_options(engine.LoopOptions(cpu_convolutions='mkl'))

  def test_cpu_convolutions_change_only_rounding(self):
    toy = _Toy()
    runs = [
        engine.optimize(toy.problem(), key=jax.random.key(42), options=_options(cpu_convolutions=c))
        for c in ('eigen', 'xla_default')
    ]
    np.testing.assert_allclose(_render(toy, runs[0]), _render(toy, runs[1]), atol=1e-3)
    np.testing.assert_allclose(runs[0].best_psnr, runs[1].best_psnr, atol=0.05)

  def test_loss_goes_down(self):
    _, recorder, result = _reference()
    self.assertEqual(recorder.step, list(range(1, _STEPS + 1)))
    self.assertLess(recorder.loss[-1], 0.5 * recorder.loss[0])
    self.assertGreater(result.best_psnr, recorder.psnr[0] + 5.0)
    self.assertEqual(result.best_psnr, max(recorder.psnr))
    self.assertEqual(result.best_step, int(np.argmax(recorder.psnr)))
    chex.assert_shape(result.best['a'], (1, _SIZE, _SIZE, 3))
    chex.assert_tree_all_finite((result.params, result.batch_stats, result.best))
    stage = result.metrics['stages']['fit']
    self.assertEqual(stage['steps'], _STEPS)
    self.assertFalse(stage['stopped_early'])
    self.assertEqual(stage['final_loss'], recorder.loss[-1])
    self.assertEqual(result.metrics['loop_strategy'], 'step')

  def test_step_compiles_once(self):
    toy, _, _ = _reference()
    # One trace for the output template (eval_shape), one for the jitted step;
    # none of the 31 calls retraced (e.g. from a dtype or weak-type change in the state).
    self.assertEqual(toy.traces, 2)
    # A 3-step unrolled chunk traces the loss 3 times, once, however many steps run.
    toy = _Toy()
    engine.optimize(
        toy.problem(num_steps=12),
        key=jax.random.key(0),
        options=_options(strategy='unroll', steps_per_call=3, check_every=3),
    )
    self.assertEqual(toy.traces, 1 + 3)

  def test_other_data_of_the_same_shapes_reuses_the_compiled_step(self):
    compile_cache._COMPILED.clear()  # pylint: disable=protected-access
    options = _options(strategy='unroll', steps_per_call=2)
    with compile_cache.count_compilations() as first:
      engine.optimize(_Toy(data_seed=1).problem(num_steps=5), key=jax.random.key(1), options=options)
    with compile_cache.count_compilations() as second:
      reused = engine.optimize(_Toy(data_seed=2).problem(num_steps=5), key=jax.random.key(2), options=options)
    self.assertEqual(first.steps, 2)  # A 2-step chunk and the 1-step tail.
    self.assertEqual(second.steps, 0)
    # The same numbers as the executable compiled for this data alone.
    compile_cache._COMPILED.clear()  # pylint: disable=protected-access
    with compile_cache.count_compilations() as alone:
      fresh = engine.optimize(_Toy(data_seed=2).problem(num_steps=5), key=jax.random.key(2), options=options)
    self.assertEqual(alone.steps, 2)
    chex.assert_trees_all_equal(_host(reused.params), _host(fresh.params))
    chex.assert_trees_all_equal(reused.best, fresh.best)
    # Another computation (another loss) is compiled anew, not confused with it.
    with compile_cache.count_compilations() as other:
      engine.optimize(_Toy(nan_from_step=9).problem(num_steps=5), key=jax.random.key(2), options=options)
    self.assertEqual(other.steps, 2)

  @parameterized.named_parameters(
      ('unroll2', 'unroll', 2),
      ('unroll3', 'unroll', 3),
      ('scan5', 'scan', 5),
  )
  def test_chunking_does_not_change_results(self, strategy, steps_per_call):
    ref_toy, _, ref = _reference()
    toy = _Toy()
    result = engine.optimize(
        toy.problem(), key=jax.random.key(42), options=_options(strategy=strategy, steps_per_call=steps_per_call)
    )
    self.assertEqual(result.metrics['loop_strategy'], strategy)
    self.assertEqual(result.metrics['stages']['fit']['steps'], _STEPS)
    # Same per-step keys, so equal up to XLA's float reassociation across fused steps.
    self.assertEqual(result.best_step, ref.best_step)
    self.assertAlmostEqual(result.best_psnr, ref.best_psnr, delta=1e-3)
    np.testing.assert_allclose(result.best['a'], ref.best['a'], atol=5e-5)
    np.testing.assert_allclose(_render(toy, result), _render(ref_toy, ref), atol=5e-5)
    # Parameters: kernels and BatchNorm scales agree closely. The convolution
    # biases feeding a BatchNorm are not compared: BN subtracts them again, so
    # their gradient is rounding noise that Adam scales up to +-lr steps, and
    # they drift differently under any change of float rounding without
    # affecting any output.
    for path, value in jax.tree_util.tree_leaves_with_path(result.params):
      name = jax.tree_util.keystr(path)
      if name.endswith("['kernel']") or name.endswith("['scale']"):
        expected = functools.reduce(lambda t, k: t[k.key], path, ref.params)
        np.testing.assert_allclose(value, expected, atol=1e-4, rtol=1e-4, err_msg=name)

  def test_same_key_gives_identical_results(self):
    _, _, ref = _reference()
    result = engine.optimize(_Toy().problem(), key=jax.random.key(42), options=_options())
    chex.assert_trees_all_equal(_host(result.params), _host(ref.params))
    chex.assert_trees_all_equal(_host(result.batch_stats), _host(ref.batch_stats))
    chex.assert_trees_all_equal(result.best, ref.best)
    self.assertEqual(result.best_psnr, ref.best_psnr)
    # ... and the key matters (initial weights and perturbations).
    other = engine.optimize(_Toy().problem(), key=jax.random.key(7), options=_options())
    self.assertNotEqual(other.best_psnr, ref.best_psnr)
    self.assertFalse(np.array_equal(other.best['a'], ref.best['a']))

  def test_num_perturbations(self):
    toy = _Toy()
    result = engine.optimize(
        toy.problem(num_steps=6), key=jax.random.key(0), options=_options(num_perturbations=3, check_every=3)
    )
    chex.assert_tree_all_finite((result.params, result.batch_stats, result.best))
    chex.assert_shape(result.best['a'], (1, _SIZE, _SIZE, 3))
    self.assertTrue(math.isfinite(result.best_psnr))
    self.assertTrue(math.isfinite(result.metrics['stages']['fit']['final_loss']))
    self.assertEqual(result.metrics['stages']['fit']['steps'], 6)

  def test_early_stopping(self):
    _, recorder, _ = _reference()
    check_every = 5
    # A threshold the reference's best PSNR crosses part-way through.
    threshold = (recorder.best_psnr[0] + recorder.best_psnr[-1]) / 2
    crossed = next(i + 1 for i, p in enumerate(recorder.best_psnr) if p > threshold)
    expected = -(-crossed // check_every) * check_every  # The first check at or after it.
    self.assertLess(expected, _STEPS)
    result = engine.optimize(
        _Toy().problem(early_stop_psnr=threshold), key=jax.random.key(42), options=_options(check_every=check_every)
    )
    stage = result.metrics['stages']['fit']
    self.assertTrue(stage['stopped_early'])
    self.assertEqual(stage['steps'], expected)
    self.assertGreater(result.best_psnr, threshold)
    self.assertAlmostEqual(result.best_psnr, max(recorder.psnr[:expected]), delta=1e-4)

  def test_non_finite_loss_raises_with_result(self):
    toy = _Toy(nan_from_step=3)
    with self.assertRaisesRegex(engine.NumericalError, r'loss is nan at step 4 .*fit') as ctx:
      engine.optimize(toy.problem(num_steps=20), key=jax.random.key(0), options=_options(check_every=2))
    result = ctx.exception.result
    self.assertIsInstance(result, engine.Result)
    # Steps 0-3 produced finite outputs; the best of them is kept.
    self.assertBetween(result.best_step, 0, 3)
    self.assertTrue(math.isfinite(result.best_psnr))
    chex.assert_tree_all_finite(result.best)
    chex.assert_shape(result.best['a'], (1, _SIZE, _SIZE, 3))
    # The step-3 update was NaN.
    self.assertTrue(any(np.isnan(x).any() for x in jax.tree_util.tree_leaves(_host(result.params))))

  def test_trainable_subset(self):
    gens = {'a': _generator(3), 'b': _generator(1)}
    inputs = {
        'a': models.make_noise(jax.random.key(0), (_SIZE, _SIZE), 2, var=0.1),
        'b': models.make_noise(jax.random.key(1), (_SIZE, _SIZE), 2, var=0.1),
    }
    target = jnp.asarray(_target())

    def loss_fn(params, batch_stats, step, key):
      del step, key
      out, stats = models.apply_generators(gens, params, batch_stats, inputs)
      recon = out['a'] * out['b']
      return losses.l1(recon, target), (stats, out, losses.psnr(recon, target))

    key = jax.random.key(3)
    problem = engine.Problem(gens, inputs, [engine.Stage('only_a', 3, loss_fn, _LR, trainable=('a',))])
    result = engine.optimize(problem, key=key, options=_options())
    init_params, _ = models.init_generators(gens, inputs, jax.random.fold_in(key, 0))
    chex.assert_trees_all_equal(_host(result.params['b']), _host(init_params['b']))
    for name, layer in result.params['a'].items():
      if 'kernel' in layer:
        self.assertFalse(np.array_equal(layer['kernel'], init_params['a'][name]['kernel']), msg=name)


def _two_stages(toy: _Toy) -> engine.Problem:
  """A stage without best tracking (like segmentation's hint step), then one with it."""
  stages = [engine.Stage('warm', 4, toy.loss_fn, _LR, track_best=False), engine.Stage('fit', 8, toy.loss_fn, _LR)]
  return engine.Problem(toy.generators, toy.inputs, stages)


# 2-step chunks (a compiled call), checks every 3 steps: boundaries that do not line up.
_RESUME_OPTIONS = dict(strategy='unroll', steps_per_call=2, check_every=3)


@functools.lru_cache(maxsize=None)
def _uninterrupted() -> engine.Result:
  return engine.optimize(_two_stages(_Toy()), key=jax.random.key(5), options=_options(**_RESUME_OPTIONS))


class _StopAt:
  """`stop` callback asking to stop at its `calls`-th poll (one poll per compiled call)."""

  def __init__(self, calls: int):
    self.calls, self.polls = calls, 0

  def __call__(self):
    self.polls += 1
    return 'test stop' if self.polls >= self.calls else None


class ResumeTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    tmp = tempfile.TemporaryDirectory()
    self.addCleanup(tmp.cleanup)
    self.path = os.path.join(tmp.name, 'checkpoint.msgpack')

  def run_two_stages(self, *, every: int = 4, tag: str = 'run', seed: int = 5, **kwargs) -> engine.Result:
    return engine.optimize(
        _two_stages(_Toy()),
        key=jax.random.key(seed),
        options=_options(**_RESUME_OPTIONS),
        checkpoint=checkpoint_io.Checkpointing(self.path, every=every, tag=tag),
        **kwargs,
    )

  def assert_same_as_uninterrupted(self, result: engine.Result):
    ref = _uninterrupted()
    chex.assert_trees_all_equal(_host(result.params), _host(ref.params))
    chex.assert_trees_all_equal(_host(result.batch_stats), _host(ref.batch_stats))
    chex.assert_trees_all_equal(result.best, ref.best)
    self.assertEqual((result.best_psnr, result.best_step), (ref.best_psnr, ref.best_step))
    self.assertEqual(outputs.without_timings(result.metrics), outputs.without_timings(ref.metrics))

  @parameterized.named_parameters(
      # Polls 1-2 come after warm's two chunks, 3-6 after fit's four. Stopped at
      # warm's end, the partial result is warm's latest outputs (it tracks no best).
      ('at_a_stage_end', 2, 'warm', 4),
      ('in_the_stage_with_best', 5, 'fit', 6),
  )
  def test_stop_then_resume_is_bit_identical(self, calls, stage, step):
    with self.assertRaisesRegex(engine.Interrupted, 'test stop') as ctx:
      self.run_two_stages(stop=_StopAt(calls))
    self.assertEqual(ctx.exception.reason, 'test stop')
    # The best outputs so far come with the error: the latest ones when no stage tracked a best yet.
    partial = ctx.exception.result
    chex.assert_shape(partial.best['a'], (1, _SIZE, _SIZE, 3))
    chex.assert_tree_all_finite(partial.best)
    self.assertEqual(partial.metrics['stages'][stage]['steps'], step)
    saved = checkpoint_io.load_checkpoint(self.path)
    self.assertEqual((saved['stages'][saved['stage']][0], saved['done']), (stage, step))
    self.assert_same_as_uninterrupted(self.run_two_stages())

  def test_crash_resumes_from_the_last_periodic_checkpoint(self):
    def crash(name, state):
      if (name, int(state.step)) == ('fit', 6):
        raise RuntimeError('crash')

    with self.assertRaisesRegex(RuntimeError, 'crash'):
      self.run_two_stages(on_check=crash)
    saved = checkpoint_io.load_checkpoint(self.path)  # Saved at fit's step 4, not 6.
    self.assertEqual((saved['stage'], saved['done'], saved['complete']), (1, 4, False))
    self.assert_same_as_uninterrupted(self.run_two_stages())
    # The finished run's checkpoint gives its result again without a step.
    checks = []
    result = self.run_two_stages(on_check=lambda name, state: checks.append(name))
    self.assertEmpty(checks)
    self.assert_same_as_uninterrupted(result)

  def test_checkpoint_of_another_run_is_refused(self):
    with self.assertRaises(engine.Interrupted):
      self.run_two_stages(stop=_StopAt(1))
    with self.assertRaisesRegex(checkpoint_io.CheckpointError, 'another config'):
      self.run_two_stages(tag='other')
    with self.assertRaisesRegex(checkpoint_io.CheckpointError, 'another seed'):
      self.run_two_stages(seed=6)
    with open(self.path, 'rb') as f:
      data = f.read()
    for bad in (data[: len(data) // 2], b'', b'not msgpack at all'):
      with open(self.path, 'wb') as f:
        f.write(bad)
      with self.assertRaisesRegex(checkpoint_io.CheckpointError, 'delete it'):
        self.run_two_stages()

  def test_non_finite_parameters_raise_with_result(self):
    toy = _Toy(nan_grad_from_step=3)
    with self.assertRaisesRegex(engine.NumericalError, r'parameters of a are not finite at step 4 .*fit') as ctx:
      engine.optimize(toy.problem(num_steps=20), key=jax.random.key(0), options=_options(check_every=2))
    result = ctx.exception.result
    self.assertTrue(math.isfinite(result.metrics['stages']['fit']['final_loss']))
    self.assertBetween(result.best_step, 0, 3)
    chex.assert_tree_all_finite(result.best)


if __name__ == '__main__':
  absltest.main()

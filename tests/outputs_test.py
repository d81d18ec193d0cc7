"""Tests of ddip_jax.outputs: working resolution, workdir policy, signals, the shared run-and-write."""

import json
import os
import signal
import tempfile
import threading

from absl.testing import absltest
from absl.testing import parameterized
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from configs import default
from ddip_jax import engine
from ddip_jax import image_io
from ddip_jax import losses
from ddip_jax import outputs


def _tempdir(test: absltest.TestCase) -> str:
  tmp = tempfile.TemporaryDirectory()
  test.addCleanup(tmp.cleanup)
  return tmp.name


class WorkingImageTest(parameterized.TestCase):

  @parameterized.parameters(((17, 23), 0), ((17, 23), 23), ((9, 8), 64))
  def test_small_enough_images_are_kept(self, shape, max_side):
    image = np.random.default_rng(0).random(shape + (3,)).astype(np.float32)
    working, scale = outputs.working_image(image, max_side, min_side=8)
    self.assertIs(working, image)
    self.assertEqual(scale, 1.0)

  def test_large_image_is_downscaled_with_a_message(self):
    image = np.zeros((30, 45, 3), np.float32)
    with self.assertLogs('absl', 'INFO') as logs:
      working, scale = outputs.working_image(image, 16, path="'big.png'")
    self.assertEqual(working.shape, (11, 16, 3))
    self.assertAlmostEqual(scale, 16 / 45)
    self.assertIn("'big.png' is 45x30: working at 16x11 (max_side=16)", logs.output[0])

  @parameterized.named_parameters(
      ('tiny', (4, 6), 0, "'x.png' is 6x4: too small, the generators need sides of at least 8 pixels"),
      ('too_thin_once_downscaled', (10, 200), 100, "'x.png' is 200x10, 100x5 at max_side=100: too small"),
  )
  def test_too_small_is_refused(self, shape, max_side, message):
    with self.assertRaises(image_io.InputError) as ctx:
      outputs.working_image(np.zeros(shape + (3,), np.float32), max_side, min_side=8, path="'x.png'")
    self.assertIn(message, str(ctx.exception))


def _config(**overrides):
  config = default.get_config()
  config.image = 'in.png'
  for field, value in overrides.items():
    parent = config
    *parents, leaf = field.split('.')
    for name in parents:
      parent = parent[name]
    parent[leaf] = value
  return config


class WorkdirTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = _tempdir(self)

  def write_metrics(self, config):
    image_io.write_json(os.path.join(self.dir, 'metrics.json'), {'status': 'ok', 'config': config.to_dict()})

  def test_run_config_leaves_out_what_cannot_change_results(self):
    self.assertEqual(outputs.run_config(_config(progress=False, **{'loop.checkpoint_every': 7})),
                     outputs.run_config(_config()))
    self.assertNotEqual(outputs.run_config(_config(seed=1)), outputs.run_config(_config()))

  def test_empty_or_missing_workdir_is_fine(self):
    outputs.check_workdir(self.dir, _config())
    outputs.check_workdir(os.path.join(self.dir, 'new'), _config())

  def test_same_config_is_fine(self):
    self.write_metrics(_config())
    outputs.check_workdir(self.dir, _config(progress=False))

  def test_another_config_is_refused_naming_the_fields(self):
    self.write_metrics(_config())
    with self.assertRaises(image_io.InputError) as ctx:
      outputs.check_workdir(self.dir, _config(num_steps=500, seed=3))
    message = str(ctx.exception)
    self.assertIn('holds a run of another config', message)
    self.assertIn('num_steps: 4000 there, 500 now; seed: 0 there, 3 now', message)
    self.assertNotIn('\n', message)

  def test_metrics_without_config_is_refused(self):
    with open(os.path.join(self.dir, 'metrics.json'), 'w') as f:
      f.write('{"status": "ok"')  # Cut short.
    with self.assertRaisesRegex(image_io.InputError, 'records no config'):
      outputs.check_workdir(self.dir, _config())

  def test_checkpoint_decides_over_metrics(self):
    self.write_metrics(_config(seed=9))
    path = os.path.join(self.dir, outputs.CHECKPOINT)
    with open(path, 'wb') as f:
      f.write(b'garbage')
    with self.assertRaisesRegex(engine.CheckpointError, 'corrupt'):
      outputs.check_workdir(self.dir, _config())


class StopOnSignalsTest(absltest.TestCase):

  def test_first_signal_requests_a_stop_and_restores_the_handlers(self):
    before = signal.getsignal(signal.SIGTERM)
    with outputs.stop_on_signals() as stop:
      self.assertIsNone(stop())
      os.kill(os.getpid(), signal.SIGTERM)
      self.assertEqual(stop(), 'SIGTERM')
      # A second signal would act as before the context (here: the test runner's handler).
      self.assertIs(signal.getsignal(signal.SIGTERM), before)
      self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)
    self.assertIs(signal.getsignal(signal.SIGTERM), before)

  def test_outside_the_main_thread_nothing_is_installed(self):
    seen = []

    def body():
      with outputs.stop_on_signals() as stop:
        seen.append((stop(), signal.getsignal(signal.SIGINT)))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    self.assertEqual(seen, [(None, signal.default_int_handler)])


class _Pixels(nn.Module):
  """A generator that is just its output's logits (compiles in no time)."""

  @nn.compact
  def __call__(self, z):
    return jax.nn.sigmoid(self.param('logits', nn.initializers.zeros, z.shape))


def _problem(nan_from_step: int | None = None) -> engine.Problem:
  target = jnp.linspace(0.2, 0.8, 4 * 5 * 3).reshape(1, 4, 5, 3)
  generators = {'image': _Pixels()}
  inputs = {'image': jnp.zeros((1, 4, 5, 3))}

  def loss_fn(params, batch_stats, step, key):
    del key
    out, stats = engine.apply_generators(generators, params, batch_stats, inputs)
    loss = losses.l1(out['image'], target)
    if nan_from_step is not None:
      loss = loss * jnp.where(step >= nan_from_step, jnp.nan, 1.0)
    return loss, (stats, out, losses.psnr(out['image'], target))

  return engine.Problem(generators, inputs, [engine.Stage('fit', 6, loss_fn, 0.1)])


class OptimizeAndWriteTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.workdir = os.path.join(_tempdir(self), 'out')
    self.config = _config(progress=False, **{'loop.strategy': 'step', 'loop.check_every': 1,
                                             'loop.checkpoint_every': 2})
    self.finished = []

  def finish(self, result, status):
    self.finished.append((status, result))
    metrics = {'status': status, 'best_step': result.best_step}
    outputs.write_outputs(self.workdir, self.config, images={'image': result.best['image'][0]},
                          metrics=metrics, summary=[('image', result.best['image'][0])])
    return metrics

  def run_problem(self, problem):
    return outputs.optimize_and_write(problem, self.config, self.workdir, key=jax.random.key(0),
                                      finish=self.finish)

  def test_finished_run_writes_once_then_removes_its_checkpoint(self):
    saved = []
    real_finish = self.finish

    def finish(result, status):  # The checkpoint is still there while the outputs are written.
      saved.append(engine.load_checkpoint(os.path.join(self.workdir, outputs.CHECKPOINT)))
      return real_finish(result, status)

    self.finish = finish
    metrics = self.run_problem(_problem())
    self.assertEqual(metrics['status'], 'ok')
    self.assertLen(self.finished, 1)
    self.assertEqual((saved[0]['done'], saved[0]['complete']), (6, True))
    self.assertEqual(json.loads(saved[0]['tag']), outputs.run_config(self.config))
    self.assertCountEqual(os.listdir(self.workdir), ['image.png', 'summary.png', 'metrics.json'])

  def test_no_checkpoint_when_disabled(self):
    self.config.loop.checkpoint_every = 0
    with self.assertRaises(engine.NumericalError):
      self.run_problem(_problem(nan_from_step=3))
    self.assertNotIn(outputs.CHECKPOINT, os.listdir(self.workdir))

  def test_numerical_error_writes_the_best_result_then_raises(self):
    with self.assertRaisesRegex(engine.NumericalError, 'loss is nan at step 4'):
      self.run_problem(_problem(nan_from_step=3))
    (status, result), = self.finished
    self.assertEqual(status, "stopped: loss is nan at step 4 of stage 'fit'")
    self.assertBetween(result.best_step, 0, 3)  # Step 3's outputs are finite; its loss is not.
    self.assertTrue(os.path.isfile(os.path.join(self.workdir, 'image.png')))
    with open(os.path.join(self.workdir, 'metrics.json')) as f:
      self.assertEqual(json.load(f)['status'], status)
    self.assertIn(outputs.CHECKPOINT, os.listdir(self.workdir))  # Kept: the run did not finish.

  def test_several_optimisations_have_named_checkpoints(self):
    for name in ('pass1', 'pass2'):
      engine.optimize(_problem(), key=jax.random.key(0), options=outputs.loop_options(self.config),
                      checkpoint=outputs.checkpointing(self.config, self.workdir, name=name))
    self.assertCountEqual(os.listdir(self.workdir), ['checkpoint_pass1.msgpack', 'checkpoint_pass2.msgpack'])
    outputs.check_workdir(self.workdir, self.config)
    self.config.num_steps = 7
    with self.assertRaisesRegex(image_io.InputError, 'num_steps: 4000 there, 7 now'):
      outputs.check_workdir(self.workdir, self.config)
    self.config.loop.checkpoint_every = 0
    self.assertIsNone(outputs.checkpointing(self.config, self.workdir, name='pass1'))

  def test_another_config_in_the_workdir_is_refused_before_any_step(self):
    self.run_problem(_problem())
    self.config.seed = 1
    with self.assertRaisesRegex(image_io.InputError, 'seed: 0 there, 1 now'):
      self.run_problem(_problem())
    self.assertLen(self.finished, 1)


if __name__ == '__main__':
  absltest.main()

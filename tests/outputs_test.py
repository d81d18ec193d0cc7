"""Tests of ddip_jax.outputs: working resolution, signals, the shared run-and-write, writing as a set."""

import errno
import json
import os
import signal
import tempfile
import threading
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from configs import default
from ddip_jax import checkpoint_io
from ddip_jax import engine
from ddip_jax import image_io
from ddip_jax import losses
from ddip_jax import models
from ddip_jax import outputs
from ddip_jax import resume
from ddip_jax import runner
from ddip_jax import writing


def _tempdir(test: absltest.TestCase) -> str:
  tmp = tempfile.TemporaryDirectory()
  test.addCleanup(tmp.cleanup)
  return tmp.name


class WorkingImageTest(parameterized.TestCase):

  @parameterized.parameters(((17, 23), 0), ((17, 23), 23), ((9, 8), 64))
  def test_small_enough_images_are_kept(self, shape, max_side):
    image = np.random.default_rng(0).random(shape + (3,)).astype(np.float32)
    working, scale = image_io.working_image(image, max_side, min_side=8)
    self.assertIs(working, image)
    self.assertEqual(scale, 1.0)

  def test_large_image_is_downscaled_with_a_message(self):
    image = np.zeros((30, 45, 3), np.float32)
    with self.assertLogs('absl', 'INFO') as logs:
      working, scale = image_io.working_image(image, 16, path="'big.png'")
    self.assertEqual(working.shape, (11, 16, 3))
    self.assertAlmostEqual(scale, 16 / 45)
    self.assertIn("'big.png' is 45x30: working at 16x11 (max_side=16)", logs.output[0])

  @parameterized.named_parameters(
      ('tiny', (4, 6), 0, "'x.png' is 6x4: too small, the generators need sides of at least 8 pixels"),
      ('too_thin_once_downscaled', (10, 200), 100, "'x.png' is 200x10, 100x5 at max_side=100: too small"),
  )
  def test_too_small_is_refused(self, shape, max_side, message):
    with self.assertRaises(image_io.InputError) as ctx:
      image_io.working_image(np.zeros(shape + (3,), np.float32), max_side, min_side=8, path="'x.png'")
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


class StopOnSignalsTest(absltest.TestCase):

  def test_first_signal_requests_a_stop_and_restores_the_handlers(self):
    delivered = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: delivered.append(signum))
    self.addCleanup(signal.signal, signal.SIGTERM, before)
    handler = signal.getsignal(signal.SIGTERM)
    with self.assertRaises(engine.Interrupted):
      with resume.stop_on_signals() as stop:
        self.assertIsNone(stop())
        os.kill(os.getpid(), signal.SIGTERM)
        self.assertEqual(stop(), 'SIGTERM')
        # A second signal would act as before the context (here: the test's handler).
        self.assertIs(signal.getsignal(signal.SIGTERM), handler)
        self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)
        raise engine.Interrupted('interrupted (SIGTERM) at step 3', 'SIGTERM')  # The stop acted on it.
    self.assertEqual((signal.getsignal(signal.SIGTERM), delivered), (handler, []))

  def test_a_signal_no_stop_acted_on_is_delivered_again(self):
    delivered = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: delivered.append(signum))
    self.addCleanup(signal.signal, signal.SIGTERM, before)
    with resume.stop_on_signals() as stop:
      os.kill(os.getpid(), signal.SIGTERM)  # As the last steps ran: the run ends normally.
      self.assertEqual((stop(), delivered), ('SIGTERM', []))
    self.assertEqual(delivered, [signal.SIGTERM])

  def test_a_signal_amid_the_renames_of_a_set_acts_once_the_set_is_written(self):
    folder = _tempdir(self)
    files = {os.path.join(folder, f'{name}.txt'): name.encode() for name in ('a', 'b', 'metrics')}
    real_replace = os.replace

    def replace(source, target):
      if target.endswith('a.txt'):
        os.kill(os.getpid(), signal.SIGTERM)
      real_replace(source, target)

    with mock.patch('os.replace', replace), resume.terminating(), self.assertRaises(resume.Terminated):
      writing.write_files(files)
    for path, data in files.items():
      with open(path, 'rb') as f:
        self.assertEqual(f.read(), data)
    self.assertEqual(sorted(os.listdir(folder)), ['a.txt', 'b.txt', 'metrics.txt'])  # No temporary file.

  def test_outside_the_main_thread_nothing_is_installed(self):
    seen = []

    def body():
      with resume.stop_on_signals() as stop:
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
    out, stats = models.apply_generators(generators, params, batch_stats, inputs)
    loss = losses.l1(out['image'], target)
    if nan_from_step is not None:
      loss = loss * jnp.where(step >= nan_from_step, jnp.nan, 1.0)
    return loss, (stats, out, losses.psnr(out['image'], target))

  return engine.Problem(generators, inputs, [engine.Stage('fit', 6, loss_fn, 0.1)])


class OptimizeAndWriteTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.workdir = os.path.join(_tempdir(self), 'out')
    self.config = _config(
        progress=False, **{'loop.strategy': 'step', 'loop.check_every': 1, 'loop.checkpoint_every': 2}
    )
    self.finished = []

  def finish(self, result, status):
    self.finished.append((status, result))
    metrics = {'status': status, 'best_step': result.best_step}
    outputs.write_outputs(
        self.workdir,
        self.config,
        images={'image': result.best['image'][0]},
        metrics=metrics,
        summary=[('image', result.best['image'][0])],
    )
    return metrics

  def run_problem(self, problem):
    return resume.optimize_and_write(problem, self.config, self.workdir, key=jax.random.key(0), finish=self.finish)

  def test_finished_run_writes_once_then_removes_its_checkpoint(self):
    saved = []
    real_finish = self.finish

    def finish(result, status):  # The checkpoint is still there while the outputs are written.
      saved.append(checkpoint_io.load_checkpoint(os.path.join(self.workdir, runner.CHECKPOINT)))
      return real_finish(result, status)

    self.finish = finish
    metrics = self.run_problem(_problem())
    self.assertEqual(metrics['status'], 'ok')
    self.assertLen(self.finished, 1)
    self.assertEqual((saved[0]['done'], saved[0]['complete']), (6, True))
    self.assertEqual(json.loads(saved[0]['tag']), {'config': runner.run_config(self.config), 'input_sha256': {}})
    self.assertCountEqual(os.listdir(self.workdir), ['image.png', 'summary.png', 'metrics.json'])

  def test_no_checkpoint_when_disabled(self):
    self.config.loop.checkpoint_every = 0
    with self.assertRaises(engine.NumericalError):
      self.run_problem(_problem(nan_from_step=3))
    self.assertNotIn(runner.CHECKPOINT, os.listdir(self.workdir))

  def test_numerical_error_writes_the_best_result_then_raises(self):
    with self.assertRaisesRegex(engine.NumericalError, 'loss is nan at step 4'):
      self.run_problem(_problem(nan_from_step=3))
    ((status, result),) = self.finished
    self.assertEqual(status, "stopped: loss is nan at step 4 of stage 'fit'")
    self.assertBetween(result.best_step, 0, 3)  # Step 3's outputs are finite; its loss is not.
    self.assertTrue(os.path.isfile(os.path.join(self.workdir, 'image.png')))
    with open(os.path.join(self.workdir, 'metrics.json')) as f:
      self.assertEqual(json.load(f)['status'], status)
    self.assertIn(runner.CHECKPOINT, os.listdir(self.workdir))  # Kept: the run did not finish.

  def test_several_optimisations_have_named_checkpoints(self):
    for name in ('pass1', 'pass2'):
      engine.optimize(
          _problem(),
          key=jax.random.key(0),
          options=resume.loop_options(self.config),
          checkpoint=resume.checkpointing(self.config, self.workdir, name=name),
      )
    self.assertCountEqual(os.listdir(self.workdir), ['checkpoint_pass1.msgpack', 'checkpoint_pass2.msgpack'])
    runner.check_workdir(self.workdir, self.config)
    self.config.num_steps = 7
    with self.assertRaisesRegex(image_io.InputError, 'num_steps: 300 there, 7 now'):
      runner.check_workdir(self.workdir, self.config)
    self.config.loop.checkpoint_every = 0
    self.assertIsNone(resume.checkpointing(self.config, self.workdir, name='pass1'))

  def test_another_config_in_the_workdir_is_refused_before_any_step(self):
    self.run_problem(_problem())
    self.config.seed = 1
    with self.assertRaisesRegex(image_io.InputError, 'seed: 0 there, 1 now'):
      self.run_problem(_problem())
    self.assertLen(self.finished, 1)

  def test_resuming_on_a_changed_input_file_is_refused_naming_it(self):
    image = os.path.join(os.path.dirname(self.workdir), 'in.png')
    writing.save_image(image, np.zeros((8, 8, 3), np.float32))
    self.config.image = image
    with self.assertRaises(engine.NumericalError):  # Stopped at step 4, with a checkpoint of step 2.
      self.run_problem(_problem(nan_from_step=3))
    tag = json.loads(checkpoint_io.load_checkpoint(os.path.join(self.workdir, runner.CHECKPOINT))['tag'])
    self.assertEqual(tag['input_sha256'], runner.input_digests(self.config))
    self.assertLen(tag['input_sha256'][image], 64)
    writing.save_image(image, np.ones((8, 8, 3), np.float32))  # Another picture of the same size.
    with self.assertRaisesRegex(image_io.InputError, f"holds a run of other input files \\('{image}' changed"):
      self.run_problem(_problem())
    self.assertLen(self.finished, 1)
    writing.save_image(image, np.zeros((8, 8, 3), np.float32))  # The same bytes again: resumes.
    metrics = self.run_problem(_problem())
    self.assertEqual(metrics['status'], 'ok')
    with open(os.path.join(self.workdir, 'metrics.json')) as f:
      self.assertEqual(json.load(f)['input_sha256'], tag['input_sha256'])

  def test_outputs_are_written_as_a_set_or_not_at_all(self):
    self.run_problem(_problem())
    before = {name: open(os.path.join(self.workdir, name), 'rb').read() for name in os.listdir(self.workdir)}
    real_fsync, calls = os.fsync, []

    def full_disk(fd):
      calls.append(fd)
      if len(calls) == 2:  # The second file of the set.
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
      real_fsync(fd)

    with mock.patch('os.fsync', full_disk), self.assertRaises(writing.OutputError) as ctx:
      outputs.write_outputs(
          self.workdir,
          self.config,
          images={'image': np.ones((4, 5, 3))},
          metrics={'status': 'ok'},
          summary=np.ones((4, 5, 3)),
      )
    self.assertEqual(str(ctx.exception), f"cannot write '{self.workdir}/summary.png': No space left on device")
    after = {name: open(os.path.join(self.workdir, name), 'rb').read() for name in os.listdir(self.workdir)}
    self.assertEqual(after, before)  # Not even image.png, written first, was replaced; no temporary file left.


if __name__ == '__main__':
  absltest.main()

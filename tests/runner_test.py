"""Tests of ddip_jax.runner: what run a workdir holds, one owner at a time, finished results kept."""

import json
import os
import signal
import subprocess
import sys

from absl.testing import absltest
import numpy as np

from ddip_jax import checkpoint_io
from ddip_jax import engine
from ddip_jax import image_io
from ddip_jax import outputs
from ddip_jax import restarts
from ddip_jax import runner
from ddip_jax import writing
from tests.outputs_test import _config  # pylint: disable=g-bad-import-order
from tests.outputs_test import _tempdir

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _files(folder: str) -> dict[str, bytes]:
  """Every file under `folder` (relative path -> bytes)."""
  found = {}
  for root, _, names in os.walk(folder):
    for name in names:
      with open(os.path.join(root, name), 'rb') as f:
        found[os.path.relpath(os.path.join(root, name), folder)] = f.read()
  return found


class WorkdirTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = _tempdir(self)

  def write_metrics(self, config):
    writing.write_json(
        os.path.join(self.dir, 'metrics.json'),
        {'status': 'ok', 'config': config.to_dict(), 'input_sha256': runner.input_digests(config)},
    )

  def test_run_config_leaves_out_what_cannot_change_results(self):
    self.assertEqual(
        runner.run_config(_config(progress=False, **{'loop.checkpoint_every': 7})), runner.run_config(_config())
    )
    self.assertNotEqual(runner.run_config(_config(seed=1)), runner.run_config(_config()))

  def test_empty_or_missing_workdir_is_fine(self):
    runner.check_workdir(self.dir, _config())
    runner.check_workdir(os.path.join(self.dir, 'new'), _config())

  def test_same_config_is_fine(self):
    self.write_metrics(_config())
    runner.check_workdir(self.dir, _config(progress=False))

  def test_another_config_is_refused_naming_the_fields(self):
    self.write_metrics(_config())
    with self.assertRaises(image_io.InputError) as ctx:
      runner.check_workdir(self.dir, _config(num_steps=500, seed=3))
    message = str(ctx.exception)
    self.assertIn('holds a run of another config', message)
    self.assertIn('num_steps: 300 there, 500 now; seed: 0 there, 3 now', message)
    self.assertNotIn('\n', message)

  def test_metrics_without_config_is_refused(self):
    with open(os.path.join(self.dir, 'metrics.json'), 'w') as f:
      f.write('{"status": "ok"')  # Cut short.
    with self.assertRaisesRegex(image_io.InputError, 'records no config'):
      runner.check_workdir(self.dir, _config())

  def test_checkpoint_decides_over_metrics(self):
    self.write_metrics(_config(seed=9))
    path = os.path.join(self.dir, runner.CHECKPOINT)
    with open(path, 'wb') as f:
      f.write(b'garbage')
    with self.assertRaisesRegex(checkpoint_io.CheckpointError, 'corrupt'):
      runner.check_workdir(self.dir, _config())

  def test_every_input_file_is_hashed_and_a_changed_one_is_named(self):
    frames = os.path.join(self.dir, 'frames')
    for k in range(2):
      writing.save_image(os.path.join(frames, f'f{k}.png'), np.full((4, 4, 3), k / 2, np.float32))
    hint = os.path.join(self.dir, 'box.png')
    writing.save_image(hint, np.ones((4, 4), np.float32))
    config = _config(image=frames, fg_hint=hint, **{'watermark.images': (hint, os.path.join(self.dir, 'gone.png'))})
    digests = runner.input_digests(config)
    self.assertEqual(list(digests), [os.path.join(frames, 'f0.png'), os.path.join(frames, 'f1.png'), hint])
    self.write_metrics(config)
    writing.save_image(os.path.join(frames, 'f1.png'), np.zeros((4, 4, 3), np.float32))  # Same size, new pixels.
    with self.assertRaises(image_io.InputError) as ctx:
      runner.check_workdir(self.dir, config)
    self.assertIn(f"holds a run of other input files ('{frames}/f1.png' changed: sha256 ", str(ctx.exception))
    self.assertIn('--overwrite', str(ctx.exception))
    runner.check_workdir(self.dir, config, inputs=False)
    self.assertIsNone(runner.finished_metrics(self.dir, config))


def hold_lock(test: absltest.TestCase, workdir: str) -> subprocess.Popen:
  """Another process that owns `workdir` (`runner.owned`) until the test ends or kills it."""
  holder = subprocess.Popen(
      [
          sys.executable,
          '-c',
          'import sys, time\nfrom ddip_jax import runner\n'
          'with runner.owned(sys.argv[1]):\n  print("locked", flush=True)\n  time.sleep(600)',
          workdir,
      ],
      cwd=_REPO,
      env=dict(os.environ, PYTHONPATH=_REPO),
      stdout=subprocess.PIPE,
      text=True,
  )
  test.addCleanup(holder.wait)
  test.addCleanup(holder.kill)
  test.assertEqual(holder.stdout.readline(), 'locked\n')
  return holder


class LockTest(absltest.TestCase):

  def test_a_second_owner_is_refused_naming_the_first(self):
    workdir = os.path.join(_tempdir(self), 'out')
    with runner.owned(workdir):
      with open(os.path.join(workdir, runner.LOCK)) as f:
        self.assertEqual(f.read(), f'{os.getpid()}\n')
      with self.assertRaises(runner.WorkdirBusy) as ctx:
        with runner.owned(workdir):
          pass
      self.assertEqual(
          str(ctx.exception),
          f"--workdir '{workdir}' is in use by another run (pid {os.getpid()}); "
          'wait for it to finish, or give another --workdir',
      )
    self.assertEqual(os.listdir(workdir), [])  # Released: the lock file is gone.
    with runner.owned(workdir):
      pass

  def test_the_lock_dies_with_its_process(self):
    workdir = os.path.join(_tempdir(self), 'out')
    holder = hold_lock(self, workdir)
    with self.assertRaisesRegex(runner.WorkdirBusy, f'in use by another run \\(pid {holder.pid}\\)'):
      with runner.owned(workdir):
        pass
    holder.send_signal(signal.SIGKILL)  # No clean-up in the holder: the OS releases the lock.
    holder.wait(timeout=60)
    with runner.owned(workdir):
      pass


class RunTest(absltest.TestCase):
  """`runner.run` with a stand-in run that writes a result file and metrics.json."""

  def setUp(self):
    super().setUp()
    self.dir = _tempdir(self)
    self.workdir = os.path.join(self.dir, 'out')
    self.image = os.path.join(self.dir, 'in.png')
    writing.save_image(self.image, np.zeros((4, 4, 3), np.float32))
    self.config = _config(image=self.image)
    self.calls = []

  def fake_run(self, text: str, stop: bool = False):
    """A run that writes result.txt = text; with `stop`, writes it as a partial result and is interrupted."""

    def run(config, workdir):
      self.calls.append(workdir)
      status = 'stopped: interrupted (SIGINT)' if stop else 'ok'
      writing.write_files(
          {
              os.path.join(workdir, 'result.txt'): text.encode(),
              os.path.join(workdir, 'restart_0', 'result.txt'): text.encode(),
              os.path.join(workdir, 'metrics.json'): writing.json_bytes(
                  {'status': status, 'config': config.to_dict(), 'input_sha256': runner.input_digests(config)}
              ),
          }
      )
      if stop:
        raise engine.Interrupted('interrupted (SIGINT) at step 3', 'SIGINT')
      return {'status': 'ok', 'text': text}

    return run

  def test_a_finished_run_is_already_done_and_left_untouched(self):
    metrics, done = runner.run(self.fake_run('first'), self.config, self.workdir)
    self.assertEqual((metrics['text'], done), ('first', False))
    before = _files(self.workdir)
    metrics, done = runner.run(self.fake_run('second'), self.config, self.workdir)
    self.assertTrue(done)
    self.assertEqual(metrics['status'], 'ok')
    self.assertLen(self.calls, 1)
    self.assertEqual(_files(self.workdir), before)

  def test_overwrite_replaces_a_finished_run_only_once_the_redo_finishes(self):
    runner.run(self.fake_run('first'), self.config, self.workdir)
    before = _files(self.workdir)
    with self.assertRaises(engine.Interrupted) as ctx:
      runner.run(self.fake_run('partial', stop=True), self.config, self.workdir, overwrite=True)
    staging = os.path.join(self.workdir, runner.STAGING)
    self.assertEqual(ctx.exception.workdir, staging)  # Where the redo's checkpoint and partial result are.
    self.assertEqual({k: v for k, v in _files(self.workdir).items() if not k.startswith(runner.STAGING)}, before)
    self.assertIsNotNone(runner.finished_metrics(self.workdir, self.config))
    metrics, done = runner.run(self.fake_run('second'), self.config, self.workdir, overwrite=True)
    self.assertEqual((metrics['text'], done), ('second', False))
    after = _files(self.workdir)
    self.assertEqual(sorted(after), sorted(before))  # The staging folder and the lock are gone.
    self.assertEqual((after['result.txt'], after[os.path.join('restart_0', 'result.txt')]), (b'second', b'second'))
    self.assertEqual(json.loads(after['metrics.json'])['status'], 'ok')

  def test_a_changed_input_is_refused_until_overwrite(self):
    runner.run(self.fake_run('first'), self.config, self.workdir)
    writing.save_image(self.image, np.ones((4, 4, 3), np.float32))
    with self.assertRaisesRegex(image_io.InputError, f"'{self.image}' changed: sha256 "):
      runner.run(self.fake_run('second'), self.config, self.workdir)
    _, done = runner.run(self.fake_run('second'), self.config, self.workdir, overwrite=True)
    self.assertFalse(done)
    self.assertEqual(_files(self.workdir)['result.txt'], b'second')

  def test_another_config_is_refused_even_with_overwrite(self):
    runner.run(self.fake_run('first'), self.config, self.workdir)
    self.config.seed = 5
    with self.assertRaisesRegex(image_io.InputError, 'seed: 0 there, 5 now'):
      runner.run(self.fake_run('second'), self.config, self.workdir, overwrite=True)
    self.assertLen(self.calls, 1)

  def test_a_workdir_holding_an_input_is_refused_before_anything_is_written(self):
    hint = os.path.join(self.dir, 'photos', 'fg_hint.png')  # A name the segmentation writes too.
    writing.save_image(hint, np.ones((4, 4), np.float32))
    self.config.fg_hint = hint
    os.symlink(os.path.join(self.dir, 'photos'), os.path.join(self.dir, 'link'))
    before = _files(self.dir)
    for workdir in ('photos', '.', 'link', os.path.join('link', '.')):  # Equal, above, through a link.
      workdir = os.path.normpath(os.path.join(self.dir, workdir))
      with self.assertRaisesRegex(image_io.InputError, f"--workdir '{workdir}' holds the input '"):
        runner.run(self.fake_run('x'), self.config, workdir)
    self.assertEqual((self.calls, _files(self.dir)), ([], before))  # Not even a lock file.
    kept = os.path.join(self.workdir, runner.INPUTS, 'image_0123.png')  # The API's arrays: no run writes there.
    writing.save_image(kept, np.zeros((4, 4, 3), np.float32))
    self.config.image, self.config.fg_hint = kept, None
    self.assertFalse(runner.run(self.fake_run('x'), self.config, self.workdir)[1])

  def test_restarts_are_already_done_on_the_same_command(self):

    class Task:

      @staticmethod
      def run(config, workdir):
        self.calls.append(config.seed)
        metrics = {'status': 'ok', 'best_recon_psnr': float(config.seed)}
        outputs.write_outputs(
            workdir, config, images={'layer': np.zeros((4, 4))}, metrics=metrics, summary=[('layer', np.zeros((4, 4)))]
        )
        return metrics

    self.config.restarts = 2
    run = lambda config, workdir: restarts.run(Task, config, workdir)  # pylint: disable=unnecessary-lambda-assignment
    self.assertFalse(runner.run(run, self.config, self.workdir)[1])
    metrics, done = runner.run(run, self.config, self.workdir)
    self.assertTrue(done)
    self.assertEqual((metrics['restart_chosen'], self.calls), (1, [0, 1]))


if __name__ == '__main__':
  absltest.main()

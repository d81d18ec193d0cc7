"""Tests of the command line (main.py), run as a subprocess like a user would.

Each run starts a fresh Python and JAX: the error cases stop before any
compilation (a few seconds each); the one real run is kept tiny (a 24x32 image,
2 + 4 steps, small generators) and costs about 20-40 s on two CPU cores.
"""

import json
import os
import subprocess
import sys
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from ddip_jax import image_io

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args: str, timeout: float) -> subprocess.CompletedProcess:
  env = dict(os.environ, PYTHONPATH=_REPO)
  return subprocess.run([sys.executable, 'main.py', *args], cwd=_REPO, env=env, capture_output=True,
                        text=True, timeout=timeout, check=False)


def _error_lines(stderr: str) -> list[str]:
  return [line for line in stderr.splitlines() if line.startswith('error:')]


class MainTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls._tmp = tempfile.TemporaryDirectory()
    cls.dir = cls._tmp.name
    yy, xx = np.mgrid[0:24, 0:32]
    blob = ((yy - 12) / 6)**2 + ((xx - 16) / 6)**2 <= 1
    image = np.where(blob[..., None], [0.85, 0.15, 0.2], [0.35, 0.55, 0.3])
    image = image + 0.05 * np.sin(xx * 0.9 + yy * 0.4)[..., None]
    cls.image = os.path.join(cls.dir, 'tiny.png')
    cls.gt_mask = os.path.join(cls.dir, 'tiny_mask.png')
    image_io.save_image(cls.image, np.clip(image, 0, 1))
    image_io.save_image(cls.gt_mask, blob.astype(np.float32))

  @classmethod
  def tearDownClass(cls):
    cls._tmp.cleanup()
    super().tearDownClass()

  def _base_args(self, workdir: str) -> list[str]:
    return ['--config=configs/zebra.py', f'--config.image={self.image}',
            f'--config.gt_mask={self.gt_mask}', '--config.num_steps=4',
            '--config.segmentation.hint_steps=2', '--config.progress=false', f'--workdir={workdir}']

  def test_run_with_overrides(self):
    workdir = os.path.join(self.dir, 'run')
    # Smaller generators and one step per call keep the compilation short; the
    # tuple overrides are part of what is tested.
    proc = _cli(*self._base_args(workdir), '--config.generator.channels_down=(4,8)',
                '--config.generator.channels_up=(4,8)', '--config.generator.channels_skip=(0,0)',
                '--config.loop.strategy=step', timeout=600)
    self.assertEqual(proc.returncode, 0, msg=proc.stderr[-3000:])
    self.assertNotIn('Traceback', proc.stderr)
    self.assertIn(f'done: outputs in {workdir}/', proc.stdout)
    self.assertIn('iou=', proc.stdout)
    for name in ('fg', 'bg', 'mask', 'mask_binary', 'recomposed', 'summary'):
      self.assertTrue(os.path.isfile(os.path.join(workdir, f'{name}.png')), msg=name)
    with open(os.path.join(workdir, 'metrics.json')) as f:
      metrics = json.load(f)
    config = metrics['config']
    self.assertEqual(config['image'], self.image)
    self.assertEqual(config['num_steps'], 4)
    self.assertEqual(config['segmentation']['hint_steps'], 2)
    self.assertEqual(config['generator']['channels_down'], [4, 8])
    self.assertEqual(config['generator']['channels_skip'], [0, 0])
    self.assertFalse(config['progress'])
    self.assertEqual(metrics['stages']['step1_hints']['steps'], 2)
    self.assertEqual(metrics['stages']['step2_decompose']['steps'], 4)
    self.assertEqual(metrics['loop_strategy'], 'step')
    self.assertEqual(metrics['image_shape'], [24, 32])
    self.assertBetween(metrics['iou'], 0.0, 1.0)

  @parameterized.named_parameters(
      ('missing_image', ['--config.image={missing}'], ['{missing}', 'no such file']),
      ('missing_gt_mask', ['--config.gt_mask={missing}'], ['{missing}', 'no such file']),
      ('zero_steps', ['--config.num_steps=0'], ['config.num_steps = 0']),
      ('negative_learning_rate', ['--config.learning_rate=-1'], ['config.learning_rate = -1']),
      ('unknown_task', ['--config.task=nope'], ["config.task = 'nope'", 'segmentation']),
  )
  def test_bad_input_is_one_error_line(self, overrides, expected):
    workdir = os.path.join(self.dir, f'bad_{self._testMethodName}')
    missing = os.path.join(self.dir, 'no_such_image.png')
    overrides = [o.format(missing=missing) for o in overrides]
    proc = _cli(*self._base_args(workdir), *overrides, timeout=120)
    self.assertEqual(proc.returncode, 2, msg=proc.stderr[-3000:])
    self.assertNotIn('Traceback', proc.stderr)
    errors = _error_lines(proc.stderr)
    self.assertLen(errors, 1, msg=proc.stderr)
    for text in expected:
      self.assertIn(text.format(missing=missing), errors[0])
    self.assertNotIn('done:', proc.stdout)
    self.assertFalse(os.path.exists(workdir))

  def test_workdir_that_is_a_file_is_one_error_line(self):
    workdir = os.path.join(self.dir, 'a_file')
    with open(workdir, 'w') as f:
      f.write('not a folder')
    proc = _cli(*self._base_args(workdir), timeout=120)
    self.assertEqual(proc.returncode, 2, msg=proc.stderr[-3000:])
    self.assertNotIn('Traceback', proc.stderr)
    errors = _error_lines(proc.stderr)
    self.assertLen(errors, 1, msg=proc.stderr)
    self.assertIn('--workdir', errors[0])


if __name__ == '__main__':
  absltest.main()

"""Tests of the command line (main.py), run as a subprocess like a user would.

Each run starts a fresh Python and JAX: the error cases stop before any
compilation (a few seconds each); the real runs are kept tiny (a 24x32 image,
2 + 40 steps, small generators) and cost about 20-40 s each on two CPU cores:
one uninterrupted, one stopped by SIGTERM and the same command again to resume.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from ddip_jax import outputs
from ddip_jax import runner
from ddip_jax import writing
from tests import runner_test  # pylint: disable=g-bad-import-order

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args: str, timeout: float) -> subprocess.CompletedProcess:
  env = dict(os.environ, PYTHONPATH=_REPO)
  return subprocess.run(
      [sys.executable, 'main.py', *args],
      cwd=_REPO,
      env=env,
      capture_output=True,
      text=True,
      timeout=timeout,
      check=False,
  )


def _cli_patched(patch: str, *args: str) -> subprocess.CompletedProcess:
  """main.py run after the Python lines `patch` (which replace some os function), in one fresh process."""
  inject = f'{patch}\nimport runpy, sys\nsys.argv = ["main.py", *sys.argv[1:]]\nrunpy.run_path("main.py", run_name="__main__")\n'
  return subprocess.run(
      [sys.executable, '-c', inject, *args],
      cwd=_REPO,
      env=dict(os.environ, PYTHONPATH=_REPO),
      capture_output=True,
      text=True,
      timeout=600,
      check=False,
  )


def _error_lines(stderr: str) -> list[str]:
  return [line for line in stderr.splitlines() if line.startswith('error:')]


class MainTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls._tmp = tempfile.TemporaryDirectory()
    cls.dir = cls._tmp.name
    yy, xx = np.mgrid[0:24, 0:32]
    blob = ((yy - 12) / 6) ** 2 + ((xx - 16) / 6) ** 2 <= 1
    image = np.where(blob[..., None], [0.85, 0.15, 0.2], [0.35, 0.55, 0.3])
    image = image + 0.05 * np.sin(xx * 0.9 + yy * 0.4)[..., None]
    cls.image = os.path.join(cls.dir, 'tiny.png')
    cls.gt_mask = os.path.join(cls.dir, 'tiny_mask.png')
    writing.save_image(cls.image, np.clip(image, 0, 1))
    writing.save_image(cls.gt_mask, blob.astype(np.float32))
    cls.tiny = os.path.join(cls.dir, 'tiny_4x6.png')
    writing.save_image(cls.tiny, np.zeros((4, 6, 3), np.float32))
    cls.text = os.path.join(cls.dir, 'notes.png')
    with open(cls.text, 'w') as f:
      f.write('not an image\n')
    cls.fifo = os.path.join(cls.dir, 'fifo')
    os.mkfifo(cls.fifo)
    cls.reference = None

  @classmethod
  def tearDownClass(cls):
    cls._tmp.cleanup()
    super().tearDownClass()

  def _base_args(self, workdir: str, num_steps: int = 4) -> list[str]:
    return [
        '--config=configs/zebra.py',
        f'--config.image={self.image}',
        f'--config.gt_mask={self.gt_mask}',
        f'--config.num_steps={num_steps}',
        '--config.segmentation.hint_steps=2',
        '--config.progress=false',
        f'--workdir={workdir}',
    ]

  def _run_args(self, workdir: str) -> list[str]:
    # Smaller generators and one step per call keep the compilation short; the
    # tuple overrides are part of what is tested. 40 steps without early stop
    # leave a SIGTERM time to arrive during step 2.
    return [
        *self._base_args(workdir, num_steps=40),
        '--config.early_stop_psnr=0',
        '--config.generator.channels_down=(4,8)',
        '--config.generator.channels_up=(4,8)',
        '--config.generator.channels_skip=(0,0)',
        '--config.loop.strategy=step',
    ]

  def _reference(self) -> tuple[str, subprocess.CompletedProcess]:
    """The uninterrupted run, made once for the class: (workdir, finished process)."""
    cls = type(self)
    if cls.reference is None:
      workdir = os.path.join(cls.dir, 'run')
      cls.reference = workdir, _cli(*self._run_args(workdir), timeout=600)
    return cls.reference

  def test_rerun_reuses_the_compilation_cache(self):
    workdir, proc = self._reference()
    self.assertEqual(proc.returncode, 0, msg=proc.stderr[-3000:])
    cache = os.path.join(os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'ddip_jax', 'xla')
    self.assertNotEmpty(os.listdir(cache))  # main.py's default --compilation_cache.
    rerun = os.path.join(self.dir, 'rerun')
    again = _cli(*self._run_args(rerun), '--verbosity=1', timeout=600)
    self.assertEqual(again.returncode, 0, msg=again.stderr[-3000:])
    self.assertIn("Persistent compilation cache hit for 'jit_chunk'", again.stderr)
    for name in ('mask.png', 'fg.png', 'bg.png'):
      with open(os.path.join(workdir, name), 'rb') as a, open(os.path.join(rerun, name), 'rb') as b:
        self.assertEqual(a.read(), b.read(), msg=name)

  def test_run_with_overrides(self):
    workdir, proc = self._reference()
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
    self.assertEqual(config['num_steps'], 40)
    self.assertEqual(config['segmentation']['hint_steps'], 2)
    self.assertEqual(config['generator']['channels_down'], [4, 8])
    self.assertEqual(config['generator']['channels_skip'], [0, 0])
    self.assertFalse(config['progress'])
    self.assertEqual(metrics['stages']['step1_hints']['steps'], 2)
    self.assertEqual(metrics['stages']['step2_decompose']['steps'], 40)
    self.assertEqual(metrics['seed'], 0)
    self.assertEqual(metrics['environment']['backend'], 'cpu')
    self.assertIn('jaxlib', metrics['environment'])
    self.assertEqual(metrics['loop_strategy'], 'step')
    self.assertEqual(metrics['image_shape'], [24, 32])
    self.assertBetween(metrics['iou'], 0.0, 1.0)

  @parameterized.named_parameters(
      ('missing_image', ['--config.image={missing}'], ['{missing}', 'no such file']),
      ('missing_gt_mask', ['--config.gt_mask={missing}'], ['{missing}', 'no such file']),
      ('zero_steps', ['--config.num_steps=0'], ['config.num_steps = 0']),
      ('negative_learning_rate', ['--config.learning_rate=-1'], ['config.learning_rate = -1']),
      ('unknown_task', ['--config.task=nope'], ["config.task = 'nope'", 'segmentation']),
      ('empty_channel_list', ['--config.generator.channels_down=()'], ['config.generator.channels_down = ()']),
      ('negative_checkpoint_every', ['--config.loop.checkpoint_every=-1'], ['config.loop.checkpoint_every = -1']),
      ('tiny_image', ['--config.image={tiny}'], ['{tiny}', 'is 6x4: too small', 'at least 8 pixels']),
      ('text_file_as_image', ['--config.image={text}'], ['{text}', 'not a recognised image']),
      (
          'unknown_field',
          ['--config.num_step=3'],
          ['--config.num_step: no such config field; did you mean ' '--config.num_steps?'],
      ),
      ('infinite_learning_rate', ['--config.learning_rate=inf'], ['config.learning_rate = inf: must be a finite']),
      (
          'inputs_from_dev_zero',
          ['--config.inputs=@/dev/zero'],
          ["config.inputs: cannot read the list '/dev/zero': is a character device, not a list of paths"],
      ),
      ('inputs_from_a_fifo', ['--config.inputs=@{fifo}'], ["cannot read the list '{fifo}': is a FIFO (named pipe)"]),
  )
  def test_bad_input_is_one_error_line(self, overrides, expected):
    workdir = os.path.join(self.dir, f'bad_{self._testMethodName}')
    paths = {
        'missing': os.path.join(self.dir, 'no_such_image.png'),
        'tiny': self.tiny,
        'text': self.text,
        'fifo': self.fifo,
    }
    overrides = [o.format(**paths) for o in overrides]
    proc = _cli(*self._base_args(workdir), *overrides, timeout=120)
    self.assertEqual(proc.returncode, 2, msg=proc.stderr[-3000:])
    self.assertNotIn('Traceback', proc.stderr)
    errors = _error_lines(proc.stderr)
    self.assertLen(errors, 1, msg=proc.stderr)
    for text in expected:
      self.assertIn(text.format(**paths), errors[0])
    self.assertNotIn('done:', proc.stdout)
    self.assertFalse(os.path.exists(workdir))

  def test_a_workdir_holding_the_inputs_or_an_image_too_large_is_refused_before_any_work(self):
    before = {name: os.stat(os.path.join(self.dir, name)).st_mtime_ns for name in os.listdir(self.dir)}
    cases = (
        (
            f'--workdir={self.dir}',
            {},
            f"--workdir '{self.dir}' holds the input '{self.image}': the run's " 'outputs could replace it',
        ),
        (f'--workdir={os.path.dirname(self.dir)}', {}, 'holds the input'),
        (
            f'--workdir={os.path.join(self.dir, "new")}',
            {'DDIP_JAX_MEMORY_GB': '0.5'},
            f'{self.image!r} is 32x24 (0.0 megapixels): its run needs about 0.5 GB of memory, more than the limit '
            'of 0.5 GB (DDIP_JAX_MEMORY_GB=0.5); the limit is below',
        ),
    )
    for workdir, env, message in cases:
      with mock.patch.dict(os.environ, env):
        proc = _cli(*self._base_args('unused'), workdir, timeout=120)
      self.assertEqual(proc.returncode, 2, msg=proc.stderr[-3000:])
      self.assertNotIn('Traceback', proc.stderr)
      self.assertLen(_error_lines(proc.stderr), 1, msg=proc.stderr)
      self.assertIn(message, _error_lines(proc.stderr)[0])
    self.assertEqual({name: os.stat(os.path.join(self.dir, name)).st_mtime_ns for name in os.listdir(self.dir)}, before)

  def test_sigterm_while_the_outputs_are_written_says_so_and_exits_143(self):
    # SIGTERM arrives as the first finished output is renamed into place: the set is completed, then the
    # run stops with a message; the same command then says already done.
    workdir = os.path.join(self.dir, 'sigterm_writing')
    proc = _cli_patched(
        'import os, signal\n'
        'real_replace = os.replace\n'
        'def replace(source, target):\n'
        '  if str(target).endswith("/fg.png"):\n'
        '    os.kill(os.getpid(), signal.SIGTERM)\n'
        '  real_replace(source, target)\n'
        'os.replace = replace',
        *self._base_args(workdir),
    )
    self.assertEqual(proc.returncode, 128 + signal.SIGTERM, msg=proc.stderr[-3000:])
    self.assertNotIn('Traceback', proc.stderr)
    self.assertNotIn('done', proc.stdout)
    self.assertIn(f'interrupted (SIGTERM) after the run finished: its outputs are complete in {workdir}/', proc.stderr)
    with open(os.path.join(workdir, 'metrics.json')) as f:
      self.assertEqual(json.load(f)['status'], 'ok')
    again = _cli(*self._base_args(workdir), timeout=120)
    self.assertEqual(again.returncode, 0, msg=again.stderr[-3000:])
    self.assertStartsWith(again.stdout, 'already done')

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

  def test_sigterm_then_the_same_command_gives_the_uninterrupted_outputs(self):
    reference, ref_proc = self._reference()
    self.assertEqual(ref_proc.returncode, 0, msg=ref_proc.stderr[-3000:])
    workdir = os.path.join(self.dir, 'sigterm')
    checkpoint = os.path.join(workdir, runner.CHECKPOINT)
    with open(os.path.join(self.dir, 'sigterm.log'), 'w+') as log:
      proc = subprocess.Popen(
          [sys.executable, 'main.py', *self._run_args(workdir)],
          cwd=_REPO,
          env=dict(os.environ, PYTHONPATH=_REPO),
          stdout=log,
          stderr=log,
          text=True,
      )
      # The first checkpoint is written at the end of step 1; step 2 still has to compile.
      deadline = time.monotonic() + 300
      while not os.path.exists(checkpoint) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
      proc.send_signal(signal.SIGTERM)
      proc.wait(timeout=300)
      log.seek(0)
      stderr = log.read()
    self.assertEqual(proc.returncode, 128 + signal.SIGTERM, msg=stderr[-3000:])
    self.assertNotIn('Traceback', stderr)
    self.assertIn('interrupted (SIGTERM) at step', stderr)
    self.assertIn('run the same command again to resume', stderr)
    with open(os.path.join(workdir, 'metrics.json')) as f:
      self.assertStartsWith(json.load(f)['status'], 'stopped: interrupted (SIGTERM) at step')
    self.assertTrue(os.path.isfile(os.path.join(workdir, 'fg.png')))

    proc = _cli(*self._run_args(workdir), timeout=600)
    self.assertEqual(proc.returncode, 0, msg=proc.stderr[-3000:])
    self.assertIn('resuming from', proc.stderr)
    names = sorted(os.listdir(reference))
    self.assertEqual(sorted(os.listdir(workdir)), names)
    for name in names:
      with open(os.path.join(workdir, name), 'rb') as a, open(os.path.join(reference, name), 'rb') as b:
        if name == 'metrics.json':
          self.assertEqual(outputs.without_timings(json.load(a)), outputs.without_timings(json.load(b)))
        elif name.endswith('.png'):
          self.assertEqual(a.read(), b.read(), msg=name)

  def test_workdir_of_another_config_is_one_error_line(self):
    reference, ref_proc = self._reference()
    self.assertEqual(ref_proc.returncode, 0, msg=ref_proc.stderr[-3000:])
    with open(os.path.join(reference, 'metrics.json')) as f:
      before = f.read()
    proc = _cli(*self._run_args(reference), '--config.seed=3', timeout=120)
    self.assertEqual(proc.returncode, 2, msg=proc.stderr[-3000:])
    self.assertNotIn('Traceback', proc.stderr)
    errors = _error_lines(proc.stderr)
    self.assertLen(errors, 1, msg=proc.stderr)
    self.assertIn('holds a run of another config (seed: 0 there, 3 now)', errors[0])
    with open(os.path.join(reference, 'metrics.json')) as f:
      self.assertEqual(f.read(), before)

  def test_rerun_of_a_finished_run_is_already_done_and_touches_nothing(self):
    reference, ref_proc = self._reference()
    self.assertEqual(ref_proc.returncode, 0, msg=ref_proc.stderr[-3000:])
    before = {name: os.stat(os.path.join(reference, name)).st_mtime_ns for name in os.listdir(reference)}
    proc = _cli(*self._run_args(reference), '--config.progress=true', timeout=120)  # Progress cannot change results.
    self.assertEqual(proc.returncode, 0, msg=proc.stderr[-3000:])
    self.assertStartsWith(
        proc.stdout,
        f'already done (same config and input files; --overwrite to run it again): ' f'outputs in {reference}/  ',
    )
    self.assertNotIn('Compiling', proc.stderr)
    self.assertEqual(
        {name: os.stat(os.path.join(reference, name)).st_mtime_ns for name in os.listdir(reference)}, before
    )

  def test_a_workdir_in_use_is_refused_naming_its_owner(self):
    workdir = os.path.join(self.dir, 'owned')
    holder = runner_test.hold_lock(self, workdir)
    proc = _cli(*self._base_args(workdir), timeout=120)
    self.assertEqual(proc.returncode, 2, msg=proc.stderr[-3000:])
    self.assertEqual(
        _error_lines(proc.stderr),
        [
            f"error: --workdir '{workdir}' is in use by another run "
            f'(pid {holder.pid}); wait for it to finish, or give another '
            '--workdir'
        ],
    )
    self.assertNotIn('Traceback', proc.stderr)

  def test_a_full_disk_is_one_error_line_and_leaves_nothing(self):
    # os.fsync fails with ENOSPC for the first checkpoint (written when step 1 ends).
    workdir = os.path.join(self.dir, 'full_disk')
    proc = _cli_patched(
        'import errno, os\n'
        'real_fsync = os.fsync\n'
        'def fsync(fd):\n'
        '  if "checkpoint" in os.readlink(f"/proc/self/fd/{fd}"):\n'
        '    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n'
        '  real_fsync(fd)\n'
        'os.fsync = fsync',
        *self._run_args(workdir),
    )
    self.assertEqual(proc.returncode, 2, msg=proc.stderr[-3000:])
    self.assertNotIn('Traceback', proc.stderr)
    self.assertEqual(
        _error_lines(proc.stderr), [f"error: cannot write '{workdir}/checkpoint.msgpack': No space left on device"]
    )
    self.assertFalse(os.path.exists(workdir))  # Nothing was written, no temporary file: no folder left.


if __name__ == '__main__':
  absltest.main()

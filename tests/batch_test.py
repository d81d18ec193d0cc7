"""Tests of ddip_jax.batch: many images, a corrupt one among them, 2 devices, 2 processes.

The in-process and multi-device/multi-process runs use `_ToyTask`: a real
engine optimisation (a one-scale generator fitting the image, a few steps) that
records which process ran it and on which device its parameters live. The
multi-device and multi-process runs need a fresh JAX, so they run this file
as a subprocess (`--batch_worker`). One command-line run uses the real
segmentation task.
"""

import csv
import errno
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from unittest import mock

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from configs import default
from ddip_jax import batch
from ddip_jax import compile_cache
from ddip_jax import engine
from ddip_jax import image_io
from ddip_jax import losses
from ddip_jax import models
from ddip_jax import outputs
from ddip_jax import resume
from ddip_jax import runner
from ddip_jax import tasks
from ddip_jax import writing

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_RUNS_LOG = 'runs.log'  # In the batch workdir: one line per image run, "<image> <process>".


class _ToyTask:
  """A task fitting a one-scale generator to the image for `num_steps` steps."""

  @staticmethod
  def run(config, workdir):
    image = image_io.load_image(config.image)  # Raises InputError for a corrupt file.
    target = jnp.asarray(image)[None]
    gen = models.SkipGenerator(out_channels=3, channels_down=(4,), channels_up=(4,), channels_skip=(0,))
    z = models.make_noise(jax.random.key(config.seed), image.shape[:2], 2, var=0.1)

    def loss_fn(params, batch_stats, step, key):
      del step, key
      out, stats = models.apply_generators({'layer': gen}, params, batch_stats, {'layer': z})
      return losses.l1(out['layer'], target), (stats, out, losses.psnr(out['layer'], target))

    stage = engine.Stage('fit', config.num_steps, loss_fn, 0.01)
    problem = engine.Problem({'layer': gen}, {'layer': z}, [stage])

    def finish(result, status):
      layer = np.asarray(result.best['layer'])[0]
      leaf = jax.tree.leaves(result.params)[0]
      metrics = {
          'status': status,
          'best_recon_psnr': result.best_psnr,
          'process_index': jax.process_index(),
          'params_device': str(next(iter(leaf.devices()))),
      }
      outputs.write_outputs(workdir, config, images={'layer': layer}, metrics=metrics, summary=[('layer', layer)])
      return metrics

    metrics = resume.optimize_and_write(problem, config, workdir, key=jax.random.key(config.seed), finish=finish)
    with open(os.path.join(os.path.dirname(workdir), _RUNS_LOG), 'a', errors='surrogateescape') as f:
      f.write(f'{config.image} {jax.process_index()}\n')
    return metrics


def _config(inputs: str):
  config = default.get_config()
  config.task = 'toy'
  config.inputs = inputs
  config.num_steps = 3
  config.progress = False
  config.loop.strategy = 'step'
  config.loop.checkpoint_every = 0
  return config


def _make_images(folder: str, count: int, corrupt: str | None = None) -> list[str]:
  paths = []
  for i in range(count):
    yy, xx = np.mgrid[0:8, 0:8] / 7
    paths.append(os.path.join(folder, f'img{i}.png'))
    writing.save_image(paths[-1], np.stack([xx, yy, np.full_like(xx, i / count)], -1))
  if corrupt:
    paths.append(os.path.join(folder, corrupt))
    with open(paths[-1], 'w') as f:
      f.write('not an image\n')
  return paths


def _read_results(workdir: str) -> list[dict[str, str]]:
  with open(os.path.join(workdir, batch.RESULTS)) as f:
    return list(csv.DictReader(f))


def _runs(workdir: str) -> list[tuple[str, int]]:
  with open(os.path.join(workdir, _RUNS_LOG), errors='surrogateescape') as f:
    return [(line.split()[0], int(line.split()[1])) for line in f]


def _worker_main(argv: list[str]) -> None:
  """`--batch_worker WORKDIR INPUTS [COORDINATOR NUM_PROCESSES PROCESS_ID]`: one batch run with the toy task."""
  workdir, inputs, *distributed = argv
  if distributed:
    batch.initialize_distributed(distributed[0], int(distributed[1]), int(distributed[2]))
  with mock.patch.dict(tasks.TASKS, toy=_ToyTask):
    rows = batch.run(_config(inputs), workdir)
  print(json.dumps([r.to_dict() for r in rows]))


def _run_worker(*args: str, env=None) -> subprocess.Popen:
  env = dict(os.environ, PYTHONPATH=_REPO, **(env or {}))
  return subprocess.Popen(
      [sys.executable, os.path.abspath(__file__), '--batch_worker', *args],
      cwd=_REPO,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
  )


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


class BatchTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    tmp = tempfile.TemporaryDirectory()
    self.addCleanup(tmp.cleanup)
    self.dir = tmp.name
    self.images = os.path.join(self.dir, 'images')
    os.makedirs(self.images)
    self.workdir = os.path.join(self.dir, 'out')

  def test_input_paths_globs_lists_and_duplicates(self):
    paths = _make_images(self.images, 3)
    spec = f'{paths[2]}, {self.images}/img*.png,{paths[0]}'
    self.assertEqual(batch.input_paths(spec), [paths[2], paths[0], paths[1]])
    with self.assertRaisesRegex(image_io.InputError, 'no file matches'):
      batch.input_paths(f'{self.images}/*.jpg')
    with self.assertRaisesRegex(image_io.InputError, 'lists no image'):
      batch.input_paths(' , ')
    for path in (os.devnull, '/dev/zero', self.images):  # Neither hangs nor fills the memory.
      with self.assertRaisesRegex(image_io.InputError, f'cannot read the list {path!r}: is a'):
        batch.input_paths(f'@{path}')
    fifo = os.path.join(self.dir, 'fifo')
    os.mkfifo(fifo)
    with self.assertRaisesRegex(image_io.InputError, 'is a FIFO'):
      batch.input_paths(f'@{fifo}')

  def test_an_images_folder_is_named_by_its_path_not_by_its_place_in_the_list(self):
    names = [batch.output_name(p) for p in ('a/x.png', 'b/x.png', 'c/y.jpg')]
    self.assertEqual([n[:2] for n in names], ['x_', 'x_', 'y_'])
    self.assertLen(set(names), 3)
    self.assertEqual(batch.output_name('a/x.png'), batch.output_name(os.path.abspath('a/x.png')))
    first, second = os.path.join(self.images, 'x.png'), os.path.join(self.dir, 'x.png')
    _make_images(self.images, 1)
    os.rename(os.path.join(self.images, 'img0.png'), first)
    with mock.patch.dict(tasks.TASKS, toy=_ToyTask):
      batch.run(_config(first), self.workdir)
      with open(first, 'rb') as f, open(second, 'wb') as g:
        g.write(f.read()[::-1])  # Same name, not an image.
      rows = batch.run(_config(f'{second},{first}'), self.workdir)  # Added before it: still done, still ok.
    self.assertEqual([r.status[:6] for r in rows], ['error:', 'ok'])
    self.assertLen(_runs(self.workdir), 1)

  def test_a_glob_leaves_out_the_batchs_own_outputs(self):
    paths = _make_images(self.images, 2)
    with mock.patch.dict(tasks.TASKS, toy=_ToyTask):  # The workdir is the images' folder.
      batch.run(_config(f'{self.images}/*.png'), self.images)
      with open(os.path.join(self.images, batch.RESULTS), 'rb') as f:
        before = f.read()
      os.makedirs(os.path.join(self.images, 'more'))
      os.rename(paths[1], os.path.join(self.images, 'more', 'img1.png'))
      paths[1] = os.path.join(self.images, 'more', 'img1.png')
      for spec in (f'{self.images}/*.[pc][ns][gv],{paths[1]}', f'{self.images}/*.png,{self.images}/*/*.png'):
        self.assertEqual(batch.input_paths(spec, self.images), paths)  # No results.csv, no layers.
        rows = batch.run(_config(spec), self.images)
        self.assertEqual([r.status for r in rows], ['ok', 'ok'])
        self.assertLen(_runs(self.images), 3)  # img1 moved: a new image.
      with self.assertRaisesRegex(image_io.InputError, "no file matches '.*' but the outputs in --workdir"):
        batch.input_paths(f'{self.images}/*.csv', self.images)
      for listed in (os.path.join(self.images, batch.RESULTS), os.path.join(self.images, rows[0].output, 'layer.png')):
        with self.assertRaisesRegex(image_io.InputError, 'is an output of this batch'):
          batch.input_paths(f'{paths[0]},{listed}', self.images)
    with open(os.path.join(self.images, batch.RESULTS), 'rb') as f:
      self.assertNotEqual(f.read(), before)  # Rewritten, and read back as a list of images.
    self.assertEqual([r['image'] for r in _read_results(self.images)], paths)

  def test_corrupt_image_is_reported_and_skipped(self):
    paths = _make_images(self.images, 2, corrupt='broken.png')
    with (
        mock.patch.dict(tasks.TASKS, toy=_ToyTask),
        mock.patch('sys.stderr', new_callable=lambda: open(os.path.join(self.dir, 'err'), 'w+')) as err,
    ):
      rows = batch.run(_config(','.join([paths[0], paths[2], paths[1]])), self.workdir)
      err.seek(0)
      errors = err.read().splitlines()
    self.assertEqual([r.status for r in rows][::2], ['ok', 'ok'])
    self.assertStartsWith(rows[1].status, 'error: ')
    self.assertEqual(errors, [f'error: {paths[2]}: cannot read {paths[2]!r}: not a recognised image file'])
    results = _read_results(self.workdir)
    self.assertEqual([r['image'] for r in results], [paths[0], paths[2], paths[1]])
    self.assertEqual([r['status'] == 'ok' for r in results], [True, False, True])
    self.assertGreater(float(results[0]['best_recon_psnr']), 0)
    self.assertEqual(results[1]['best_recon_psnr'], '')
    for path in paths[:2]:
      self.assertTrue(os.path.isfile(os.path.join(self.workdir, batch.output_name(path), 'layer.png')))
    self.assertFalse(os.path.exists(os.path.join(self.workdir, batch.output_name(paths[2]))))
    # The same command again: the finished images are not run again.
    with mock.patch.dict(tasks.TASKS, toy=_ToyTask):
      batch.run(_config(','.join(paths[:2])), self.workdir)
    self.assertLen(_runs(self.workdir), 2)

  def test_odd_file_names_are_taken_literally_and_written_safely(self):
    paths = _make_images(self.images, 3)
    odd = [
        os.path.join(self.images, 'shot[1].png'),
        os.path.join(self.images, 'a,b.png'),
        os.fsdecode(os.path.join(os.fsencode(self.images), b'caf\xe9.png')),
    ]  # Latin-1 bytes: not UTF-8.
    for source, target in zip(paths, odd):
      os.rename(source, target)
    self.assertEqual(batch.input_paths(f'{odd[0]},{odd[1]}'), odd[:2])  # Not a glob, not split at the comma.
    listing = os.path.join(self.dir, 'list.txt')
    with open(listing, 'wb') as f:
      f.write(b'# my images\n' + b'\n'.join(os.fsencode(p) for p in odd) + b'\n\n')
    self.assertEqual(batch.input_paths(f'@{listing}'), odd)
    with self.assertRaisesRegex(image_io.InputError, 'cannot read the list'):
      batch.input_paths('@missing.txt')
    with mock.patch.dict(tasks.TASKS, toy=_ToyTask):
      rows = batch.run(_config(f'@{listing}'), self.workdir)
    self.assertEqual([r.status for r in rows], ['ok'] * 3)
    with open(os.path.join(self.workdir, batch.RESULTS), encoding='utf-8') as f:  # Valid UTF-8 throughout.
      results = list(csv.DictReader(f))
    self.assertEqual([r['image'] for r in results], [odd[0], odd[1], f'{self.images}/caf\\xe9.png'])
    self.assertEqual([r['output'][:-9] for r in results], ['shot[1]', 'a,b', 'caf\\xe9'])
    self.assertTrue(os.path.isfile(os.path.join(self.workdir, batch.output_name(odd[0]), 'layer.png')))

  def test_a_rerun_on_a_full_disk_keeps_the_finished_images(self):
    paths = _make_images(self.images, 2)
    real_open = os.open

    def full_disk_open(path, flags, *args):  # No new lock file can be made: ENOSPC.
      if os.fspath(path).endswith(runner.LOCK):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
      return real_open(path, flags, *args)

    with mock.patch.dict(tasks.TASKS, toy=_ToyTask):
      batch.run(_config(paths[0]), self.workdir)
      with mock.patch('os.open', full_disk_open), mock.patch('sys.stderr', new_callable=io.StringIO):
        rows = batch.run(_config(','.join(paths)), self.workdir)
    self.assertEqual(rows[0].status, 'ok')
    self.assertEqual(
        rows[1].status,
        f'error: cannot use --workdir ' f'{os.path.join(self.workdir, rows[1].output)!r}: No space left on device',
    )
    self.assertEqual(sorted(os.listdir(self.workdir)), sorted([batch.RESULTS, rows[0].output, _RUNS_LOG]))
    self.assertEqual([r['status'][:5] for r in _read_results(self.workdir)], ['ok', 'error'])

  def test_an_image_another_process_runs_is_left_to_it(self):
    paths = _make_images(self.images, 2)
    img0 = os.path.join(self.workdir, batch.output_name(paths[0]))
    with runner.owned(img0):  # As if another process were running img0.
      with mock.patch.dict(tasks.TASKS, toy=_ToyTask):
        rows = batch.run(_config(','.join(paths)), self.workdir)
      self.assertStartsWith(
          rows[0].status, f'busy: --workdir {img0!r} is in use ' f'by another run (pid {os.getpid()})'
      )
      self.assertEqual([r.failed for r in rows], [False, False])
      self.assertEqual([r['status'][:4] for r in _read_results(self.workdir)], ['busy', 'ok'])
    with mock.patch.dict(tasks.TASKS, toy=_ToyTask):  # The next run does img0 only; results.csv is complete.
      rows = batch.run(_config(','.join(paths)), self.workdir)
    self.assertEqual([r['status'] for r in _read_results(self.workdir)], ['ok', 'ok'])
    self.assertEqual([image for image, _ in _runs(self.workdir)], [paths[1], paths[0]])

  def test_an_interrupted_batch_writes_what_finished_and_names_the_folder(self):
    paths = _make_images(self.images, 3)

    class Interrupting(_ToyTask):

      @staticmethod
      def run(config, workdir):
        if config.image == paths[1]:
          raise engine.Interrupted('interrupted (SIGINT) at step 2', 'SIGINT')
        return _ToyTask.run(config, workdir)

    with mock.patch.dict(tasks.TASKS, toy=Interrupting), self.assertRaises(engine.Interrupted) as ctx:
      batch.run(_config(','.join(paths)), self.workdir)
    self.assertEqual(ctx.exception.workdir, os.path.join(self.workdir, batch.output_name(paths[1])))
    results = _read_results(self.workdir)
    self.assertEqual([r['status'] for r in results], ['ok', 'stopped: interrupted (SIGINT) at step 2', 'not run'])
    self.assertGreater(float(results[0]['best_recon_psnr']), 0)

  def test_a_second_image_of_the_same_size_reuses_the_compiled_step(self):
    paths = _make_images(self.images, 2)
    compile_cache._COMPILED.clear()  # pylint: disable=protected-access
    with mock.patch.dict(tasks.TASKS, toy=_ToyTask), compile_cache.count_compilations() as counted:
      rows = batch.run(_config(','.join(paths)), self.workdir)
    self.assertEqual([r.status for r in rows], ['ok', 'ok'])
    self.assertEqual(counted.steps, 1)  # The first image's; the second image's data are its arguments.

  def test_two_processes_with_two_devices_each_process_every_image_once(self):
    # Process p of 2 takes images p, p + 2, ...; each spreads its share over its 2 devices.
    paths = _make_images(self.images, 4)
    address = f'localhost:{_free_port()}'
    two_devices = {'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
    procs = [_run_worker(self.workdir, f'{self.images}/*.png', address, '2', str(p), env=two_devices) for p in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, stderr) in zip(procs, outs):
      self.assertEqual(proc.returncode, 0, msg=stderr[-3000:])
    runs = _runs(self.workdir)
    self.assertCountEqual([image for image, _ in runs], paths)  # Every image exactly once.
    self.assertEqual(dict(runs), {path: i % 2 for i, path in enumerate(paths)})
    results = _read_results(self.workdir)  # Written by process 0, complete.
    self.assertEqual([r['image'] for r in results], paths)
    self.assertEqual([r['status'] for r in results], ['ok'] * 4)
    self.assertEqual([int(r['process']) for r in results], [0, 1, 0, 1])
    for stdout, _ in outs:  # Each process ran one image on each of its devices ...
      rows = json.loads(stdout.splitlines()[-1])
      self.assertLen(rows, 2)
      self.assertLen({r['device'] for r in rows}, 2)
      for row in rows:  # ... and its parameters lived on that device.
        with open(os.path.join(self.workdir, row['output'], 'metrics.json')) as f:
          self.assertEqual(json.load(f)['params_device'], row['device'])

  def test_a_process_waiting_for_its_peers_says_so_and_listens_on_the_coordinator_address_only(self):
    paths = _make_images(self.images, 1)
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            'main.py',
            '--config=configs/default.py',
            f'--config.inputs={paths[0]}',
            f'--workdir={self.workdir}',
            f'--coordinator_address=127.0.0.1:{port}',
            '--num_processes=2',
            '--process_id=0',
        ],
        cwd=_REPO,
        env=dict(os.environ, PYTHONPATH=_REPO),
        stderr=subprocess.PIPE,
        text=True,
    )
    self.addCleanup(proc.wait)
    self.addCleanup(proc.kill)
    line = proc.stderr.readline()  # Before it waits (the peer never comes).
    self.assertEqual(
        line,
        f'process 0 of 2: waiting up to 300 s for every process to reach the coordinator '
        f'127.0.0.1:{port} (listening on 127.0.0.1:{port})\n',
    )
    listening = set()
    for _ in range(100):
      for table in ('/proc/net/tcp', '/proc/net/tcp6'):  # Addresses in hex, state 0A: listening.
        with open(table) as f:
          rows = [row.split() for row in f.readlines()[1:]]
        listening |= {row[1].split(':')[0] for row in rows if row[3] == '0A' and int(row[1].split(':')[1], 16) == port}
      if listening:
        break
      time.sleep(0.1)
    self.assertNotEmpty(listening)
    for address in listening:  # 127.0.0.1 (or ::ffff:127.0.0.1), not every interface.
      self.assertEndsWith(address, '0100007F')

  def test_command_line_reports_every_failed_image(self):
    # Only failing images, so that no compilation is needed: the command-line
    # wiring (one error line per image, results.csv, exit status 1).
    broken = _make_images(self.images, 0, corrupt='notes.png')[0]
    missing = os.path.join(self.images, 'missing.png')
    proc = subprocess.run(
        [
            sys.executable,
            'main.py',
            '--config=configs/default.py',
            f'--config.inputs={broken},{missing}',
            f'--workdir={self.workdir}',
            '--config.progress=false',
        ],
        cwd=_REPO,
        env=dict(os.environ, PYTHONPATH=_REPO),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    self.assertEqual(proc.returncode, 1, msg=proc.stderr[-3000:])
    self.assertNotIn('Traceback', proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    self.assertEqual(
        errors,
        [
            f'error: {broken}: cannot read {broken!r}: not a recognised image file',
            f'error: {missing}: cannot read {missing!r}: no such file',
        ],
    )
    self.assertIn('done: 0 of 2 images', proc.stdout)
    results = _read_results(self.workdir)
    self.assertEqual([r['output'] for r in results], [batch.output_name(broken), batch.output_name(missing)])
    self.assertEqual([r['status'][:7] for r in results], ['error: '] * 2)
    self.assertEqual(sorted(os.listdir(self.workdir)), [batch.RESULTS])


if __name__ == '__main__':
  if len(sys.argv) > 1 and sys.argv[1] == '--batch_worker':
    _worker_main(sys.argv[2:])
  else:
    absltest.main()

"""Tests of ddip_jax.restarts with a stand-in task whose score per seed is known."""

import json
import os
import tempfile

from absl.testing import absltest
import numpy as np

from configs import default
from ddip_jax import compile_cache
from ddip_jax import engine
from ddip_jax import outputs
from ddip_jax import restarts
from ddip_jax import writing
from ddip_jax.tasks import segmentation


class _SeedTask:
  """A task whose run writes a picture of its seed and scores `scores[seed]` (None: NaN/Inf failure)."""

  SELECTION_METRIC = 'layer_psnr'

  def __init__(self, scores: dict[int, float | None]):
    self.scores = scores
    self.seeds_run = []

  def run(self, config, workdir):
    self.seeds_run.append(config.seed)
    if self.scores[config.seed] is None:
      raise engine.NumericalError(f'loss is nan at step 3 (seed {config.seed})')
    metrics = {'status': 'ok', 'layer_psnr': self.scores[config.seed], 'best_recon_psnr': -self.scores[config.seed]}
    picture = np.full((4, 4, 3), config.seed / 10, np.float32)
    outputs.write_outputs(workdir, config, images={'layer': picture}, metrics=metrics, summary=[('layer', picture)])
    return metrics


def _config(restarts: int, seed: int = 3):
  config = default.get_config()
  config.image = 'unused.png'
  config.seed = seed
  config.restarts = restarts
  return config


class RestartsTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    tmp = tempfile.TemporaryDirectory()
    self.addCleanup(tmp.cleanup)
    self.workdir = tmp.name

  def test_keeps_the_best_restart_by_the_task_metric(self):
    task = _SeedTask({3: 20.0, 4: 25.5, 5: 22.0})
    metrics = restarts.run(task, _config(3), self.workdir)
    self.assertEqual(task.seeds_run, [3, 4, 5])
    self.assertEqual(metrics['restart_chosen'], 1)
    self.assertEqual(metrics['chosen_seed'], 4)
    self.assertEqual(metrics['layer_psnr'], 25.5)
    self.assertEqual(metrics['selection_metric'], 'layer_psnr')
    self.assertEqual([r['layer_psnr'] for r in metrics['restarts']], [20.0, 25.5, 22.0])
    self.assertEqual([r['seed'] for r in metrics['restarts']], [3, 4, 5])
    with open(os.path.join(self.workdir, 'metrics.json')) as f:
      written = json.load(f)
    self.assertEqual(written['restart_chosen'], 1)
    self.assertEqual(written['seed'], 3)  # The run's config and seed, not the restart's.
    self.assertEqual(written['config']['restarts'], 3)
    # The workdir holds the chosen restart's outputs.
    for name in ('layer.png', 'summary.png'):
      with (
          open(os.path.join(self.workdir, name), 'rb') as a,
          open(os.path.join(self.workdir, 'restart_1', name), 'rb') as b,
      ):
        self.assertEqual(a.read(), b.read(), msg=name)
    with (
        open(os.path.join(self.workdir, 'layer.png'), 'rb') as a,
        open(os.path.join(self.workdir, 'restart_0', 'layer.png'), 'rb') as b,
    ):
      self.assertNotEqual(a.read(), b.read())

  def test_ties_go_to_the_lowest_seed(self):
    self.assertEqual(restarts.pick_best([1.0, 3.0, 3.0, 2.0]), 1)
    self.assertEqual(restarts.pick_best([-np.inf, -np.inf]), 0)

  def test_a_failed_restart_is_recorded_and_the_others_go_on(self):
    task = _SeedTask({3: 20.0, 4: None, 5: 21.0})
    metrics = restarts.run(task, _config(3), self.workdir)
    self.assertEqual(metrics['restart_chosen'], 2)
    self.assertStartsWith(metrics['restarts'][1]['status'], 'failed: loss is nan')
    self.assertIsNone(metrics['restarts'][1]['layer_psnr'])

  def test_all_restarts_failing_raises(self):
    with self.assertRaisesRegex(engine.NumericalError, 'seed 4'):
      restarts.run(_SeedTask({3: None, 4: None}), _config(2), self.workdir)

  def test_rerun_skips_finished_restarts(self):
    restarts.run(_SeedTask({3: 1.0, 4: 2.0}), _config(2), self.workdir)
    again = _SeedTask({3: 1.0, 4: 2.0})
    metrics = restarts.run(again, _config(2), self.workdir)
    self.assertEqual(again.seeds_run, [])
    self.assertEqual(metrics['restart_chosen'], 1)
    # Another seed is another run: nothing is reused.
    other = _SeedTask({7: 1.0, 8: 2.0})
    restarts.run(other, _config(2, seed=7), tempfile.mkdtemp(dir=self.workdir))
    self.assertEqual(other.seeds_run, [7, 8])

  def test_one_restart_is_the_plain_run(self):
    task = _SeedTask({3: 5.0})
    metrics = restarts.run(task, _config(1), self.workdir)
    self.assertNotIn('restarts', metrics)
    self.assertFalse(os.path.exists(os.path.join(self.workdir, 'restart_0')))
    self.assertTrue(os.path.exists(os.path.join(self.workdir, 'layer.png')))

  def test_a_second_restart_reuses_the_compiled_steps(self):
    """Restart 2 of the real segmentation task compiles nothing: its data are arguments of the step."""
    yy, xx = np.mgrid[0:8, 0:8] / 7
    config = _config(2)
    config.image = os.path.join(self.workdir, 'image.png')
    writing.save_image(config.image, np.stack([xx, yy, (xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.1], -1))
    config.num_steps = config.segmentation.hint_steps = 2
    config.generator.channels_down = config.generator.channels_up = (4,)  # The smallest compilation.
    config.generator.channels_skip = (0,)
    config.loop.strategy = 'step'
    config.loop.checkpoint_every = 0
    config.progress = False
    config.segmentation.auto_hints = 'border'  # Hints that find no object in 8x8 pixels would be refused.
    compilations = []

    class CountedSegmentation:
      SELECTION_METRIC = restarts.selection_metric(segmentation)

      @staticmethod
      def run(sub_config, workdir):
        with compile_cache.count_compilations() as counted:
          metrics = segmentation.run(sub_config, workdir)
        compilations.append(counted)
        return metrics

    compile_cache._COMPILED.clear()  # pylint: disable=protected-access
    metrics = restarts.run(CountedSegmentation, config, self.workdir)
    self.assertEqual([r['status'] for r in metrics['restarts']], ['ok', 'ok'])
    self.assertEqual(compilations[0].steps, 1)  # One program for both stages (fgbg.decomposition_stages).
    self.assertEqual(compilations[1].steps, 0)
    self.assertEqual(sum(compilations[1].count.values()), 0, msg=compilations[1].count)


if __name__ == '__main__':
  absltest.main()

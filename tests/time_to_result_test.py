"""benchmarks/time_to_result.py: every item names a runnable config, and a run's quality is its task's metric."""

import os

from absl import flags
from absl.testing import absltest

from benchmarks import time_to_result


class TimeToResultTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()

  def test_every_demo_item_names_an_existing_config(self):
    for item in time_to_result._DEMOS:
      (flag,) = time_to_result.item_flags(item, self.create_tempdir().full_path)
      path = flag.split('=', 1)[1]
      self.assertTrue(os.path.exists(os.path.join(time_to_result.REPO, path)), path)

  def test_unknown_item_is_a_usage_error(self):
    with self.assertRaises(time_to_result.app.UsageError):
      time_to_result.item_flags('zebraa', self.create_tempdir().full_path)

  def test_quality_prefers_the_task_metric(self):
    self.assertEqual(time_to_result.quality({'iou': 0.9, 'psnr': 20.0}), ('iou', 0.9))
    self.assertEqual(time_to_result.quality({'psnr': 20.0, 'psnr_box': 26.0}), ('psnr_box', 26.0))
    self.assertEqual(time_to_result.quality({'mean_layer_psnr': 24.8, 'psnr': 30.0}), ('mean_layer_psnr', 24.8))
    self.assertEqual(time_to_result.quality({'iou': None, 'psnr': 19.2}), ('psnr', 19.2))
    self.assertEqual(time_to_result.quality({'best_recon_psnr': 30.0}), (None, None))

  def test_fractions_are_for_segmentation_items_only(self):
    with self.assertRaises(time_to_result.app.UsageError):
      time_to_result._schedule_flags(time_to_result.REPO, 'dehaze', 0.5)


if __name__ == '__main__':
  absltest.main()

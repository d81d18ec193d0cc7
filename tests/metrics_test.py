"""metrics.py: the one PSNR cap (shared with the training loop's PSNR), image and in-box scores."""

from absl.testing import absltest
import jax.numpy as jnp
import numpy as np

from ddip_jax import losses
from ddip_jax import metrics


class MetricsTest(absltest.TestCase):

  def test_identical_images_score_the_cap_in_both_psnrs(self):
    image = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    self.assertEqual(metrics.psnr(image, image), metrics.PSNR_CAP)
    self.assertAlmostEqual(
        float(losses.psnr(jnp.asarray(image)[None], jnp.asarray(image)[None])), metrics.PSNR_CAP, places=4
    )

  def test_psnr_by_hand_and_estimate_clipped(self):
    truth = np.full((8, 8, 3), 0.5, np.float32)
    # MSE 0.01 -> 20 dB; values above 1 are clipped first (0.6 stays 0.6).
    self.assertAlmostEqual(metrics.psnr(truth + 0.1, truth), 20.0, places=4)
    self.assertAlmostEqual(metrics.psnr(np.full_like(truth, 3.0), truth), 10 * np.log10(1 / 0.25), places=4)

  def test_image_scores_and_box_scores(self):
    rng = np.random.default_rng(1)
    truth = rng.random((32, 32, 3)).astype(np.float32)
    estimate = truth.copy()
    estimate[4:8, 4:8] = 0.0  # Wrong outside the box only.
    box = (slice(16, 30), slice(16, 30))
    got = metrics.box_scores(estimate, truth, box)
    self.assertEqual(set(got), {'psnr', 'ssim', 'psnr_box', 'ssim_box'})
    self.assertEqual(got['psnr_box'], metrics.PSNR_CAP)
    self.assertAlmostEqual(got['ssim_box'], 1.0, places=5)
    self.assertLess(got['psnr'], 40.0)
    self.assertEqual(metrics.image_scores(estimate, truth), {k: got[k] for k in ('psnr', 'ssim')})
    self.assertIsNone(metrics.box_scores(estimate, truth, (slice(0, 5), slice(0, 30)))['ssim_box'])

  def test_iou_and_mask_scores(self):
    a = np.zeros((4, 4))
    a[:2] = 1
    b = np.zeros((4, 4))
    b[:, :2] = 1
    self.assertAlmostEqual(metrics.iou(a, b), 4 / 12)
    self.assertEqual(metrics.iou(np.zeros((3, 3)), np.zeros((3, 3))), 1.0)
    layers = {'mask_binary': a, 'mask_whole': b, 'mask_raw': a * 0.6}
    self.assertEqual(metrics.mask_scores(layers, a), {'iou': 1.0, 'iou_whole_mask': 4 / 12, 'iou_raw_mask': 1.0})


if __name__ == '__main__':
  absltest.main()

"""Tests of `watermark_cut`: the mark found in a box by a graph cut of its blend, its removal and self-check."""

import os

from absl.testing import absltest
import numpy as np
from scipy import ndimage

from configs import watermark as watermark_recommended_config
from ddip_jax import image_io
from ddip_jax import watermark_cut
from ddip_jax import watermark_io
from ddip_jax import watermark_layers
from ddip_jax.tasks import watermark
from tests import watermark_test as wt
from tests.transparency_test import _tempdir  # pylint: disable=g-bad-import-order


def _medians(clean):
  zeros = np.zeros_like(clean)
  return {'clean': clean, 'watermark': zeros, 'mask': zeros[..., :1], 'masked_watermark': zeros}


def _inputs_with_mark(image, box):
  inputs = watermark_io.Inputs(
      paths=['x'], full=image[None], working=image[None], hint=box, hint_working=box, truths=None, box=None
  )
  inputs.box_hint, inputs.mark = box, watermark_cut.find_mark(image, box)
  inputs.hint = (inputs.mark.coverage > 0).astype(np.float32)
  return inputs


class FindMarkTest(absltest.TestCase):

  def test_recovers_opacity_colour_and_coverage_of_light_dark_and_coloured_marks(self):
    for colour in (1.0, 0.0, wt._YELLOW):
      clean, a, box, image, _ = wt._watermark_case(9, 0.5, colour, photo_contrast=0.3)
      mark = watermark_cut.find_mark(image, box)
      self.assertAlmostEqual(mark.opacity, 0.5, delta=0.01)
      np.testing.assert_allclose(mark.colour, np.broadcast_to(colour, 3), atol=0.01)
      np.testing.assert_array_equal(mark.coverage > 0, a[..., 0] > 0)
      np.testing.assert_allclose(watermark_cut.remove(image, mark), clean, atol=2e-3)
      self.assertGreater(mark.specificity, 0.9)
      check = watermark_cut.cut_check(image, watermark_cut.remove(image, mark), clean, mark)
      self.assertTrue(check['passed'], check)

  def test_finds_a_filled_logo(self):
    clean = (0.5 + 0.3 * (wt._photo(4) - 0.5)).astype(np.float32)
    _, box = wt._watermark()
    yy, xx = np.mgrid[: wt._SIZE, : wt._SIZE]
    disc = (np.hypot(yy - wt._SIZE / 2, xx - wt._SIZE / 2) < 6).astype(np.float32)
    a = 0.4 * disc[..., None]
    image = (1 - a) * clean + a * np.array([0.2, 0.4, 1.0], np.float32)
    mark = watermark_cut.find_mark(image, box)
    found = mark.coverage > 0
    self.assertGreater((found & (disc > 0)).sum(), 0.9 * disc.sum())  # Its inside too, not only its edge.
    self.assertLess((found & (disc == 0)).sum(), 0.1 * disc.sum())
    on = disc > 0
    error = np.abs(watermark_cut.remove(image, mark) - clean)[on].mean()
    self.assertLess(error, np.abs(image - clean)[on].mean() / 4, mark.info())

  def test_a_textured_box_without_a_mark_fails_the_check(self):
    rng = np.random.default_rng(0)
    texture = np.clip(0.5 + 0.25 * rng.standard_normal((wt._SIZE, wt._SIZE, 1)) * np.ones(3), 0, 1)
    texture = texture.astype(np.float32)
    _, box = wt._watermark()
    mark = watermark_cut.find_mark(texture, box)  # De-blending towards black flattens any dark speck.
    check = watermark_cut.cut_check(texture, watermark_cut.remove(texture, mark), None, mark)
    self.assertFalse(check['passed'])
    self.assertLess(check['specificity'], watermark_cut.MIN_SPECIFICITY)

  def test_a_photo_without_a_mark_fails_the_check(self):
    photo = wt._photo(3)
    _, box = wt._watermark()
    mark = watermark_cut.find_mark(photo, box)
    check = watermark_cut.cut_check(photo, watermark_cut.remove(photo, mark), None, mark)
    self.assertFalse(check['passed'], check)

  def test_a_result_further_from_the_clean_estimate_fails_the_check(self):
    clean, _, box, image, _ = wt._watermark_case(9, 0.5, 1.0, photo_contrast=0.3)
    mark = watermark_cut.find_mark(image, box)
    result = watermark_cut.remove(image, mark)
    check = watermark_cut.cut_check(image, result, image + 0.5 * (image - result), mark)
    self.assertFalse(check['passed'])
    self.assertGreater(check['to_clean'], watermark_cut.MAX_TO_CLEAN)


class ComposeCutTest(absltest.TestCase):

  def test_changes_only_the_mark_and_reports_it(self):
    clean, a, box, image, _ = wt._watermark_case(9, 0.5, wt._YELLOW, photo_contrast=0.3)
    inputs = _inputs_with_mark(image, box)
    info = {}
    out = watermark_layers.compose(inputs, _medians(clean), threshold=0.1, clean_from='cut', info=info)
    self.assertTrue(info['self_check']['passed'], info['self_check'])
    self.assertEqual(info['self_check']['fallback'], 'none')
    self.assertEqual(set(info['cut']), {'opacity', 'colour', 'covered_pixels', 'box_gain', 'ring_gain', 'specificity'})
    np.testing.assert_allclose(out['clean'], clean, atol=2e-3)
    np.testing.assert_allclose(out['mask'], a, atol=1e-2)
    far = a[..., 0] == 0
    np.testing.assert_array_equal(out['clean'][far], image[far])

  def test_falls_back_to_the_input(self):
    clean, _, box, image, _ = wt._watermark_case(9, 0.5, 1.0, photo_contrast=0.3)
    inputs = _inputs_with_mark(image, box)
    info = {}
    # A clean estimate that disagrees with the removal: the check fails, the input is kept.
    out = watermark_layers.compose(inputs, _medians(2 * image - clean), threshold=0.1, clean_from='cut', info=info)
    self.assertFalse(info['self_check']['passed'])
    self.assertEqual(info['self_check']['fallback'], 'input')
    np.testing.assert_array_equal(out['clean'], image)
    np.testing.assert_array_equal(out['mask'], 0.0)


class EndToEndCutTest(absltest.TestCase):

  def test_recommended_config_finds_the_mark_and_keeps_the_rest(self):
    config, workdir = wt._hint_config(_tempdir(self))
    recommended = watermark_recommended_config.get_config()
    for field in ('stroke_polarity', 'step2_trains_clean', 'clean_from'):
      config.watermark[field] = recommended.watermark[field]
    self.assertEqual(config.watermark.clean_from, 'cut')
    config.num_steps = 1
    metrics = watermark.run(config, workdir)
    check = metrics['self_check']
    self.assertEqual(
        set(check), {'passed', 'reasons', 'fallback', 'specificity', 'covered_pixels', 'gain_per_pixel', 'to_clean'}
    )
    self.assertEqual(check['fallback'], 'none' if check['passed'] else 'input')
    self.assertAlmostEqual(metrics['cut']['opacity'], 0.5, delta=0.02)
    self.assertGreater(metrics['cut']['specificity'], 0.9)
    # The tiny config's C (4 iterations) is no clean estimate: the check may keep the input for it alone.
    self.assertTrue(check['passed'] or check['reasons'][0].startswith('the result is further'), check)
    if check['passed']:
      self.assertGreater(metrics['psnr_box'], metrics['input_psnr_box'] + 10)
    else:
      self.assertEqual(metrics['psnr_box'], metrics['input_psnr_box'])
    hint = image_io.load_mask(os.path.join(workdir, 'hint.png'), shape=(wt._SIZE, wt._SIZE)) > 0.5
    box = image_io.load_mask(config.watermark.hint, shape=(wt._SIZE, wt._SIZE)) > 0.5
    self.assertFalse((hint & ~box).any())
    self.assertLess(hint.sum(), box.sum() / 2)
    clean = image_io.load_image(os.path.join(workdir, 'clean.png'))
    full = image_io.load_image(config.image)
    np.testing.assert_array_equal(clean[~hint], full[~hint])  # Only the mark's pixels change.


if __name__ == '__main__':
  absltest.main()

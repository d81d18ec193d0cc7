"""Tests of `watermark_cut`: the mark found in a box by a graph cut of its blend, its removal and self-check."""

import contextlib
import dataclasses
import json
import os
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import jax
import numpy as np

from configs import watermark as watermark_recommended_config
from ddip_jax import config_check
from ddip_jax import engine
from ddip_jax import image_io
from ddip_jax import models
from ddip_jax import outputs
from ddip_jax import resume
from ddip_jax import tasks
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

  def test_finds_a_colour_that_is_no_corner_of_the_cube(self):
    orange = np.array([1.0, 0.55, 0.0], np.float32)  # Its nearest corners, red and yellow, are refined.
    clean, _, box, image, _ = wt._watermark_case(9, 0.5, orange, photo_contrast=0.3)
    mark = watermark_cut.find_mark(image, box)
    np.testing.assert_allclose(mark.colour, orange, atol=0.01)
    self.assertAlmostEqual(mark.opacity, 0.5, delta=0.01)
    np.testing.assert_allclose(watermark_cut.remove(image, mark), clean, atol=2e-3)
    self.assertLess(mark.ambiguity, 0.2)  # No far colour explains an orange mark.

  def test_a_light_or_dark_mark_a_far_colour_explains_as_well_fails_the_check(self):
    clean, _, box, image, _ = wt._watermark_case(9, 0.5, 1.0, photo_contrast=0.3)
    mark = watermark_cut.find_mark(image, box)
    result = watermark_cut.remove(image, mark)
    self.assertTrue(watermark_cut.cut_check(image, result, clean, mark)['passed'])
    ambiguous = dataclasses.replace(mark, ambiguity=watermark_cut.MAX_AMBIGUITY + 0.05)
    check = watermark_cut.cut_check(image, result, clean, ambiguous)
    self.assertFalse(check['passed'])
    self.assertEqual(len(check['reasons']), 1)
    self.assertIn('highlights or shadows', check['reasons'][0])
    self.assertEqual(check['ambiguity'], round(watermark_cut.MAX_AMBIGUITY + 0.05, 4))
    # A coloured mark is not refused for it: highlights and shadows are light or dark, not yellow.
    clean, _, box, image, _ = wt._watermark_case(9, 0.5, wt._YELLOW, photo_contrast=0.3)
    mark = watermark_cut.find_mark(image, box)
    ambiguous = dataclasses.replace(mark, ambiguity=watermark_cut.MAX_AMBIGUITY + 0.05)
    self.assertTrue(watermark_cut.cut_check(image, watermark_cut.remove(image, mark), clean, ambiguous)['passed'])

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
    self.assertEqual(
        set(info['cut']),
        {'opacity', 'colour', 'covered_pixels', 'box_gain', 'ring_gain', 'specificity', 'ambiguity'},
    )
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
        set(check),
        {'passed', 'reasons', 'fallback', 'specificity', 'covered_pixels', 'gain_per_pixel', 'to_clean', 'ambiguity'},
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


def _recommended(test, **fields):
  """The tiny hint config with configs/watermark.py's route: the cut, C left by step 1, its `num_steps`."""
  config, workdir = wt._hint_config(_tempdir(test))
  recommended = watermark_recommended_config.get_config()
  for field in ('stroke_polarity', 'step2_trains_clean', 'clean_from'):
    config.watermark[field] = recommended.watermark[field]
  config.num_steps = recommended.num_steps
  for field, value in fields.items():
    config.watermark[field] = value
  return config, workdir


class NoStep2Test(parameterized.TestCase):
  """configs/watermark.py's num_steps = 0: no step 2, no W and M, for the clean images that do not use them."""

  def test_the_recommended_config_skips_step_2_and_is_valid(self):
    config = watermark_recommended_config.get_config()
    self.assertEqual((config.num_steps, config.watermark.clean_from), (0, 'cut'))
    tasks.validate(config)

  @parameterized.parameters('cut', 'fit_tv', 'fit')
  def test_accepted_where_the_outputs_do_not_use_m_and_w(self, clean_from):
    # 'fit' too: its clean.png, mask.png and watermark.png are a blend fitted against C (watermark_layers).
    config, _ = _recommended(self, clean_from=clean_from)
    tasks.validate(config)
    self.assertNotIn(clean_from, watermark_layers.NEED_STEP2)

  @parameterized.parameters('generator', 'deblend')
  def test_refused_where_the_outputs_are_m_and_w(self, clean_from):
    config, _ = _recommended(self, clean_from=clean_from)
    with self.assertRaisesRegex(
        config_check.ConfigError, f"^config.num_steps = 0: must be >= 1 with watermark.clean_from='{clean_from}'"
    ):
      tasks.validate(config)
    config.num_steps = 1
    tasks.validate(config)

  def test_refused_without_step_1_in_many_mode_and_below_0(self):
    config, _ = _recommended(self, hint_steps=0)
    with self.assertRaisesRegex(config_check.ConfigError, r'^config.watermark.hint_steps = 0: must be >= 1 with'):
      tasks.validate(config)
    many, _ = wt._many_config(_tempdir(self))
    many.num_steps = 0
    with self.assertRaisesRegex(config_check.ConfigError, r'^config.num_steps = 0: must be at least 1'):
      tasks.validate(many)
    config, _ = _recommended(self)
    config.num_steps = -1
    with self.assertRaisesRegex(config_check.ConfigError, r'^config.num_steps = -1: must be >= 0'):
      tasks.validate(config)

  def test_cli_refuses_generator_without_step_2_in_one_line(self):
    error = wt.main_error_line(self, '--config=configs/watermark.py', '--config.watermark.clean_from=generator')
    self.assertIn("config.num_steps = 0: must be >= 1 with watermark.clean_from='generator'", error)

  def test_the_problem_has_c_alone_with_the_noise_and_initialisation_it_has_with_step_2(self):
    config, _ = _recommended(self)
    inputs = watermark_io.load_inputs(config)
    keys, key = [jax.random.key(3)], jax.random.key(4)
    alone = watermark.build_problem(config, inputs.working, inputs.hint_working, keys)
    config.num_steps = 1
    full = watermark.build_problem(config, inputs.working, inputs.hint_working, keys)
    self.assertEqual(set(alone.generators), {'clean', watermark.NOISE})
    self.assertEqual(set(full.generators), {'clean', 'watermark', 'mask', watermark.NOISE})
    self.assertEqual([s.name for s in alone.stages], ['step1_clean'])
    self.assertEqual([s.name for s in full.stages], ['step1_clean', 'step2_watermark'])
    self.assertEqual(set(alone.inputs[watermark.NOISE]), {'clean'})
    np.testing.assert_array_equal(alone.inputs['clean'], full.inputs['clean'])
    params, stats = models.init_generators(alone.generators, alone.inputs, key)
    want, _ = models.init_generators(full.generators, full.inputs, key)
    self.assertEqual(set(params), {'clean', watermark.NOISE})
    jax.tree.map(np.testing.assert_array_equal, params['clean'], want['clean'])
    self.assertEqual(set(stats[watermark.NOISE]['inputs']), {'clean'})

  def test_a_run_writes_the_outputs_without_m_and_w_resumes_and_reuses_its_runs(self):
    config, workdir = _recommended(self)
    metrics = watermark.run(config, workdir)
    self.assertEqual(metrics['status'], 'ok')
    self.assertEqual(metrics['runs_finished'], 2)
    for run in metrics['runs'].values():
      self.assertEqual(list(run['stages']), ['step1_clean'])
    for name in ('clean', 'clean_fit', 'clean_raw', 'watermark', 'mask', 'hint', 'summary'):
      self.assertTrue(os.path.exists(os.path.join(workdir, f'{name}.png')), name)
    for name in ('clean_soft', 'clean_deblend'):  # Made of M and W, which there are none of.
      self.assertFalse(os.path.exists(os.path.join(workdir, f'{name}.png')), name)
    self.assertEqual(set(metrics['ground_truth'][0]), {'result', 'input', 'clean_fit'})
    self.assertIn('cut', metrics)
    for key in ('psnr', 'psnr_box', 'input_psnr_box'):
      self.assertTrue(np.isfinite(metrics[key]), key)
    mask = image_io.load_image(os.path.join(workdir, 'mask.png'))
    passed = metrics['self_check']['passed']
    self.assertEqual(bool(mask.max() > 0), passed)  # The cut's mark, or none after a fallback.
    with open(os.path.join(workdir, 'clean.png'), 'rb') as f:
      want = f.read()
    # Without outputs, a rerun reuses the finished runs (no optimisation) and writes the same files.
    os.remove(os.path.join(workdir, 'clean.png'))
    os.remove(os.path.join(workdir, 'metrics.json'))
    with mock.patch.object(engine, 'optimize', side_effect=AssertionError('optimised again')):
      again = watermark.run(config, workdir)
    with open(os.path.join(workdir, 'clean.png'), 'rb') as f:
      self.assertEqual(f.read(), want)
    self.assertEqual(outputs.without_timings(again)['psnr_box'], metrics['psnr_box'])
    # Stopped in run 2's step 1: the outputs of run 1, its checkpoint; a rerun resumes to the same outputs.
    stopped = os.path.join(os.path.dirname(workdir), 'stopped')
    polls = []

    @contextlib.contextmanager
    def sigterm_at_step_2_of_run_2():
      # The engine polls once per step here; run 1 has hint_steps of them.
      yield lambda: 'SIGTERM' if polls.append(None) or len(polls) >= config.watermark.hint_steps + 2 else None

    with mock.patch.object(resume, 'stop_on_signals', sigterm_at_step_2_of_run_2):
      with self.assertRaises(engine.Interrupted):
        watermark.run(config, stopped)
    with open(os.path.join(stopped, 'metrics.json')) as f:
      self.assertEqual(json.load(f)['runs_finished'], 1)
    self.assertEqual([f for f in os.listdir(stopped) if f.startswith('checkpoint')], ['checkpoint_run2.msgpack'])
    resumed = watermark.run(config, stopped)
    self.assertEqual(resumed['runs_finished'], 2)
    self.assertFalse([f for f in os.listdir(stopped) if f.startswith('checkpoint')])
    with open(os.path.join(stopped, 'clean.png'), 'rb') as f:
      self.assertEqual(f.read(), want)
    self.assertEqual(outputs.without_timings(resumed)['psnr_box'], metrics['psnr_box'])


if __name__ == '__main__':
  absltest.main()

"""Tests of the watermark task: schedules, medians, composition, hints and inputs, batched runs, tiny runs.

The augmentations' round trips (transform then inverse is the identity for all
8) and the period-4 schedule are tested in tests/augment_test.py.
"""

import os
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from configs import watermark_faithful as watermark_config
from configs import watermark_many as watermark_many_config
from ddip_jax import blending
from ddip_jax import config_check
from ddip_jax import engine
from ddip_jax import image_io
from ddip_jax import losses
from ddip_jax import metrics as metrics_lib
from ddip_jax import models
from ddip_jax import outputs
from ddip_jax import tasks
from ddip_jax import watermark_io
from ddip_jax import watermark_layers
from ddip_jax import watermark_tv
from ddip_jax.tasks import watermark
from scripts import make_watermark

# The transparency tests' helpers: a temporary folder per test, PNGs written from arrays.
from tests import main_test
from tests.transparency_test import _tempdir  # pylint: disable=g-bad-import-order
from tests.transparency_test import _write

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SIZE = 32


def _photo(seed: int, size: int = _SIZE) -> np.ndarray:
  """A smooth colour image with a few edges, different per seed."""
  yy, xx = np.mgrid[:size, :size].astype(np.float32) / size
  rng = np.random.default_rng(seed)
  a, b, c = rng.uniform(0.5, 3.0, size=3)
  img = np.stack(
      [0.5 + 0.3 * np.sin(a * 6 * xx + b), 0.4 + 0.3 * np.cos(b * 5 * yy), 0.3 + 0.4 * ((xx + c * yy) % 0.5 > 0.25)],
      axis=-1,
  )
  return np.clip(img, 0, 1).astype(np.float32)


def _watermark(size: int = _SIZE) -> tuple[np.ndarray, np.ndarray]:
  """(coverage (H, W), box (H, W)): a bar and a ring in the middle, and the box around them."""
  yy, xx = np.mgrid[:size, :size].astype(np.float32)
  c = size / 2
  ring = np.abs(np.hypot(yy - c, xx - c) - size / 6) < 1.2
  bar = (np.abs(yy - c) < 1.5) & (np.abs(xx - c) < size / 4)
  coverage = (ring | bar).astype(np.float32)
  box = np.zeros_like(coverage)
  box[size // 4 - 2 : 3 * size // 4 + 2, size // 4 - 2 : 3 * size // 4 + 2] = 1
  return coverage, box


def _tiny(config, workdir):
  """One-scale generators, 2 runs and few steps, so a run compiles and finishes in seconds."""
  config.generator.channels_down = (4,)
  config.generator.channels_up = (4,)
  config.generator.channels_skip = (2,)
  config.generator.kernel_down = 3
  config.generator.kernel_up = 3
  config.watermark.mask_channels = (4,)
  config.watermark.mask_skip = (2,)
  config.watermark.watermark_kernel = 3
  config.watermark.hint_steps = 4
  config.watermark.hint_sigma_every = 2
  config.watermark.sigma_every = 2
  config.watermark.runs = 2
  config.num_steps = 6
  config.learning_rate = 1e-2
  config.progress = False
  config.loop.strategy = 'step'
  config.loop.check_every = 1
  return config, workdir


def _hint_config(folder):
  coverage, box = _watermark()
  clean = _photo(0)
  a = 0.5 * coverage[..., None]
  paths = _write(folder, {'image': (1 - a) * clean + a, 'clean': clean, 'box': box})
  config = watermark_config.get_config()
  config.image = paths['image']
  config.watermark.hint = paths['box']
  config.watermark.gt_clean = paths['clean']
  return _tiny(config, os.path.join(folder, 'out'))


def _many_config(folder, num_images=3):
  coverage, box = _watermark()
  a = 0.5 * coverage[..., None]
  images = {}
  for k in range(num_images):
    images[f'image{k}'] = (1 - a) * _photo(k) + a * np.array([1.0, 0.9, 0.2], np.float32)
    images[f'clean{k}'] = _photo(k)
  paths = _write(folder, {**images, 'box': box})
  config = watermark_many_config.get_config()
  config.image = paths['image0']
  config.watermark.images = tuple(paths[f'image{k}'] for k in range(1, num_images))
  config.watermark.gt_clean = paths['clean0']
  config.watermark.gt_images = tuple(paths[f'clean{k}'] for k in range(1, num_images))
  config.watermark.eval_box = paths['box']
  return _tiny(config, os.path.join(folder, 'out'))


def _two_images_and_medians(watermark: float):
  """Mode 'many': two photos, and run medians with clean layers 0 and 1, a watermark colour of `watermark`, no
  mask and no masked watermark (a test sets the parts it needs)."""
  images = np.stack([_photo(2), _photo(3)])
  medians = {
      'clean1': np.zeros((_SIZE, _SIZE, 3), np.float32),
      'clean2': np.ones((_SIZE, _SIZE, 3), np.float32),
      'watermark': np.full((_SIZE, _SIZE, 3), watermark, np.float32),
      'mask': np.zeros((_SIZE, _SIZE, 1), np.float32),
      'masked_watermark': np.zeros((_SIZE, _SIZE, 3), np.float32),
  }
  return images, medians


def _fit_case():
  """A mark over a low-contrast photo (`_watermark_case`), its strokes found in the box, and run medians whose
  clean layer is the true photo: (clean, opacity, box, image, inputs, medians)."""
  clean, a, box, image, inputs = _watermark_case(9, photo_contrast=0.3)
  inputs.hint, inputs.box_hint = (a[..., 0] > 0).astype(np.float32), box  # The strokes found in the box.
  medians = {
      'clean': clean,
      'watermark': np.zeros_like(clean),
      'mask': np.zeros_like(a),
      'masked_watermark': np.zeros_like(clean),
  }
  return clean, a, box, image, inputs, medians


class ScheduleTest(absltest.TestCase):

  def test_staircase_sigma(self):
    steps = jnp.arange(10)
    got = np.asarray(watermark.staircase_sigma(steps, 10, sigma_step=0.001, every=3))
    want = [0.001 * (it // 3) for it in range(9)] + [0.0]  # The last iteration is unperturbed.
    np.testing.assert_allclose(got, want, rtol=1e-6)


class MedianTest(absltest.TestCase):

  def test_per_pixel_medians_and_median_of_the_product(self):
    shape = (2, 3)
    runs = []
    for clean, wmk, mask in ((0.1, 1.0, 0.2), (0.5, 0.2, 0.9), (0.3, 0.6, 0.5)):
      runs.append(
          {
              'clean': np.full((*shape, 3), clean, np.float32),
              'watermark': np.full((*shape, 3), wmk, np.float32),
              'mask': np.full((*shape, 1), mask, np.float32),
          }
      )
    runs[0]['clean'][0, 0] = 0.9  # Pixel-wise: the median there is 0.5, elsewhere 0.3.
    got = blending.median_layers(runs)
    self.assertEqual(set(got), {'clean', 'watermark', 'mask', 'masked_watermark'})
    np.testing.assert_allclose(got['clean'][0, 0], 0.5)
    np.testing.assert_allclose(got['clean'][1, 2], 0.3)
    np.testing.assert_allclose(got['watermark'], 0.6)
    np.testing.assert_allclose(got['mask'], 0.5)
    # W * M per run: 0.2, 0.18, 0.3 -> median 0.2; the product of the medians would be 0.3.
    np.testing.assert_allclose(got['masked_watermark'], 0.2, rtol=1e-6)
    self.assertEqual(got['mask'].shape, (*shape, 1))

  def test_needs_a_run(self):
    with self.assertRaises(ValueError):
      blending.median_layers([])


class ComposeTest(absltest.TestCase):

  def _inputs(self, hint, images):
    return watermark_io.Inputs(
        paths=['x'] * len(images), full=images, working=images, hint=hint, hint_working=hint, truths=None, box=None
    )

  def test_hint_mode(self):
    image = _photo(1)[None]
    _, box = _watermark()
    medians = {
        'clean': np.full((_SIZE, _SIZE, 3), 0.25, np.float32),
        'watermark': np.ones((_SIZE, _SIZE, 3), np.float32),
        'mask': np.zeros((_SIZE, _SIZE, 1), np.float32),
    }
    medians['mask'][: _SIZE // 2] = 0.8
    medians['masked_watermark'] = medians['watermark'] * medians['mask']
    out = watermark_layers.compose(self._inputs(box, image), medians, threshold=0.1)
    inside = box[..., None] > 0.5
    np.testing.assert_array_equal(np.where(inside, 0, out['clean']), np.where(inside, 0, image[0]))
    np.testing.assert_allclose(out['clean'][inside[..., 0]], 0.25)
    # clean_soft replaces only where h * M >= 0.1: inside the box, upper half.
    soft_changed = np.any(out['clean_soft'] != image[0], axis=-1)
    want = (box > 0.5) & (np.arange(_SIZE)[:, None] < _SIZE // 2)
    np.testing.assert_array_equal(soft_changed, want)
    np.testing.assert_allclose(out['watermark'], box[..., None] * medians['masked_watermark'])

  def test_many_mode_keeps_pixels_without_watermark(self):
    images, medians = _two_images_and_medians(watermark=1.0)
    medians['masked_watermark'][4:8, :, 0] = 0.5  # Only the red channel, only rows 4-7.
    out = watermark_layers.compose(self._inputs(None, images), medians, threshold=0.1)
    for k, fill in ((1, 0.0), (2, 1.0)):
      changed = out[f'clean{k}'] != images[k - 1]
      self.assertTrue(np.all(out[f'clean{k}'][4:8, :, 0] == fill))
      self.assertFalse(changed[:4].any() or changed[8:].any() or changed[..., 1:].any())
      np.testing.assert_array_equal(out[f'clean{k}_raw'], medians[f'clean{k}'])
    np.testing.assert_array_equal(out['watermark'], medians['masked_watermark'])

  def test_many_mode_keep_from_effect_removes_a_black_watermark(self):
    images, medians = _two_images_and_medians(watermark=0.0)
    medians['mask'][4:8] = 0.4  # A black watermark: W M = 0 everywhere, but it darkens C_k by 0.4 C_k there.
    medians['clean1'][...] = 0.5  # |M (W - C_1)| = 0.2 in rows 4-7.
    official = watermark_layers.compose(self._inputs(None, images), medians, threshold=0.1)
    np.testing.assert_array_equal(official['clean1'], images[0])  # Nothing removed.
    for keep_from in ('effect', 'both'):
      out = watermark_layers.compose(
          self._inputs(None, images), medians, threshold=0.1, keep_from=keep_from, effect_threshold=0.15
      )
      for k, fill in ((1, 0.5), (2, 1.0)):
        self.assertTrue(np.all(out[f'clean{k}'][4:8] == fill))
        np.testing.assert_array_equal(out[f'clean{k}'][:4], images[k - 1][:4])
        np.testing.assert_array_equal(out[f'clean{k}'][8:], images[k - 1][8:])
    out = watermark_layers.compose(
        self._inputs(None, images), medians, threshold=0.1, keep_from='effect', effect_threshold=0.25
    )  # Above |M (W - C_1)| = 0.2: C_1 is kept, C_2 not (0.4).
    np.testing.assert_array_equal(out['clean1'], images[0])
    self.assertTrue(np.all(out['clean2'][4:8] == 1.0))


class ScoresTest(absltest.TestCase):

  def test_bounding_box(self):
    region = np.zeros((10, 12), np.float32)
    region[2, 3] = region[6, 9] = 1
    self.assertEqual(metrics_lib.bounding_box(region), (slice(2, 7), slice(3, 10)))
    with self.assertRaises(ValueError):
      metrics_lib.bounding_box(np.zeros((4, 4)))

  def test_psnr_in_box_matches_numpy(self):
    truth = _photo(4)
    estimate = truth.copy()
    estimate[8:20, 4:28] += 0.1
    box = (slice(8, 20), slice(4, 28))
    got = metrics_lib.box_scores(estimate, truth, box)
    self.assertAlmostEqual(got['psnr_box'], 20.0, places=3)  # MSE 0.01 inside the box.
    self.assertAlmostEqual(got['psnr'], 10 * np.log10(1 / (0.01 * 12 * 24 / _SIZE**2)), places=3)
    self.assertIsNotNone(got['ssim_box'])
    self.assertIsNone(metrics_lib.box_scores(estimate, truth, (slice(8, 18), slice(4, 28)))['ssim_box'])


class InputsTest(parameterized.TestCase):

  def test_hint_loaded_binarised_and_resized(self):
    folder = _tempdir(self)
    config, _ = _hint_config(folder)
    _, box = _watermark()
    big = np.kron(box, np.ones((2, 2), np.float32)) * 0.7  # Another size, values 0 / 0.7.
    config.watermark.hint = _write(folder, {'big': big})['big']
    inputs = watermark_io.load_inputs(config)
    np.testing.assert_array_equal(inputs.hint, box)
    self.assertEqual(inputs.box, metrics_lib.bounding_box(box))

  @parameterized.named_parameters(
      ('missing', lambda folder: os.path.join(folder, 'nope.png'), 'no such file'),
      ('empty', lambda folder: _write(folder, {'e': np.zeros((_SIZE, _SIZE))})['e'], 'marks no pixel'),
      ('everything', lambda folder: _write(folder, {'f': np.ones((_SIZE, _SIZE))})['f'], 'whole image'),
  )
  def test_bad_hint(self, make_path, message):
    folder = _tempdir(self)
    config, _ = _hint_config(folder)
    config.watermark.hint = make_path(folder)
    with self.assertRaisesRegex(image_io.InputError, message):
      watermark_io.load_inputs(config)

  def test_hint_required_by_config_check(self):
    config, _ = _hint_config(_tempdir(self))
    config.watermark.hint = None
    with self.assertRaisesRegex(config_check.ConfigError, 'watermark.hint'):
      tasks.validate(config)

  def test_many_config_checks(self):
    config, _ = _many_config(_tempdir(self))
    tasks.validate(config)
    config.watermark.gt_images = config.watermark.gt_images[:1]
    with self.assertRaisesRegex(config_check.ConfigError, 'watermark.gt_images'):
      tasks.validate(config)
    config.watermark.images = None
    with self.assertRaisesRegex(config_check.ConfigError, 'watermark.images'):
      tasks.validate(config)

  def test_many_resizes_close_aspect_and_refuses_far_one(self):
    folder = _tempdir(self)
    config, _ = _many_config(folder, num_images=2)
    close = _write(folder, {'close': image_io.resize_image(_photo(5), (33, 34))})['close']
    config.watermark.images = (close,)
    config.watermark.gt_images = (close,)
    inputs = watermark_io.load_inputs(config)
    self.assertEqual(inputs.full.shape, (2, _SIZE, _SIZE, 3))
    far = _write(folder, {'far': image_io.resize_image(_photo(5), (_SIZE, 2 * _SIZE))})['far']
    config.watermark.images = (far,)
    with self.assertRaisesRegex(image_io.InputError, 'aspect ratio'):
      watermark_io.load_inputs(config)


class BatchedTest(absltest.TestCase):

  def test_batched_loss_is_the_sum_of_the_runs_and_reseed_swaps_noise(self):
    config, _ = _hint_config(_tempdir(self))
    inputs = watermark_io.load_inputs(config)
    keys = [jax.random.key(3), jax.random.key(4)]
    batched = watermark.build_problem(config, inputs.working, inputs.hint_working, keys)
    single = watermark.build_problem(config, inputs.working, inputs.hint_working, keys[:1])
    second = watermark.reseed(single, config, keys[1:])
    self.assertIs(second.stages[-1], single.stages[-1])  # The same stages: compiled once.
    params, stats = models.init_generators(batched.generators, batched.inputs, jax.random.key(0))
    stage = batched.stages[-1]
    last = jnp.int32(stage.num_steps - 1)  # Unperturbed, unaugmented: deterministic.
    total, (_, out, _) = stage.loss_fn(params, stats, last, jax.random.key(1))
    self.assertEqual(out['clean'].shape, (2, 1, _SIZE, _SIZE, 3))
    singles = []
    for r, problem in enumerate((single, second)):
      p = jax.tree.map(lambda x, r=r: x[r], {n: v for n, v in params.items() if n != watermark.NOISE})
      s = jax.tree.map(lambda x, r=r: x[r], {n: v for n, v in stats.items() if n != watermark.NOISE})
      p[watermark.NOISE] = {}
      s[watermark.NOISE] = {'inputs': problem.inputs[watermark.NOISE]}
      loss, (_, run_out, _) = problem.stages[-1].loss_fn(p, s, last, jax.random.key(1))
      np.testing.assert_allclose(run_out['mask'], out['mask'][r], atol=1e-4)  # Grouped vs plain convs.
      singles.append(float(loss))
    self.assertNotAlmostEqual(singles[0], singles[1], places=4)  # Different noise and weights.
    np.testing.assert_allclose(float(total), sum(singles), rtol=1e-5)


def _step2_loss_increase(test, field, weight):
  """(step-2 loss with watermark.<field> = weight minus without, the layers, the hint (1, H, W, 1))."""
  config, _ = _hint_config(_tempdir(test))
  inputs = watermark_io.load_inputs(config)
  keys = [jax.random.key(5)]
  plain = watermark.build_problem(config, inputs.working, inputs.hint_working, keys)
  config.watermark[field] = weight
  weighted = watermark.build_problem(config, inputs.working, inputs.hint_working, keys)
  params, stats = models.init_generators(plain.generators, plain.inputs, jax.random.key(0))
  last = jnp.int32(config.num_steps - 1)
  base, (_, out, _) = plain.stages[-1].loss_fn(params, stats, last, jax.random.key(1))
  more, _ = weighted.stages[-1].loss_fn(params, stats, last, jax.random.key(1))
  return float(more - base), out, inputs.hint_working[None, ..., None]


class MaskWeightTest(absltest.TestCase):

  def test_adds_the_mask_mean_in_the_box(self):
    increase, out, h = _step2_loss_increase(self, 'mask_weight', 0.5)
    want = 0.5 * np.sum(h * np.asarray(out['mask'])) / np.sum(h)
    self.assertGreater(want, 0.01)
    self.assertAlmostEqual(increase, want, places=5)


class Step2TrainsCleanTest(absltest.TestCase):

  def test_step2_trains_all_or_only_mask_and_watermark(self):
    config, _ = _hint_config(_tempdir(self))
    inputs = watermark_io.load_inputs(config)
    keys = [jax.random.key(5)]
    official = watermark.build_problem(config, inputs.working, inputs.hint_working, keys)
    self.assertIsNone(official.stages[-1].trainable)  # All generators (engine_test checks what that means).
    config.watermark.step2_trains_clean = False
    frozen = watermark.build_problem(config, inputs.working, inputs.hint_working, keys)
    self.assertEqual(frozen.stages[-1].trainable, ('watermark', 'mask'))
    self.assertEqual(frozen.stages[0].trainable, ('clean',))


_YELLOW = np.array([1.0, 0.85, 0.2], np.float32)


def _watermark_case(seed: int, opacity: float = 0.5, colour=1.0, photo_contrast: float = 1.0):
  """(clean, opacity a (H, W, 1), box, image under the watermark, its hint-mode Inputs)."""
  clean = (0.5 + photo_contrast * (_photo(seed) - 0.5)).astype(np.float32)
  coverage, box = _watermark()
  a = opacity * coverage[..., None]
  image = (1 - a) * clean + a * colour
  inputs = watermark_io.Inputs(
      paths=['x'], full=image[None], working=image[None], hint=box, hint_working=box, truths=None, box=None
  )
  return clean, a, box, image, inputs


class ColourAndDeblendTest(absltest.TestCase):

  def test_constant_colour_is_one_learned_colour(self):
    module = models.ConstantColour()
    z = jnp.zeros((1, 5, 7, 2))
    variables = module.init(jax.random.key(0), z)
    self.assertEqual(jax.tree.map(jnp.shape, variables['params']), {'colour': (3,)})
    np.testing.assert_allclose(module.apply(variables, z), 0.5)  # Grey at init.
    out = module.apply({'params': {'colour': jnp.array([0.0, 0.1, -0.1])}}, z)
    self.assertEqual(out.shape, (1, 5, 7, 3))
    np.testing.assert_allclose(out[0, 4, 6], jax.nn.sigmoid(jnp.array([0.0, 2.0, -2.0])), rtol=1e-6)

  def test_colour_model_has_no_watermark_generator(self):
    config, _ = _hint_config(_tempdir(self))
    config.watermark.watermark_model = 'colour'
    inputs = watermark_io.load_inputs(config)
    problem = watermark.build_problem(config, inputs.working, inputs.hint_working, [jax.random.key(0)])
    params, stats = models.init_generators(problem.generators, problem.inputs, jax.random.key(1))
    self.assertEqual(jax.tree.map(jnp.shape, params['watermark']), {'colour': (3,)})
    _, (_, out, _) = problem.stages[-1].loss_fn(params, stats, jnp.int32(0), jax.random.key(2))
    np.testing.assert_allclose(out['watermark'], 0.5)

  def test_deblend_inverts_the_blend(self):
    colour = _YELLOW
    clean, a, _, image, _ = _watermark_case(6, 0.6, colour)
    got = blending.deblend(image, a, np.broadcast_to(colour, clean.shape), max_opacity=0.9)
    np.testing.assert_allclose(got, clean, atol=1e-5)
    # M is clipped at max_opacity: M = 1 would divide by zero.
    got = blending.deblend(image, np.ones_like(a), np.broadcast_to(colour, clean.shape), max_opacity=0.5)
    np.testing.assert_allclose(got, np.clip(2 * image - colour, 0, 1), atol=1e-5)

  def test_compose_deblends_inside_the_box_only(self):
    clean, a, box, image, inputs = _watermark_case(7)
    medians = {
        'clean': np.zeros_like(clean),
        'watermark': np.ones_like(clean),
        'mask': a,
        'masked_watermark': a * np.ones_like(clean),
    }
    for clean_from in ('generator', 'deblend'):
      out = watermark_layers.compose(inputs, medians, threshold=0.1, clean_from=clean_from)
      inside = box > 0.5
      np.testing.assert_allclose(out['clean_deblend'][inside], clean[inside], atol=1e-5)
      np.testing.assert_array_equal(out['clean_deblend'][~inside], image[~inside])
      want = clean if clean_from == 'deblend' else np.zeros_like(clean)
      np.testing.assert_allclose(out['clean'][inside], want[inside], atol=1e-5)
      np.testing.assert_array_equal(out['clean_raw'], medians['clean'])  # C itself, whatever clean_from.

  def test_fit_blend_recovers_opacity_and_colour_and_deblend_fitted_the_photo(self):
    colour = _YELLOW
    clean, a, box, image, _ = _watermark_case(8, 0.45, colour)
    opacity, fitted = blending.fit_blend(image, clean, a[..., 0] > 0, max_opacity=0.9)
    self.assertAlmostEqual(opacity, 0.45, places=4)
    np.testing.assert_allclose(fitted, colour, atol=1e-4)
    # In the whole box too: pixels between the strokes have I = C and fit anything.
    got = blending.deblend_fitted(image, clean, box, opacity=opacity, colour=fitted, max_opacity=0.9)
    np.testing.assert_allclose(got, clean, atol=1e-4)
    # A poor guess of C still keeps the pixels outside the region as they are.
    got = blending.deblend_fitted(image, np.zeros_like(clean), box, opacity=opacity, colour=fitted, max_opacity=0.9)
    np.testing.assert_array_equal(got[box == 0], image[box == 0])

  def test_compose_fit_deblends_against_the_clean_generator(self):
    clean, a, _, _, inputs, medians = _fit_case()  # See SelfCheckTest.test_a_true_blend_passes.
    info = {}
    out = watermark_layers.compose(inputs, medians, threshold=0.1, clean_from='fit', info=info)
    np.testing.assert_allclose(out['clean'], clean, atol=1e-4)
    np.testing.assert_allclose(out['clean_fit'], clean, atol=1e-4)
    self.assertTrue(info['self_check']['passed'], info['self_check'])
    self.assertEqual(info['self_check']['fallback'], 'none')
    self.assertEqual(info['self_check']['reasons'], [])
    np.testing.assert_allclose(out['mask'], a, atol=1e-4)  # The fit's opacity, not step 2's M.
    np.testing.assert_allclose(out['watermark'], a * np.ones(3), atol=1e-4)

  def test_fit_blend_tv_recovers_opacity_colour_and_coverage_without_a_clean_guess(self):
    for colour in (1.0, 0.0, _YELLOW):
      clean, a, box, image, _ = _watermark_case(9, 0.45, colour, photo_contrast=0.3)
      strokes = (a[..., 0] > 0).astype(np.float32)
      opacity, fitted, coverage = watermark_tv.fit_blend_tv(image, strokes, box)
      self.assertAlmostEqual(opacity, 0.45, delta=0.005)
      np.testing.assert_allclose(fitted, np.broadcast_to(colour, 3), atol=0.005)
      np.testing.assert_array_equal(coverage, strokes)  # Hard-edged marks: full coverage, nothing around.
      # Strokes that miss a third of the mark's pixels: the coverage still takes only the mark's.
      partial = strokes * (np.arange(_SIZE)[None, :] % 3 != 0)
      _, _, coverage = watermark_tv.fit_blend_tv(image, partial, box)
      self.assertFalse((coverage[strokes == 0] > 0).any())

  def test_compose_fit_tv_changes_only_the_strokes_and_their_edges(self):
    clean, a, box, image, inputs, medians = _fit_case()
    info = {}
    out = watermark_layers.compose(inputs, medians, threshold=0.1, clean_from='fit_tv', info=info)
    self.assertTrue(info['self_check']['passed'], info['self_check'])
    self.assertEqual(set(info['tv_fit']), {'opacity', 'colour', 'covered_pixels'})
    np.testing.assert_allclose(out['clean'], clean, atol=1e-3)
    np.testing.assert_allclose(out['mask'], a, atol=1e-2)
    far = ~ndimage.binary_dilation(a[..., 0] > 0)
    np.testing.assert_array_equal(out['clean'][far], image[far])


class SelfCheckTest(parameterized.TestCase):
  """`watermark_layers.self_check`: a fitted de-blending is trusted only when it looks like a watermark's."""

  def _check(
      self, seed=10, *, opacity=0.5, colour=1.0, contrast=3.0, clean_guess=None, strokes=None, photo_contrast=1.0
  ):
    clean, a, box, image, _ = _watermark_case(seed, opacity, colour, photo_contrast)
    strokes = (a[..., 0] > 0).astype(np.float32) if strokes is None else strokes
    guess = clean if clean_guess is None else clean_guess
    fit_opacity, fit_colour = blending.fit_blend(image, guess, strokes, max_opacity=0.9)
    result = blending.deblend_fitted(image, guess, strokes, opacity=fit_opacity, colour=fit_colour, max_opacity=0.9)
    return watermark_layers.self_check(
        image, result, guess, strokes, box, opacity=fit_opacity, colour=fit_colour, stroke_contrast=contrast
    )

  def test_a_true_blend_passes(self):
    # On a photo of low contrast: where the box is a little darker than its surroundings under a mark
    # lighter than it, removing the mark moves the box away from them and fails the check (a fallback).
    for colour in (1.0, 0.0, _YELLOW):
      check = self._check(colour=colour, photo_contrast=0.3)
      self.assertTrue(check['passed'], check)
      self.assertGreater(check['opacity_consistency'], 0.95)

  def test_strokes_that_barely_stand_out_fail(self):
    check = self._check(contrast=1.1)
    self.assertFalse(check['passed'])
    self.assertLen(check['reasons'], 1)
    self.assertIn('barely stand out', check['reasons'][0])

  def test_strokes_that_are_not_the_watermark_fail(self):
    # The 'strokes' are pixels of the photo the watermark does not touch, the clean guess a blur of it:
    # no one opacity and colour explains them.
    clean, a, box, _, _ = _watermark_case(11)
    rng = np.random.default_rng(0)
    wrong = ((rng.random(box.shape) < 0.3) & (box > 0.5) & (a[..., 0] == 0)).astype(np.float32)
    blurred = np.clip(clean + rng.normal(0, 0.08, clean.shape), 0, 1).astype(np.float32)
    check = self._check(11, clean_guess=blurred, strokes=wrong)
    self.assertFalse(check['passed'], check)
    self.assertNotEmpty(check['reasons'])

  def test_compose_falls_back_to_the_input_when_the_check_fails(self):
    clean, a, box, image, inputs = _watermark_case(12)
    inputs.hint, inputs.box_hint = (a[..., 0] > 0).astype(np.float32), box
    inputs.stroke_contrast = 1.0  # As over a textured photo: nothing stands out of it.
    medians = {
        'clean': clean,
        'watermark': np.zeros_like(clean),
        'mask': np.zeros_like(a),
        'masked_watermark': np.zeros_like(clean),
    }
    info = {}
    out = watermark_layers.compose(inputs, medians, threshold=0.1, clean_from='fit', info=info)
    self.assertFalse(info['self_check']['passed'])
    self.assertEqual(info['self_check']['fallback'], 'input')
    np.testing.assert_array_equal(out['clean'], image)  # The input, box and all.
    np.testing.assert_array_equal(out['mask'], 0.0)  # Nothing removed.
    np.testing.assert_allclose(out['clean_fit'], clean, atol=1e-4)  # The fit itself is still written.
    # The official composition has no self-check.
    info = {}
    watermark_layers.compose(inputs, medians, threshold=0.1, clean_from='generator', info=info)
    self.assertNotIn('self_check', info)

  def test_stroke_hint_replaces_the_box_but_not_the_metrics_box(self):
    folder = _tempdir(self)
    config, _ = _hint_config(folder)
    coverage, box = _watermark()
    config.watermark.stroke_polarity = 'light'  # 'auto' guesses wrong on this tiny striped photo.
    config.watermark.stroke_width = 5
    inputs = watermark_io.load_inputs(config)
    self.assertEqual(inputs.box, metrics_lib.bounding_box(box))
    found = inputs.hint > 0
    self.assertLess(found.sum(), 0.5 * box.sum())
    self.assertGreater((found & (coverage > 0)).sum() / (coverage > 0).sum(), 0.5)
    np.testing.assert_array_equal(inputs.hint_working, inputs.hint)  # Same size here.
    config.watermark.stroke_polarity = 'dark'  # A white watermark has no dark strokes ... or a few.
    config.image = _write(folder, {'flat': np.full((_SIZE, _SIZE, 3), 0.5, np.float32)})['flat']
    with self.assertRaisesRegex(image_io.InputError, 'no dark strokes'):
      watermark_io.load_inputs(config)

  def test_exclusion_weight_adds_the_exclusion_loss(self):
    increase, out, h = _step2_loss_increase(self, 'exclusion_weight', 2.0)
    want = 2.0 * float(losses.exclusion_loss(out['clean'], h * out['mask'] * out['watermark']))
    self.assertGreater(want, 1e-3)
    self.assertAlmostEqual(increase, want, places=5)

  def test_config_checks(self):
    config, _ = _hint_config(_tempdir(self))
    for field, value in (
        ('watermark_model', 'text'),
        ('clean_from', 'inpaint'),
        ('max_opacity', 1.0),
        ('exclusion_weight', -1.0),
        ('stroke_polarity', 'white'),
        ('stroke_width', 4),
        ('keep_from', 'colour'),
        ('effect_threshold', 2.0),
    ):
      bad = config.copy_and_resolve_references()
      bad.watermark[field] = value
      with self.assertRaisesRegex(config_check.ConfigError, f'watermark.{field}'):
        tasks.validate(bad)
    many, _ = _many_config(_tempdir(self))
    many.watermark.clean_from = 'deblend'
    with self.assertRaisesRegex(config_check.ConfigError, 'watermark.clean_from'):
      tasks.validate(many)


class MarkCoverageTest(absltest.TestCase):
  """`make_watermark.mark_coverage`: the evaluation set's marks (benchmarks/eval_watermark.py)."""

  def test_text_logos_and_rotation(self):
    shape = (48, 64)
    text = make_watermark.mark_coverage(shape, text='ab', font_size=12)
    self.assertEqual(text.shape, shape)
    self.assertEqual(float(text.min()), 0.0)
    self.assertBetween(float(text.max()), 0.9, 1.0)
    disc = make_watermark.mark_coverage(shape, logo='disc', logo_size=16)
    self.assertEqual(disc[24, 32], 1.0)  # Filled, centred.
    self.assertAlmostEqual(float(disc.sum()), np.pi * 8**2, delta=6)
    ring = make_watermark.mark_coverage(shape, logo='ring', logo_size=16)
    self.assertEqual(ring[24, 32], 0.0)  # Hollow.
    badge = make_watermark.mark_coverage(shape, logo='badge', logo_size=16)
    self.assertGreater(badge.sum(), ring.sum())
    turned = make_watermark.mark_coverage(shape, text='ab', font_size=12, angle=30)
    self.assertAlmostEqual(float(turned.sum()), float(text.sum()), delta=0.05 * text.sum())
    self.assertGreater(np.abs(turned - text).sum(), 0.5 * text.sum())
    box = make_watermark.hint_box(turned)
    self.assertTrue((box[turned > 0] == 1).all())
    with self.assertRaisesRegex(ValueError, 'unknown logo'):
      make_watermark.mark_coverage(shape, logo='star', logo_size=8)


class EndToEndTest(absltest.TestCase):

  def test_hint_mode_writes_everything_reuses_finished_runs_refuses_others(self):
    config, workdir = _hint_config(_tempdir(self))
    metrics = watermark.run(config, workdir)
    for name in ('clean', 'clean_soft', 'clean_raw', 'watermark', 'mask', 'hint', 'summary'):
      self.assertTrue(os.path.exists(os.path.join(workdir, f'{name}.png')), name)
    self.assertEqual(metrics['status'], 'ok')
    self.assertEqual(metrics['runs_finished'], 2)
    self.assertEqual(set(metrics['runs']), {'run1', 'run2'})
    self.assertEqual(metrics['runs']['run1']['stages']['step2_watermark']['steps'], 6)
    for key in ('psnr', 'ssim', 'psnr_box', 'ssim_box', 'input_psnr', 'input_psnr_box'):
      self.assertTrue(np.isfinite(metrics[key]), key)
    self.assertFalse([f for f in os.listdir(workdir) if f.startswith('checkpoint')])
    clean = image_io.load_image(os.path.join(workdir, 'clean.png'))
    full = image_io.load_image(config.image)
    outside = image_io.load_mask(config.watermark.hint, shape=(_SIZE, _SIZE)) < 0.5
    np.testing.assert_array_equal(clean[outside], full[outside])
    # Lose the outputs: a rerun reuses the finished runs' layers (no optimisation) and
    # writes the same files.
    with open(os.path.join(workdir, 'clean.png'), 'rb') as f:
      before = f.read()
    for name in ('clean.png', 'metrics.json'):
      os.remove(os.path.join(workdir, name))
    with mock.patch.object(engine, 'optimize', side_effect=AssertionError('optimised again')):
      again = watermark.run(config, workdir)
    with open(os.path.join(workdir, 'clean.png'), 'rb') as f:
      self.assertEqual(f.read(), before)
    self.assertEqual(again['runs'], metrics['runs'])  # Loaded, timings and all.
    self.assertEqual(outputs.without_timings(again)['psnr_box'], metrics['psnr_box'])
    # Only the first run finished: the second is redone with its own noise and key, the same layers.
    for name in ('clean.png', 'metrics.json', 'run2.npz'):
      os.remove(os.path.join(workdir, name))
    redone = watermark.run(config, workdir)
    with open(os.path.join(workdir, 'clean.png'), 'rb') as f:
      self.assertEqual(f.read(), before)
    self.assertEqual(redone['runs']['run1'], metrics['runs']['run1'])
    self.assertEqual(outputs.without_timings(redone['runs']['run2']), outputs.without_timings(metrics['runs']['run2']))
    # A run file of another config (here: another seed) is refused, not mixed in.
    os.remove(os.path.join(workdir, 'metrics.json'))
    config.seed = 1
    with self.assertRaisesRegex(image_io.InputError, 'another config'):
      watermark.run(config, workdir)

  def test_strokes_route_uses_the_strokes_and_keeps_the_rest_of_the_box(self):
    # The default before clean_from='cut' (configs/watermark.py; tests/watermark_cut_test.py tests that).
    config, workdir = _hint_config(_tempdir(self))
    config.watermark.step2_trains_clean = False
    config.watermark.clean_from = 'fit_tv'
    config.watermark.stroke_polarity = 'light'  # 'auto' guesses wrong on this tiny striped photo.
    metrics = watermark.run(config, workdir)
    self.assertStartsWith(metrics['stroke_polarity'], 'light (')  # The test's watermark is white.
    self.assertBetween(metrics['fit_opacity'], 0.05, 0.9)
    check = metrics['self_check']
    self.assertEqual(
        set(check),
        {'passed', 'reasons', 'fallback', 'stroke_contrast', 'opacity_consistency', 'input_gap', 'result_gap'},
    )
    self.assertEqual(check['fallback'], 'none' if check['passed'] else 'input')
    self.assertEqual(bool(check['reasons']), not check['passed'])
    self.assertTrue(os.path.exists(os.path.join(workdir, 'clean_fit.png')))
    hint = image_io.load_mask(os.path.join(workdir, 'hint.png'), shape=(_SIZE, _SIZE)) > 0.5
    box = image_io.load_mask(config.watermark.hint, shape=(_SIZE, _SIZE)) > 0.5
    self.assertLess(hint.sum(), box.sum() / 2)
    self.assertFalse((hint & ~box).any())
    clean = image_io.load_image(os.path.join(workdir, 'clean.png'))
    full = image_io.load_image(config.image)
    np.testing.assert_array_equal(clean[~hint], full[~hint])  # Only the strokes change.
    self.assertEqual(
        metrics['box'],
        [
            metrics_lib.bounding_box(box)[0].start,
            metrics_lib.bounding_box(box)[1].start,
            metrics_lib.bounding_box(box)[0].stop,
            metrics_lib.bounding_box(box)[1].stop,
        ],
    )

  def test_many_mode_writes_everything(self):
    config, workdir = _many_config(_tempdir(self))
    metrics = watermark.run(config, workdir)
    for name in ('clean1', 'clean2', 'clean3', 'clean1_raw', 'watermark', 'mask', 'summary'):
      self.assertTrue(os.path.exists(os.path.join(workdir, f'{name}.png')), name)
    self.assertLen(metrics['ground_truth'], 3)
    self.assertTrue(np.isfinite(metrics['psnr_box']))
    self.assertEqual(metrics['runs']['run2']['stages']['decompose']['steps'], 6)

  def test_cli_bad_hint_is_one_line_error(self):
    folder = _tempdir(self)
    config, _ = _hint_config(folder)
    empty = _write(folder, {'empty': np.zeros((_SIZE, _SIZE))})['empty']
    error = main_error_line(
        self,
        '--config=configs/watermark.py',
        f'--config.image={config.image}',
        f'--config.watermark.hint={empty}',
        f'--workdir={os.path.join(folder, "cli")}',
    )
    self.assertIn('marks no pixel', error)


def main_error_line(test: absltest.TestCase, *args: str) -> str:
  """Runs `main.py *args`, asserts it exits 2 with one `error:` line and no traceback; returns that line."""
  result = main_test._cli(*args, timeout=120)  # pylint: disable=protected-access
  test.assertEqual(result.returncode, 2, result.stderr)
  errors = main_test._error_lines(result.stderr)  # pylint: disable=protected-access
  test.assertLen(errors, 1)
  test.assertNotIn('Traceback', result.stderr)
  return errors[0]


if __name__ == '__main__':
  absltest.main()

"""Tests of the transparent-layer task: alpha models, metrics matching, tiny end-to-end runs."""

import json
import os
import tempfile
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from configs import textures as textures_config
from configs import textures_faithful as textures_faithful_config
from configs import transparency as transparency_config
from configs import transparency_faithful as faithful_config
from ddip_jax import colour_unmixing
from ddip_jax import config_check
from ddip_jax import engine
from ddip_jax import image_io
from ddip_jax import losses
from ddip_jax import metrics as metrics_lib
from ddip_jax import models
from ddip_jax import tasks
from ddip_jax import transparency_finalise
from ddip_jax import unmixing
from ddip_jax import writing
from ddip_jax.tasks import transparency

_SIZE = 32


def _layers(height=_SIZE, width=_SIZE):
  """Two structurally different layers: horizontal stripes and a diagonal ramp with a disc."""
  yy, xx = np.mgrid[:height, :width].astype(np.float32)
  stripes = 0.5 + 0.4 * np.sin(yy / 2.0)
  r = np.stack([stripes, 0.8 * stripes, 0.3 * np.ones_like(stripes)], axis=-1)
  ramp = (xx + yy) / (height + width)
  disc = ((yy - height / 2) ** 2 + (xx - width / 3) ** 2 < (height / 4) ** 2).astype(np.float32)
  t = np.stack([0.2 + 0.6 * ramp, 0.3 + 0.5 * disc, 0.9 - 0.6 * ramp], axis=-1)
  return r.astype(np.float32), t.astype(np.float32)


def _tiny(config, workdir):
  """Small generators and few steps, so a run compiles and finishes in seconds."""
  config.generator.channels_down = (4, 8)
  config.generator.channels_up = (4, 8)
  config.generator.channels_skip = (0, 2)
  config.generator.kernel_down = 3
  config.generator.kernel_up = 3
  config.num_steps = 12
  config.learning_rate = 1e-2
  config.progress = False
  config.loop.strategy = 'step'
  config.loop.check_every = 1
  return config, workdir


def _write(workdir, images):
  paths = {}
  for name, img in images.items():
    paths[name] = os.path.join(workdir, f'{name}.png')
    writing.save_image(paths[name], img)
  return paths


def _two_mixtures_config(workdir, alphas=(0.3, 0.7), shape=(_SIZE, _SIZE), config_module=transparency_config):
  r, t = _layers(*shape)
  paths = _write(
      workdir,
      {'mix1': alphas[0] * r + (1 - alphas[0]) * t, 'mix2': alphas[1] * r + (1 - alphas[1]) * t, 'gt1': r, 'gt2': t},
  )
  config = config_module.get_config()
  config.image = paths['mix1']
  config.transparency.image2 = paths['mix2']
  config.transparency.gt_layer1 = paths['gt1']
  config.transparency.gt_layer2 = paths['gt2']
  return _tiny(config, os.path.join(workdir, 'out'))


def _additive_config(workdir, shape=(_SIZE, _SIZE)):
  r, t = _layers(*shape)
  paths = _write(workdir, {'mix': (r + t) / 2, 'gt1': r, 'gt2': t})
  config = textures_config.get_config()
  config.image = paths['mix']
  config.transparency.gt_layer1 = paths['gt1']
  config.transparency.gt_layer2 = paths['gt2']
  return _tiny(config, os.path.join(workdir, 'out'))


def _tempdir(test: absltest.TestCase) -> str:
  """A fresh directory removed after `test` (works under pytest and absltest)."""
  tmp = tempfile.TemporaryDirectory()
  test.addCleanup(tmp.cleanup)
  return tmp.name


def _psnr(a, b):
  return 10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2))


class AlphaTest(parameterized.TestCase):

  def test_official_mapping(self):
    a = np.array([0.0, 0.25, 0.5, 1.0], np.float32)
    np.testing.assert_allclose(unmixing.alpha_from_unit(a), [0.05, 0.275, 0.5, 0.95], rtol=1e-6)

  @parameterized.parameters((5, 6), (4, 4), (7, 3))
  def test_centre_pixel(self, h, w):
    x = np.arange(2 * h * w * 3, dtype=np.float32).reshape(2, h, w, 3)
    got = transparency.centre_pixel(jnp.asarray(x))
    self.assertEqual(got.shape, (2, 1, 1, 3))
    np.testing.assert_array_equal(got[:, 0, 0], x[:, h // 2, w // 2])

  def test_scalar_alpha_starts_at_half_and_stays_in_range(self):
    module = transparency.AlphaScalar()
    params = module.init(jax.random.key(0), jnp.zeros((1, 1, 1, 1)))
    np.testing.assert_allclose(module.apply(params, None), 0.5)
    for logit, want in ((40.0, 0.95), (-40.0, 0.05), (1.0, 0.05 + 0.9 / (1 + np.exp(-1.0)))):
      got = module.apply({'params': {'logit': jnp.float32(logit)}}, None)
      np.testing.assert_allclose(got, want, rtol=1e-5)

  @parameterized.parameters('generator', 'map', 'scalar')
  def test_alpha_output_shapes(self, mode):
    config, _ = _tiny(transparency_config.get_config(), '')
    config.transparency.alpha = mode
    r, t = _layers(24, 40)
    problem = transparency.build_problem(config, np.stack([0.3 * r + 0.7 * t, r]), jax.random.key(0))
    variables = jax.eval_shape(
        lambda key: models.init_generators(problem.generators, problem.inputs, key), jax.random.key(1)
    )
    loss, (_, out, _) = jax.eval_shape(problem.stages[0].loss_fn, *variables, jnp.int32(0), jax.random.key(2))
    self.assertEqual(loss.shape, ())
    want = (1, 24, 40, 1) if mode == 'map' else (1, 1, 1, 1)
    for name in transparency.ALPHAS:
      self.assertEqual(out[name].shape, want)
    self.assertEqual(out['reflection'].shape, (1, 24, 40, 3))
    self.assertEqual(out['transmission'].shape, (1, 24, 40, 3))


class ExclusionTest(absltest.TestCase):
  """What the transparency losses rely on in `losses.exclusion_loss`."""

  def test_zero_when_one_layer_is_constant(self):
    r, _ = _layers()
    self.assertEqual(float(losses.exclusion_loss(jnp.asarray(r)[None], jnp.full((1, _SIZE, _SIZE, 3), 0.4))), 0.0)

  def test_symmetric_and_larger_for_shared_edges(self):
    r, t = (jnp.asarray(x)[None] for x in _layers())
    self.assertAlmostEqual(float(losses.exclusion_loss(r, t)), float(losses.exclusion_loss(t, r)), places=6)
    self.assertGreater(float(losses.exclusion_loss(r, r)), 1.5 * float(losses.exclusion_loss(r, t)))


class GradientCorrelationTest(absltest.TestCase):

  def test_scale_invariant_zero_for_a_constant_and_larger_for_shared_edges(self):
    r, t = (jnp.asarray(x)[None] for x in _layers())
    value = float(losses.gradient_correlation(r, t))
    self.assertBetween(value, 0.0, 1.0)
    self.assertAlmostEqual(float(losses.gradient_correlation(3.0 * r, 0.5 * t)), value, places=5)
    self.assertAlmostEqual(float(losses.gradient_correlation(t, r)), value, places=5)
    self.assertEqual(float(losses.gradient_correlation(r, jnp.full_like(t, 0.4))), 0.0)
    self.assertGreater(float(losses.gradient_correlation(r, 0.7 * r + 0.3 * t)), value + 0.05)


def _rectangles(seed, size=_SIZE):
  """A layer with sparse edges, like a photo's: random flat rectangles on grey."""
  rng = np.random.default_rng(seed)
  img = np.full((size, size, 3), 0.5, np.float32)
  for _ in range(6):
    (y, x), (h, w) = rng.integers(0, size - 8, 2), rng.integers(4, 14, 2)
    img[y : y + h, x : x + w] = rng.uniform(0.1, 0.9, 3)
  return img


class UnmixTest(absltest.TestCase):

  def _mixtures(self, alphas):
    r, t = _rectangles(0), _rectangles(1)
    return np.stack([a * r + (1 - a) * t for a in alphas]), (r, t)

  def test_unmix_with_the_true_alphas_gives_the_layers(self):
    mixtures, (r, t) = self._mixtures((0.3, 0.7))
    got_r, got_t = unmixing.unmix(jnp.asarray(mixtures), jnp.asarray([0.3, 0.7]))
    np.testing.assert_allclose(got_r, r, atol=1e-5)
    np.testing.assert_allclose(got_t, t, atol=1e-5)

  def test_refine_finds_the_alphas_from_a_wrong_start(self):
    mixtures, _ = self._mixtures((0.3, 0.7))
    for start in ((0.4, 0.6), (0.2, 0.8)):
      got = unmixing.refine_alphas(jnp.asarray(mixtures), jnp.asarray(start), radius=0.15, min_gap=0.05)
      np.testing.assert_allclose(got, [0.3, 0.7], atol=0.01, err_msg=str(start))
    # Started with a_1 > a_2, the search stays on that side: R and T swap roles.
    got = unmixing.refine_alphas(jnp.asarray(mixtures[::-1]), jnp.asarray((0.6, 0.4)), radius=0.15, min_gap=0.05)
    np.testing.assert_allclose(got, [0.7, 0.3], atol=0.01)

  def test_search_needs_no_start(self):
    mixtures, _ = self._mixtures((0.2, 0.75))
    got = unmixing.search_alphas(jnp.asarray(mixtures), min_gap=0.05)
    np.testing.assert_allclose(got, [0.8, 0.25], atol=0.01)  # a_1 > a_2: R and T swapped.

  def test_refine_from_both_takes_the_lower_edge_overlap_on_the_learned_side(self):
    mixtures, _ = self._mixtures((0.2, 0.75))
    # Far off, on the side a_1 < a_2: the nearby search cannot reach the truth.
    got, info = unmixing.refine_from_both(mixtures, jnp.asarray([0.6, 0.9]), radius=0.15, min_gap=0.05)
    self.assertEqual(info['refined_from'], 'whole_range')
    self.assertLess(info['edge_overlap']['whole_range'], info['edge_overlap']['near_learned'])
    np.testing.assert_allclose(got, [0.2, 0.75], atol=0.01)
    # Already close: both searches agree.
    got, info = unmixing.refine_from_both(mixtures, jnp.asarray([0.78, 0.27]), radius=0.15, min_gap=0.05)
    np.testing.assert_allclose(got, [0.8, 0.25], atol=0.01)
    self.assertAlmostEqual(info['edge_overlap']['whole_range'], info['edge_overlap']['near_learned'], places=3)

  def test_finalise_keeps_the_unmixing_only_when_it_lowers_the_loss(self):
    mixtures, (r, t) = self._mixtures((0.3, 0.7))
    config = faithful_config.get_config()
    blurry = tuple(np.full_like(x, x.mean()) for x in (r, t))  # Poor generator layers.
    start = [np.full((1, 1, 1), a, np.float32) for a in (0.38, 0.62)]
    for mode, want in (('learned', 'learned'), ('refined', 'refined')):
      config.transparency.unmix = mode
      layers, alphas, report, chosen = transparency_finalise.finalise_by_unmixing(
          config, mixtures, blurry, start, [r, t]
      )
      self.assertEqual(chosen, want)
      self.assertLess(report[want]['objective'], report['generators']['objective'])
      self.assertEqual(set(report), {'generators', 'learned'} | ({'refined'} if mode == 'refined' else set()))
    self.assertGreater(report['refined']['ground_truth']['mean_psnr'], 35.0)
    self.assertEqual(report['refined']['out_of_range'], 0.0)
    np.testing.assert_allclose([a.item() for a in alphas], [0.3, 0.7], atol=0.01)
    np.testing.assert_allclose(layers[0], r, atol=0.03)
    # 'always' takes a tried candidate even where the loss prefers the generators' layers.
    report = {'generators': {'objective': 0.1}, 'learned': {'objective': 0.2}}
    self.assertEqual(unmixing.choose_finalisation(report, 'learned', 'loss'), 'generators')
    self.assertEqual(unmixing.choose_finalisation(report, 'learned', 'always'), 'learned')
    self.assertEqual(unmixing.choose_finalisation(report, 'refined', 'always'), 'generators')
    # 'fit' keeps an unmixing that stays in [0, 1].
    report = {'generators': {'objective': 0.1}, 'refined': {'objective': 0.2, 'out_of_range': 0.0}}
    self.assertEqual(unmixing.choose_finalisation(report, 'refined', 'fit'), 'refined')
    report['refined']['out_of_range'] = 1.5 * unmixing.FIT_TOLERANCE
    self.assertEqual(unmixing.choose_finalisation(report, 'refined', 'fit'), 'generators')
    # The true layers already: no unmixing beats them; alphas too close are not tried.
    config.transparency.unmix = 'learned'
    close = [np.full((1, 1, 1), a, np.float32) for a in (0.49, 0.51)]
    _, _, report, chosen = transparency_finalise.finalise_by_unmixing(config, mixtures, (r, t), close, None)
    self.assertEqual((chosen, set(report)), ('generators', {'generators'}))
    self.assertNotIn('ground_truth', report['generators'])


class ModelFitTest(absltest.TestCase):

  def test_out_of_range_fraction_allows_the_amplified_rounding(self):
    layers = (np.full((4, 5, 3), 0.5, np.float32), np.zeros((4, 5, 3), np.float32))
    alphas = jnp.asarray([0.3, 0.7])  # Gain 2.5: the allowance is 0.05 + 2.5 / 255 = 0.0598.
    self.assertEqual(unmixing.out_of_range_fraction(layers, alphas), 0.0)
    layers[1][0, :2, 0] = (-0.055, 1.055)  # Within the allowance.
    self.assertEqual(unmixing.out_of_range_fraction(layers, alphas), 0.0)
    layers[1][1, :3, 0] = (-0.07, 1.07, 1.5)  # 3 values of 120 beyond it.
    self.assertAlmostEqual(unmixing.out_of_range_fraction(layers, alphas), 3 / 120)
    # Closer alphas amplify rounding more: gain 10, allowance 0.089.
    self.assertEqual(unmixing.out_of_range_fraction(layers, jnp.asarray([0.45, 0.55])), 1 / 120)

  def test_fit_keeps_the_generators_layers_when_the_alphas_vary_over_the_image(self):
    r, t = _layers()
    yy, xx = np.mgrid[:_SIZE, :_SIZE].astype(np.float32) / (_SIZE - 1)
    ramp = 0.2 + 0.6 * xx[..., None]
    blob = 0.2 + 0.6 * np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / 0.08)[..., None]
    mixtures = np.stack([a * r + (1 - a) * t for a in (ramp, blob)])
    config = transparency_config.get_config()
    config.transparency.unmix = 'refined'  # The generators' path ('varying' runs none).
    config.transparency.unmix_select = 'fit'
    generators = (0.5 * (mixtures[0] + mixtures[1]), mixtures[0])
    start = [np.full((1, 1, 1), a, np.float32) for a in (0.4, 0.6)]
    _, _, report, chosen = transparency_finalise.finalise_by_unmixing(config, mixtures, generators, start, None)
    self.assertEqual(chosen, 'generators')
    self.assertGreater(report['refined']['out_of_range'], unmixing.FIT_TOLERANCE)
    # The same layers with one alpha per mixture: the unmixing fits and is kept.
    mixtures = np.stack([a * r + (1 - a) * t for a in (0.2, 0.8)])
    _, _, report, chosen = transparency_finalise.finalise_by_unmixing(config, mixtures, generators, start, None)
    self.assertEqual((chosen, report['refined']['out_of_range']), ('refined', 0.0))


class VaryingWeightsTest(absltest.TestCase):

  def _varying(self):
    r, t = _layers()
    yy, xx = np.mgrid[:_SIZE, :_SIZE].astype(np.float32) / (_SIZE - 1)
    maps = (0.2 + 0.6 * xx[..., None], 0.2 + 0.6 * np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / 0.08)[..., None])
    return np.stack([a * r + (1 - a) * t for a in maps]), (r, t)

  def test_uniform_weights_keep_the_exact_unmixing(self):
    r, t = _rectangles(0), _rectangles(1)
    mixtures = np.stack([a * r + (1 - a) * t for a in (0.3, 0.7)])
    layers, weights, report, name = unmixing.varying_unmix(mixtures, min_gap=0.05, truths=[r, t])
    self.assertEqual((name, set(report)), ('refined', {'refined'}))
    self.assertEqual(weights.shape, (2, 1, 1, 1))
    self.assertGreater(report['refined']['ground_truth']['mean_psnr'], 40.0)

  def test_smooth_maps_where_the_weights_vary(self):
    mixtures, truths = self._varying()
    layers, weights, report, name = unmixing.varying_unmix(mixtures, min_gap=0.05, truths=list(truths))
    self.assertEqual(name, 'smooth_alphas')
    self.assertGreater(report['refined']['out_of_range'], unmixing.EXACT_FIT_TOLERANCE)
    # One map per mixture or one per mixture and colour channel, whichever fits with the lower objective.
    self.assertEqual(weights.shape, (2, _SIZE, _SIZE, 3 if report[name]['per_channel'] else 1))
    self.assertIn(str(report[name]['per_channel']), report[name]['objective_by_maps'])
    self.assertTrue(np.all((weights >= 0.05) & (weights <= 0.95)))
    chex.assert_tree_all_finite(layers)
    # Better than the scalar unmixing it starts from, and the maps' fit reproduces both mixtures.
    self.assertGreater(report[name]['ground_truth']['mean_psnr'], report['refined']['ground_truth']['mean_psnr'])
    recons = weights * layers[0] + (1 - weights) * layers[1]
    self.assertGreater(_psnr(recons, mixtures), 35.0)

  def test_one_map_per_colour_channel(self):
    mixtures, _ = self._varying()
    _, info = unmixing.smooth_alpha_unmix(mixtures, jnp.asarray([0.7, 0.3]), per_channel=True)
    self.assertEqual(info['alpha_logits'].shape, (2, unmixing.SMOOTH_ALPHA_GRID, unmixing.SMOOTH_ALPHA_GRID, 3))
    self.assertEqual(unmixing.smooth_alpha_maps(info['alpha_logits'], (5, 7)).shape, (2, 5, 7, 3))

  def test_the_default_run_trains_no_generator(self):
    config, workdir = _two_mixtures_config(_tempdir(self))
    self.assertEqual(config.transparency.unmix, 'varying')
    metrics = transparency.run(config, workdir)
    self.assertEqual((metrics['steps'], metrics['layers_from']), (0, 'refined'))
    self.assertEqual(metrics['best_recon_psnr'], metrics['recomposed1_psnr'])
    self.assertGreater(metrics['mean_layer_psnr'], 35.0)
    for name in ('layer1', 'layer2', 'recomposed1', 'recomposed2', 'summary'):
      self.assertTrue(os.path.isfile(os.path.join(workdir, f'{name}.png')), name)


class LayerMetricsTest(absltest.TestCase):

  def test_matches_numpy_over_both_orderings(self):
    r, t = _layers()
    rng = np.random.default_rng(0)
    est_r = np.clip(r + rng.normal(0, 0.02, r.shape), 0, 1).astype(np.float32)
    est_t = np.clip(t + rng.normal(0, 0.05, t.shape), 0, 1).astype(np.float32)
    straight = metrics_lib.layer_pair_scores((est_r, est_t), (r, t))
    crossed = metrics_lib.layer_pair_scores((est_t, est_r), (r, t))
    self.assertFalse(straight['swapped'])
    self.assertTrue(crossed['swapped'])
    want = [_psnr(est_r, r), _psnr(est_t, t)]
    for got in (straight, crossed):
      np.testing.assert_allclose(got['psnr'], want, rtol=1e-4)
      self.assertAlmostEqual(got['mean_psnr'], np.mean(want), places=3)
      np.testing.assert_allclose(got['ssim'], straight['ssim'], rtol=1e-6)
    self.assertGreater(straight['ssim'][0], straight['ssim'][1])  # Less noise, more similar.

  def test_picks_the_ordering_with_the_higher_mean_psnr(self):
    # est0 is close to neither truth alone; est1 is much closer to truth 0 than to truth 1.
    g0, g1 = np.full((16, 16, 3), 0.2, np.float32), np.full((16, 16, 3), 0.8, np.float32)
    e0, e1 = np.full_like(g0, 0.5), np.full_like(g0, 0.25)
    got = metrics_lib.layer_pair_scores((e0, e1), (g0, g1))
    # Straight: (10*log10(1/0.09), 10*log10(1/0.3025)); crossed: (10*log10(1/0.0025), 10*log10(1/0.09)).
    self.assertTrue(got['swapped'])
    np.testing.assert_allclose(got['psnr'], [10 * np.log10(400.0), 10 * np.log10(1 / 0.09)], rtol=1e-5)

  def test_identical_layers_are_capped(self):
    r, t = _layers()
    got = metrics_lib.layer_pair_scores((r, t), (r, t))
    self.assertEqual(got['psnr'], [100.0, 100.0])
    np.testing.assert_allclose(got['ssim'], [1.0, 1.0], atol=1e-5)


class ConfigTest(absltest.TestCase):

  def test_faithful_is_official_and_the_default_changes_only_what_its_docstring_says(self):
    faithful = faithful_config.get_config().to_dict()
    self.assertEqual((faithful['num_steps'], faithful['max_side'], faithful['learning_rate']), (7000, 512, 1e-3))
    self.assertEqual(
        (
            faithful['transparency']['alpha'],
            faithful['transparency']['unmix'],
            faithful['transparency']['alpha_prior_steps'],
        ),
        ('generator', 'none', 1000),
    )
    default = transparency_config.get_config().to_dict()
    changed = {
        (section, leaf)
        for section, value in default.items()
        for leaf, v in (value.items() if isinstance(value, dict) else [(None, value)])
        if v != (faithful[section][leaf] if leaf is not None else faithful[section])
    }
    self.assertEqual(changed, {('transparency', 'unmix')})
    self.assertEqual(default['transparency']['unmix'], 'varying')

  def test_textures_default_changes_only_what_its_docstring_says(self):
    faithful = textures_faithful_config.get_config().to_dict()
    self.assertEqual((faithful['num_steps'], faithful['transparency']['unmix']), (8000, 'none'))
    default = textures_config.get_config().to_dict()
    changed = {
        (section, leaf)
        for section, value in default.items()
        for leaf, v in (value.items() if isinstance(value, dict) else [(None, value)])
        if v != (faithful[section][leaf] if leaf is not None else faithful[section])
    }
    self.assertEqual(
        changed, {('max_side', None), ('num_steps', None), ('transparency', 'unmix'), ('transparency', 'unmix_select')}
    )


class ValidateTest(absltest.TestCase):

  def test_rejects_bad_fields(self):
    for field, value, message in (
        ('image2', None, 'second mixture'),
        ('gt_layer2', None, 'both'),
        ('alpha', 'pixel', 'unknown alpha'),
        ('mixture', 'three', 'unknown mixture'),
        ('exclusion_weight', -1.0, '>= 0'),
        ('unmix', 'exact', 'unknown unmixing'),
        ('unmix_select', 'best', 'unmix_select'),
        ('refine_radius', 0.0, 'refine_radius'),
        ('unmix_min_gap', 0.95, 'unmix_min_gap'),
    ):
      config = transparency_config.get_config()
      config.transparency[field] = value
      with self.assertRaisesRegex(config_check.ConfigError, message):
        tasks.validate(config)

  def test_unmix_needs_scalar_alphas(self):
    config = transparency_config.get_config()
    config.transparency.unmix = 'refined'
    tasks.validate(config)
    config.transparency.alpha = 'map'
    with self.assertRaisesRegex(config_check.ConfigError, 'scalar alphas'):
      tasks.validate(config)

  def test_default_configs_are_valid(self):
    tasks.validate(transparency_config.get_config())
    tasks.validate(faithful_config.get_config())
    tasks.validate(textures_config.get_config())


def _run_recording_losses(config, workdir):
  """transparency.run, also returning the loss at every check (every step here)."""
  seen = []
  optimize = engine.optimize

  def recording(*args, **kwargs):
    return optimize(*args, **kwargs, on_check=lambda _, state: seen.append(float(state.loss)))

  with mock.patch.object(transparency.engine, 'optimize', recording):
    metrics = transparency.run(config, workdir)
  return metrics, seen


class EndToEndTest(absltest.TestCase):

  def test_two_mixtures_writes_everything_and_loss_goes_down(self):
    config, workdir = _two_mixtures_config(_tempdir(self))
    config.transparency.unmix, config.transparency.unmix_select = 'refined', 'fit'  # With generators.
    metrics, seen = _run_recording_losses(config, workdir)
    for name in ('layer1', 'layer2', 'recomposed1', 'recomposed2', 'summary'):
      self.assertTrue(os.path.isfile(os.path.join(workdir, f'{name}.png')), name)
    with open(os.path.join(workdir, 'metrics.json')) as f:
      written = json.load(f)
    self.assertEqual(written['status'], 'ok')
    self.assertEqual(written['stages']['separate']['steps'], config.num_steps)
    self.assertLen(written['ground_truth']['psnr'], 2)
    self.assertAlmostEqual(written['mean_layer_psnr'], metrics['mean_layer_psnr'], places=5)
    for name in transparency.ALPHAS:
      self.assertBetween(written[name], 0.05, 0.95)
    self.assertLen(seen, config.num_steps)
    self.assertLess(np.mean(seen[-3:]), 0.8 * seen[0])
    # The default's layers are the exact unmixing, far better than 12 steps of the generators.
    self.assertEqual(written['layers_from'], 'refined')
    self.assertGreater(written['mean_layer_psnr'], 35.0)
    self.assertLess(written['finalise']['generators']['ground_truth']['mean_psnr'], 25.0)

  def test_faithful_two_mixtures_keeps_the_generators_layers(self):
    config, workdir = _two_mixtures_config(_tempdir(self), config_module=faithful_config)
    metrics = transparency.run(config, workdir)
    self.assertNotIn('finalise', metrics)
    self.assertNotIn('layers_from', metrics)
    self.assertLess(metrics['mean_layer_psnr'], 25.0)

  def test_additive_writes_everything_on_a_non_square_image_and_loss_goes_down(self):
    # augment=True: the generators run on a square canvas, cropped back to 24x32.
    config, workdir = _additive_config(_tempdir(self), shape=(24, 32))
    config.transparency.unmix = 'none'  # The generators' layers (an unmixing fits these layers: no training).
    metrics, seen = _run_recording_losses(config, workdir)
    for name in ('layer1', 'layer2', 'layer1_x2', 'layer2_x2', 'recomposed', 'summary'):
      self.assertTrue(os.path.isfile(os.path.join(workdir, f'{name}.png')), name)
    self.assertEqual(image_io.load_image(os.path.join(workdir, 'layer1_x2.png')).shape, (24, 32, 3))
    self.assertEqual(metrics['working_shape'], [24, 32])
    self.assertIn('mean_layer_ssim', metrics)
    # Augmented steps see rotated targets; compare the identity (odd) steps.
    self.assertLess(np.mean(seen[-3::2]), 0.8 * seen[1])

  def test_mixtures_of_different_sizes_are_refused(self):
    tmp = _tempdir(self)
    config, workdir = _two_mixtures_config(tmp)
    writing.save_image(config.transparency.image2, np.zeros((16, 16, 3), np.float32))
    with self.assertRaisesRegex(image_io.InputError, 'expected 32x32'):
      transparency.run(config, workdir)


def _tinted_textures(height=48, width=40, colours=((1.0, 0.6, 0.48), (0.62, 1.0, 0.42))):
  """Two grey textures (sparse blocks, thin diagonal lines) each times one RGB colour, and their mean."""
  rng = np.random.default_rng(0)
  blocks = np.kron(rng.uniform(0.1, 0.9, (height // 8 + 1, width // 8 + 1)), np.ones((8, 8)))[:height, :width]
  yy, xx = np.mgrid[:height, :width]
  lines = 0.2 + 0.7 * ((xx + 2 * yy) % 7 == 0) + 0.1 * rng.uniform(size=(height, width))
  r, t = (np.clip(g[..., None] * np.asarray(c), 0, 1).astype(np.float32) for g, c in zip((blocks, lines), colours))
  return r, t, ((r + t) / 2).astype(np.float32)


class ColourPlaneTest(absltest.TestCase):

  def test_independent_directions_undo_a_known_mixing(self):
    sources = np.random.default_rng(1).laplace(size=(4000, 2))
    mixing = np.array([[1.0, 0.6], [0.3, 1.0]])
    product = colour_unmixing.independent_directions(sources @ mixing.T) @ mixing
    # A scaled permutation: one large entry per row.
    ratios = np.sort(np.abs(product), axis=1)
    self.assertTrue(np.all(ratios[:, 0] < 0.05 * ratios[:, 1]), product)

  def test_tinted_layers_are_recovered_and_fit(self):
    r, t, image = _tinted_textures()
    (got_r, got_t), info = colour_unmixing.colour_plane_unmix(image)
    fits, out = colour_unmixing.colour_plane_fits(info, (got_r, got_t))
    self.assertTrue(fits, info)
    self.assertEqual(out, 0.0)
    np.testing.assert_allclose(got_r + got_t, image, atol=1e-5)  # The image is on the plane.
    scores = metrics_lib.layer_pair_scores((2 * got_r, 2 * got_t), (r, t))
    self.assertGreater(scores['mean_psnr'], 35.0)
    colours = [info['colours'][k] for k in ((1, 0) if scores['swapped'] else (0, 1))]
    np.testing.assert_allclose(colours, [[1.0, 0.6, 0.48], [0.62, 1.0, 0.42]], atol=0.02)

  def test_a_full_colour_layer_or_one_colour_for_both_does_not_fit(self):
    photo, _ = _layers()
    _, t, _ = _tinted_textures(_SIZE, _SIZE)
    unmixed, info = colour_unmixing.colour_plane_unmix((photo + t) / 2)
    self.assertGreater(info['off_plane_rms'], colour_unmixing.COLOUR_PLANE_RMS)
    self.assertFalse(colour_unmixing.colour_plane_fits(info, unmixed)[0])
    same = _tinted_textures(colours=((0.62, 1.0, 0.42),) * 2)[2]
    unmixed, info = colour_unmixing.colour_plane_unmix(np.round(same * 255) / 255)
    self.assertLess(info['spread'], colour_unmixing.COLOUR_PLANE_MIN_SPREAD)
    self.assertFalse(colour_unmixing.colour_plane_fits(info, unmixed)[0])

  def test_the_additive_run_keeps_the_colour_layers_where_they_fit(self):
    tmp = _tempdir(self)
    r, t, image = _tinted_textures()
    paths = _write(tmp, {'mix': image, 'gt1': r, 'gt2': t})
    config, workdir = _tiny(textures_config.get_config(), os.path.join(tmp, 'out'))
    config.image, config.transparency.gt_layer1, config.transparency.gt_layer2 = (
        paths['mix'],
        paths['gt1'],
        paths['gt2'],
    )
    metrics = transparency.run(config, workdir)
    self.assertEqual(metrics['layers_from'], 'colour')
    self.assertTrue(metrics['finalise']['colour']['model_fits'])
    self.assertGreater(metrics['mean_layer_psnr'], 35.0)
    # The model fits, so the generators are not trained ('fit' would discard their layers).
    self.assertEqual((metrics['steps'], set(metrics['finalise'])), (0, {'colour'}))
    self.assertEqual(metrics['best_recon_psnr'], metrics['recomposed_psnr'])
    for name in ('layer1', 'layer2', 'layer1_x2', 'layer2_x2', 'recomposed', 'summary'):
      self.assertTrue(os.path.isfile(os.path.join(workdir, f'{name}.png')), name)
    # 'always' trains them and still takes the unmixing.
    config.transparency.unmix_select = 'always'
    metrics = transparency.run(config, os.path.join(tmp, 'always'))
    self.assertEqual((metrics['layers_from'], set(metrics['finalise'])), ('colour', {'generators', 'colour'}))
    self.assertGreater(metrics['mean_layer_psnr'], metrics['finalise']['generators']['ground_truth']['mean_psnr'])

  def test_a_photo_over_a_one_colour_texture_fits_the_photo_texture_model(self):
    _, photo = _layers(48, 40)  # Colours that change across the image: a ramp and a disc.
    _, t, _ = _tinted_textures()
    image = np.round((photo + t) / 2 * 255) / 255
    layers, report, name = colour_unmixing.additive_unmixings(image)
    self.assertEqual(name, 'photo_texture')
    self.assertFalse(report['colour']['model_fits'])
    self.assertTrue(report['photo_texture']['model_fits'], report['photo_texture'])
    np.testing.assert_allclose(report['photo_texture']['texture_colour'], [0.62, 1.0, 0.42], atol=0.03)
    # The texture up to a constant (set by taking the photo's darkest pixels as black, which this one has not).
    texture = layers[name][1][..., 1]
    self.assertGreater(np.corrcoef(texture.ravel(), t[..., 1].ravel())[0, 1], 0.95)

  def test_colour_unmixing_needs_one_additive_mixture(self):
    config = transparency_config.get_config()
    config.transparency.unmix = 'colour'
    with self.assertRaisesRegex(config_check.ConfigError, 'additive'):
      tasks.validate(config)
    config = textures_config.get_config()
    config.transparency.unmix = 'refined'
    with self.assertRaisesRegex(config_check.ConfigError, 'two mixtures'):
      tasks.validate(config)


if __name__ == '__main__':
  absltest.main()

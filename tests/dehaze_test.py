"""Tests of the dehazing task: dark channel and airlight, recovery, passes, tiny end-to-end runs."""

import contextlib
import json
import os
import tempfile
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from configs import dehaze as dehaze_config
from ddip_jax import config_check
from ddip_jax import engine
from ddip_jax import haze_priors
from ddip_jax import image_io
from ddip_jax import models
from ddip_jax import outputs
from ddip_jax import resume
from ddip_jax import tasks
from ddip_jax import writing
from ddip_jax.tasks import dehaze

# Per-pixel minimum over RGB of the hand-made image of `_airlight_case`, and its
# dark channel with a 3x3 window clipped at the border, worked out by hand.
_PIXEL_MIN = np.array(
    [
        [0.1, 0.1, 0.1, 0.6, 0.7, 0.7],
        [0.1, 0.1, 0.1, 0.6, 0.8, 0.9],
        [0.1, 0.3, 0.3, 0.3, 0.3, 0.3],
        [0.1, 0.3, 0.3, 0.3, 0.3, 0.5],
    ],
    np.float32,
)
_DARK_3X3 = np.array(
    [
        [0.1, 0.1, 0.1, 0.1, 0.6, 0.7],
        [0.1, 0.1, 0.1, 0.1, 0.3, 0.3],
        [0.1, 0.1, 0.1, 0.1, 0.3, 0.3],
        [0.1, 0.1, 0.3, 0.3, 0.3, 0.3],
    ],
    np.float32,
)


def _airlight_case() -> np.ndarray:
  """A 4x6 image whose minimum channel is `_PIXEL_MIN`.

  The two brightest dark-channel pixels are (0, 5), dark 0.7, and (0, 4), dark
  0.6; their per-channel maximum is (0.95, 0.9, 0.85). The brightest pixel of
  the image, (1, 5), lies in a darker window and must not be picked.
  """
  image = _PIXEL_MIN[..., None] + np.array([0.0, 0.05, 0.1], np.float32)
  image[0, 5] = (0.95, 0.7, 0.8)
  image[0, 4] = (0.7, 0.9, 0.85)
  image[1, 5] = (0.99, 0.99, 0.9)
  return image


def _tempdir(test: absltest.TestCase) -> str:
  tmp = tempfile.TemporaryDirectory()
  test.addCleanup(tmp.cleanup)
  return tmp.name


class DarkChannelTest(parameterized.TestCase):

  def test_hand_computed_dark_channel_and_airlight(self):
    image = jnp.asarray(_airlight_case())
    np.testing.assert_allclose(haze_priors.dark_channel(image, patch=3), _DARK_3X3, rtol=1e-6)
    # int(24 * 0.09) = 2 pixels searched.
    np.testing.assert_allclose(
        haze_priors.estimate_airlight(image, patch=3, top_fraction=0.09), [0.95, 0.9, 0.85], rtol=1e-6
    )
    # One pixel: its colour.
    np.testing.assert_allclose(
        haze_priors.estimate_airlight(image, patch=3, top_fraction=0.01), [0.95, 0.7, 0.8], rtol=1e-6
    )

  def test_airlight_of_a_black_or_one_colour_image_is_positive(self):
    red = np.zeros((8, 8, 3), np.float32)
    red[..., 0] = 0.8
    np.testing.assert_allclose(
        haze_priors.estimate_airlight(jnp.asarray(red), patch=3), [0.8, 1 / 255, 1 / 255], rtol=1e-6
    )
    black = jnp.zeros((8, 8, 3))
    t = haze_priors.dark_channel_transmission(black, haze_priors.estimate_airlight(black, patch=3), patch=3, omega=0.95)
    np.testing.assert_array_equal(t, np.ones((8, 8)))

  @parameterized.parameters(((7, 9), 3), ((12, 5), 5), ((6, 6), 15))
  def test_dark_channel_matches_loops(self, shape, patch):
    image = np.random.default_rng(0).uniform(size=shape + (3,)).astype(np.float32)
    r = patch // 2
    want = np.array(
        [
            [image[max(i - r, 0) : i + r + 1, max(j - r, 0) : j + r + 1].min() for j in range(shape[1])]
            for i in range(shape[0])
        ]
    )
    np.testing.assert_array_equal(haze_priors.dark_channel(jnp.asarray(image), patch=patch), want)


class RecoveryTest(absltest.TestCase):

  def test_recover_formula_and_clipping(self):
    hazy = np.array([[[0.6] * 3, [0.9] * 3]], np.float32)
    t = np.array([[0.5, 0.25]], np.float32)
    # (0.6 - 0.5 * 0.8) / 0.5 = 0.4; (0.9 - 0.75 * 0.5) / 0.25 = 2.1 -> 1.
    got = haze_priors.recover(hazy, t, np.array([0.8, 0.8, 0.5], np.float32))
    np.testing.assert_allclose(got[0, 0], [0.4, 0.4, (0.6 - 0.25) / 0.5], rtol=1e-6)
    np.testing.assert_allclose(got[0, 1], [1.0, 1.0, 1.0])

  def test_transmission_is_clipped(self):
    t = np.array([[-0.2, 0.05, 0.5, 1.3]], np.float32)
    got = haze_priors.refine_transmission(t, np.zeros((1, 4, 3), np.float32), radius=0, eps=1e-4, t_min=0.1)
    np.testing.assert_allclose(got, [[0.1, 0.1, 0.5, 1.0]])

  def test_refinement_keeps_a_transmission_that_follows_the_guide(self):
    # t is an affine function of the guide, which the guided filter reproduces.
    guide = np.random.default_rng(1).uniform(size=(20, 24, 3)).astype(np.float32)
    t = 0.3 + 0.5 * guide.mean(axis=-1)
    got = haze_priors.refine_transmission(t, guide, radius=3, eps=1e-6, t_min=0.1, opencv_compat=False)
    np.testing.assert_allclose(got, t, atol=1e-3)

  def test_compose_passes(self):
    shape = (3, 4)

    def one(t, a):
      return dehaze.PassResult(
          np.zeros(shape + (3,)), None, np.full(shape, t, np.float32), np.asarray(a, np.float32), {}
      )

    t, airlight = dehaze.compose_passes([one(0.5, [0.8] * 3), one(0.6, [0.4] * 3)])
    np.testing.assert_allclose(t, 0.3, rtol=1e-6)
    # (1 - t) A = 0.5 * 0.8 + 0.5 * 0.4 * 0.4 = 0.48 over 1 - t = 0.7.
    np.testing.assert_allclose(airlight, 0.48 / 0.7, rtol=1e-5)
    t, airlight = dehaze.compose_passes([one(1.0, [0.8, 0.7, 0.6]), one(1.0, [0.4] * 3)])
    np.testing.assert_allclose(airlight[0, 0], [0.8, 0.7, 0.6])  # No haze: the first airlight.


class ProblemTest(absltest.TestCase):

  def test_learned_airlight_outputs_and_tie_term(self):
    config = _tiny_config(_tempdir(self), 1)
    config.dehaze.airlight_tie_steps = 5
    _, hazy = _scene(10, 14)
    airlight0 = np.array([0.8, 0.85, 0.9], np.float32)
    problem = dehaze.build_problem(config, hazy, airlight0, jax.random.key(0), learned_airlight=True)
    self.assertEqual(problem.inputs['airlight'].shape, (1, 10, 14, config.generator.input_depth))
    variables = models.init_generators(problem.generators, problem.inputs, jax.random.key(1))
    loss_fn = jax.jit(problem.stages[0].loss_fn)
    # Same key, so the same perturbations: the two losses differ by the tie term only.
    tied, (_, out, _) = loss_fn(*variables, jnp.int32(4), jax.random.key(2))
    free, _ = loss_fn(*variables, jnp.int32(5), jax.random.key(2))
    self.assertEqual(
        {n: o.shape for n, o in out.items()},
        {'clean': (1, 10, 14, 3), 'transmission': (1, 10, 14, 1), 'airlight': (1, 10, 14, 3)},
    )
    np.testing.assert_allclose(tied - free, np.mean((np.asarray(out['airlight']) - airlight0) ** 2), rtol=1e-4)

  def test_transmission_prior_term_applies_for_its_fraction_of_the_steps(self):
    config = _tiny_config(_tempdir(self), 1)
    config.num_steps = 10
    config.dehaze.transmission_prior_until = 0.5
    config.dehaze.transmission_prior_weight = 2.0
    _, hazy = _scene(10, 14)
    airlight0 = np.array([0.8, 0.85, 0.9], np.float32)
    t0 = np.asarray(
        haze_priors.dark_channel_transmission(jnp.asarray(hazy), jnp.asarray(airlight0), patch=3, omega=0.95)
    )
    problem = dehaze.build_problem(config, hazy, airlight0, jax.random.key(0), learned_airlight=False, transmission0=t0)
    variables = models.init_generators(problem.generators, problem.inputs, jax.random.key(1))
    loss_fn = jax.jit(problem.stages[0].loss_fn)
    tied, (_, out, _) = loss_fn(*variables, jnp.int32(4), jax.random.key(2))  # 4 < round(0.5 * 10).
    free, _ = loss_fn(*variables, jnp.int32(5), jax.random.key(2))
    want = 2.0 * np.mean((np.asarray(out['transmission'])[0, ..., 0] - t0) ** 2)
    np.testing.assert_allclose(tied - free, want, rtol=1e-4)

  def test_dark_channel_transmission_formula(self):
    image = jnp.asarray(_airlight_case())
    airlight = jnp.asarray([0.9, 0.8, 0.95])
    want = 1.0 - 0.9 * np.asarray(haze_priors.dark_channel(image / airlight, patch=3))
    np.testing.assert_allclose(
        haze_priors.dark_channel_transmission(image, airlight, patch=3, omega=0.9), want, rtol=1e-6
    )
    # A haze-free black pixel in every window: t = 1.
    np.testing.assert_allclose(
        haze_priors.dark_channel_transmission(jnp.zeros((5, 5, 3)), airlight, patch=3, omega=0.95), np.ones((5, 5))
    )


class ValidateTest(absltest.TestCase):

  def test_rejects_bad_fields(self):
    for field, value, message in (
        ('passes', 0, 'at least 1'),
        ('airlight', 'sky', 'unknown mode'),
        ('dcp_patch', 4, 'odd'),
        ('t_min', 0.0, r'\(0, 1\)'),
        ('guided_eps', 0.0, 'positive'),
        ('transmission_prior', 'fog', 'unknown prior'),
        ('transmission_prior_until', 1.5, r'\[0, 1\]'),
        ('dcp_omega', 0.0, r'\(0, 1\]'),
        ('transmission_residual', 1.5, r'\[0, 1\]'),
    ):
      config = dehaze_config.get_config()
      config.dehaze[field] = value
      with self.assertRaisesRegex(config_check.ConfigError, message):
        tasks.validate(config)
    config = dehaze_config.get_config()
    config.dehaze.airlight = 'given'
    with self.assertRaisesRegex(config_check.ConfigError, 'airlight_rgb'):
      tasks.validate(config)
    config.dehaze.airlight_rgb = (0.9, 0.9, 0.9)
    tasks.validate(config)

  def test_default_config_is_valid(self):
    tasks.validate(dehaze_config.get_config())


def _scene(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
  """A clean image (stripes and a disc) and its hazy version (depth grows upwards)."""
  yy, xx = np.mgrid[:height, :width].astype(np.float32)
  disc = ((yy - height * 0.6) ** 2 + (xx - width / 3) ** 2 < (height / 4) ** 2).astype(np.float32)
  clean = np.stack([0.2 + 0.6 * disc, 0.4 + 0.3 * np.sin(xx / 3), 0.3 + 0.2 * (xx / width)], -1)
  t = np.exp(-1.2 * (1 - yy / height))[..., None]
  return clean, t * clean + (1 - t) * np.array([0.85, 0.87, 0.9])


def _tiny_config(workdir: str, passes: int):
  """One-scale generators and few steps; a 40x56 input downscaled to 23x32 and brought back."""
  clean, hazy = _scene(40, 56)
  paths = {name: os.path.join(workdir, f'{name}.png') for name in ('clean', 'hazy')}
  writing.save_image(paths['clean'], clean)
  writing.save_image(paths['hazy'], hazy)
  config = dehaze_config.get_config()
  config.image = paths['hazy']
  config.dehaze.gt_clean = paths['clean']
  config.dehaze.passes = passes
  config.max_side = 32
  config.generator.channels_down = (4,)
  config.generator.channels_up = (4,)
  config.generator.channels_skip = (2,)
  config.generator.input_depth = 4
  config.num_steps = 12
  config.learning_rate = 1e-2
  config.progress = False
  config.loop.strategy = 'step'
  config.loop.check_every = 1
  return config


def _run_recording_losses(config, workdir):
  """dehaze.run, also returning each pass's loss at every check (every step here)."""
  seen = []
  optimize = engine.optimize

  def recording(*args, **kwargs):
    seen.append([])
    return optimize(*args, **kwargs, on_check=lambda _, state: seen[-1].append(float(state.loss)))

  with mock.patch.object(dehaze.engine, 'optimize', recording):
    metrics = dehaze.run(config, workdir)
  return metrics, seen


class EndToEndTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls._tmp = tempfile.TemporaryDirectory()
    cls.runs = {}
    for passes in (1, 2):
      config = _tiny_config(cls._tmp.name, passes)
      workdir = os.path.join(cls._tmp.name, f'out{passes}')
      cls.runs[passes] = (config, workdir, *_run_recording_losses(config, workdir))

  @classmethod
  def tearDownClass(cls):
    cls._tmp.cleanup()
    super().tearDownClass()

  def test_one_pass_writes_everything_at_full_size(self):
    config, workdir, metrics, seen = self.runs[1]
    for name in ('dehazed', 'transmission', 'airlight', 'summary'):
      self.assertTrue(os.path.isfile(os.path.join(workdir, f'{name}.png')), name)
    self.assertFalse(os.path.exists(os.path.join(workdir, 'pass1_dehazed.png')))
    self.assertEqual(image_io.load_image(os.path.join(workdir, 'dehazed.png')).shape, (40, 56, 3))
    self.assertEqual(image_io.load_image(os.path.join(workdir, 'transmission.png')).shape, (40, 56, 3))
    with open(os.path.join(workdir, 'metrics.json')) as f:
      written = json.load(f)
    self.assertEqual(written['status'], 'ok')
    self.assertEqual(written['working_shape'], [23, 32])
    self.assertEqual(list(written['passes']), ['pass1'])
    self.assertEqual(written['passes']['pass1']['stages']['dehaze']['steps'], config.num_steps)
    self.assertFalse(written['passes']['pass1']['airlight_is_map'])
    self.assertAlmostEqual(written['psnr'], metrics['psnr'], places=5)
    self.assertBetween(written['ssim'], -1.0, 1.0)
    self.assertLen(written['airlight'], 3)
    self.assertLen(seen, 1)
    self.assertLen(seen[0], config.num_steps)
    self.assertLess(np.mean(seen[0][-3:]), 0.8 * seen[0][0])

  def test_two_passes_write_every_pass_and_the_first_is_the_one_pass_run(self):
    config, workdir, metrics, seen = self.runs[2]
    for name in (
        'dehazed',
        'transmission',
        'airlight',
        'summary',
        'pass1_dehazed',
        'pass1_transmission',
        'pass1_airlight',
        'pass2_dehazed',
        'pass2_transmission',
        'pass2_airlight',
    ):
      self.assertTrue(os.path.isfile(os.path.join(workdir, f'{name}.png')), name)
    self.assertEqual(image_io.load_image(os.path.join(workdir, 'airlight.png')).shape, (40, 56, 3))
    first, second = metrics['passes']['pass1'], metrics['passes']['pass2']
    self.assertEqual(second['airlight_mode'], 'learned')
    self.assertTrue(second['airlight_is_map'])
    np.testing.assert_allclose(second['airlight_init'], first['airlight'], rtol=1e-6)
    one_pass = self.runs[1][2]
    self.assertEqual(first['psnr'], one_pass['psnr'])
    self.assertEqual(first['best_recon_psnr'], one_pass['best_recon_psnr'])
    self.assertEqual(metrics['psnr'], second['psnr'])
    self.assertEmpty([f for f in os.listdir(workdir) if f.startswith('checkpoint')])
    self.assertLen(seen, 2)
    for losses in seen:
      self.assertLess(np.mean(losses[-3:]), 0.8 * losses[0])

  def test_interrupted_in_the_second_pass_resumes_to_the_same_outputs(self):
    config, reference, want, _ = self.runs[2]
    workdir = os.path.join(self._tmp.name, 'interrupted')
    polls = []

    @contextlib.contextmanager
    def sigterm_at_step_4_of_pass_2():
      # The engine polls once per step here; pass 1 has num_steps of them.
      yield lambda: 'SIGTERM' if polls.append(None) or len(polls) >= config.num_steps + 4 else None

    with mock.patch.object(resume, 'stop_on_signals', sigterm_at_step_4_of_pass_2):
      with self.assertRaises(engine.Interrupted):
        dehaze.run(config, workdir)
    with open(os.path.join(workdir, 'metrics.json')) as f:
      self.assertStartsWith(json.load(f)['status'], 'stopped in pass 2')
    self.assertCountEqual(
        [f for f in os.listdir(workdir) if f.startswith('checkpoint')],
        ['checkpoint_pass1.msgpack', 'checkpoint_pass2.msgpack'],
    )
    got = dehaze.run(config, workdir)
    self.assertEqual(outputs.without_timings(got), outputs.without_timings(want))
    for name in ('dehazed', 'transmission', 'airlight'):
      with (
          open(os.path.join(workdir, f'{name}.png'), 'rb') as a,
          open(os.path.join(reference, f'{name}.png'), 'rb') as b,
      ):
        self.assertEqual(a.read(), b.read(), name)

  def test_a_failed_second_pass_still_writes_the_first(self):
    config = _tiny_config(_tempdir(self), 2)
    workdir = os.path.join(os.path.dirname(config.image), 'out')
    calls = []

    def failing_second(problem, **kwargs):
      calls.append((problem, kwargs['checkpoint'].path))
      if len(calls) == 1:  # A finished first pass (made up, to skip the optimisation).
        best = {
            'clean': np.full((1, 23, 32, 3), 0.5, np.float32),
            'transmission': np.full((1, 23, 32, 1), 0.7, np.float32),
        }
        return engine.Result(None, None, best, 20.0, 3, {'stages': {}})
      err = engine.NumericalError('loss is nan at step 1 of stage dehaze')
      err.result = engine.Result(None, None, {}, -np.inf, -1, {'stages': {}})
      raise err

    with mock.patch.object(dehaze.engine, 'optimize', failing_second):
      with self.assertRaisesRegex(engine.NumericalError, 'nan'):
        dehaze.run(config, workdir)
    with open(os.path.join(workdir, 'metrics.json')) as f:
      written = json.load(f)
    self.assertStartsWith(written['status'], 'stopped in pass 2')
    self.assertEqual(written['passes_run'], 1)
    self.assertEqual(written['passes']['pass1']['best_step'], 3)
    self.assertSetEqual(set(calls[1][0].generators), {'clean', 'transmission', 'airlight'})
    self.assertEqual(
        [os.path.basename(path) for _, path in calls], ['checkpoint_pass1.msgpack', 'checkpoint_pass2.msgpack']
    )
    self.assertTrue(os.path.isfile(os.path.join(workdir, 'dehazed.png')))

  def test_a_black_image_runs_to_the_end(self):
    config = _tiny_config(_tempdir(self), 1)
    writing.save_image(config.image, np.zeros((40, 56, 3), np.float32))
    config.dehaze.gt_clean = None
    metrics = dehaze.run(config, os.path.join(os.path.dirname(config.image), 'out'))
    self.assertEqual(metrics['status'], 'ok')
    self.assertTrue(np.isfinite(metrics['best_recon_psnr']))

  def test_ground_truth_of_another_size_is_refused(self):
    config = _tiny_config(_tempdir(self), 1)
    writing.save_image(config.dehaze.gt_clean, np.zeros((8, 8, 3), np.float32))
    with self.assertRaisesRegex(image_io.InputError, 'expected 56x40'):
      dehaze.run(config, os.path.join(os.path.dirname(config.image), 'out'))


class HazePriorsTest(absltest.TestCase):

  def test_min_filter_matches_loops(self):
    x = np.random.default_rng(0).random((7, 9)).astype(np.float32)
    want = np.array([[x[max(0, i - 2) : i + 3, max(0, j - 2) : j + 3].min() for j in range(9)] for i in range(7)])
    np.testing.assert_array_equal(haze_priors.min_filter(x, 5), want)

  def test_quadtree_airlight_follows_the_bright_smooth_quadrant_not_a_white_speck(self):
    image = np.full((32, 32, 3), 0.2, np.float32)
    image[:16, 16:] = (0.8, 0.85, 0.9)  # Haze-like: bright and flat, top right.
    image[20:23, 4:7] = 1.0  # A small white object elsewhere (He et al.'s rule would pick it).
    image[0, 31] = (0.82, 0.9, 0.95)  # In the chosen quadrant, the pixel nearest to white.
    np.testing.assert_allclose(haze_priors.quadtree_airlight(image, min_side=4), [0.82, 0.9, 0.95], rtol=1e-6)
    np.testing.assert_allclose(haze_priors.quadtree_airlight(np.zeros((16, 16, 3), np.float32)), [1 / 255] * 3)

  def test_cap_depth_is_zhus_linear_model_min_filtered(self):
    image = np.random.default_rng(1).random((6, 8, 3)).astype(np.float32)
    value, low = image.max(-1), image.min(-1)
    raw = 0.121779 + 0.959710 * value - 0.780245 * (value - low) / value
    np.testing.assert_allclose(haze_priors.cap_depth(image, patch=1), raw, rtol=1e-5)
    np.testing.assert_allclose(haze_priors.cap_depth(image, patch=3), haze_priors.min_filter(raw, 3), rtol=1e-5)

  def test_colour_attenuation_dehaze_inverts_its_own_model(self):
    clean, hazy = _scene(24, 32)
    dehazed, t, airlight = haze_priors.colour_attenuation_dehaze(hazy.astype(np.float32), radius=4)
    self.assertEqual(dehazed.shape, (24, 32, 3))
    self.assertTrue(np.all((t >= 0.1) & (t <= 0.9)))
    want = np.clip((hazy - airlight) / t[..., None] + airlight, 0, 1)
    np.testing.assert_allclose(dehazed, want, atol=1e-5)
    # It removes haze: closer to the clean image than the input is.
    self.assertLess(np.mean((dehazed - clean) ** 2), np.mean((hazy - clean) ** 2))

  def test_radiance_bound_is_the_least_t_keeping_j_at_most_one(self):
    airlight = np.array([0.5, 0.5, 1.0], np.float32)
    image = np.full((7, 9, 3), 0.3, np.float32)
    image[3, 3] = (0.75, 0.3, 1.0)  # Red above A: t >= 0.25 / 0.5; blue at A = 1 bounds nothing.
    image[3, 5] = (0.3, 0.6, 0.3)  # Green: t >= 0.1 / 0.5; the gap at (3, 4) is closed between the two.
    bound = haze_priors.radiance_bound_transmission(image, airlight, patch=1)
    want = np.zeros((7, 9), np.float32)
    want[3, 3], want[3, 5] = 0.5, 0.2
    np.testing.assert_allclose(bound, want, atol=1e-6)
    closed = haze_priors.radiance_bound_transmission(image, airlight, patch=3)
    want[3, 4] = 0.2
    np.testing.assert_allclose(closed, want, atol=1e-6)
    # Recovered with t at the bound, J stays at or below 1 (up to the clip).
    j = (image - airlight) / np.maximum(closed, 1e-3)[..., None] + airlight
    self.assertLessEqual(float(j[closed > 0].max()), 1.0 + 1e-5)

  def test_the_task_raises_the_dark_channel_t_to_the_radiance_bound(self):
    config = dehaze_config.get_config()
    _, hazy = _scene(16, 20)
    hazy = hazy.astype(np.float32)
    airlight = np.array([0.6, 0.6, 0.6], np.float32)
    dz = config.dehaze
    plain, bounded = (
        haze_priors.prior_transmission(hazy, airlight, patch=dz.dcp_patch, omega=dz.dcp_omega, radiance_bound=bound)
        for bound in (False, True)
    )
    bound = haze_priors.radiance_bound_transmission(hazy, airlight, patch=config.dehaze.dcp_patch)
    np.testing.assert_allclose(bounded, np.maximum(plain, bound), atol=1e-6)
    self.assertGreater(float(np.abs(bounded - plain).max()), 0.05)  # The bright top (I > A) is raised.


class ResidualTransmissionTest(absltest.TestCase):

  def test_t_is_the_prior_plus_a_bounded_correction(self):
    config = _tiny_config(_tempdir(self), 1)
    config.dehaze.transmission_residual = 0.15
    _, hazy = _scene(10, 14)
    t0 = np.linspace(0.3, 0.9, 10 * 14, dtype=np.float32).reshape(10, 14)
    problem = dehaze.build_problem(
        config,
        hazy,
        np.array([0.8, 0.85, 0.9], np.float32),
        jax.random.key(0),
        learned_airlight=False,
        transmission0=t0,
    )
    variables = models.init_generators(problem.generators, problem.inputs, jax.random.key(1))
    _, (_, out, _) = jax.jit(problem.stages[0].loss_fn)(*variables, jnp.int32(0), jax.random.key(2))
    t = np.asarray(out['transmission'])[0, ..., 0]
    self.assertLessEqual(np.abs(t - t0).max(), 0.15 + 1e-6)
    self.assertGreater(np.abs(t - t0).max(), 0.0)

  def test_finalize_adds_the_upsampled_correction_to_the_full_size_prior(self):
    _, hazy = _scene(20, 28)
    full_prior = np.linspace(0.2, 1.0, 20 * 28, dtype=np.float32).reshape(20, 28)
    work_prior = image_io.resize_image(full_prior, (10, 14))
    best = {'transmission': (work_prior + 0.05)[None, ..., None], 'clean': np.zeros((1, 10, 14, 3))}
    result = engine.Result(params={}, batch_stats={}, best=best, best_psnr=30.0, best_step=3, metrics={})
    done = dehaze.finalize_pass(
        result,
        hazy,
        np.array([0.8, 0.85, 0.9], np.float32),
        radius=2,
        dz=dehaze_config.get_config().dehaze,
        facts={},
        prior=(full_prior, work_prior),
    )
    np.testing.assert_allclose(done.transmission, np.clip(full_prior + 0.05, 0.1, 1.0), atol=1e-5)

  def test_a_wide_photo_keeps_its_short_side_for_the_generators(self):
    config = dehaze_config.get_config()
    config.image, config.dehaze.gt_clean = '', None
    config.num_steps, config.progress = 2, False
    _, hazy = _scene(40, 150)  # 64 px on the long side would leave 17 rows, under the generators' 32.
    result = dehaze.decompose(config, dehaze.Inputs(image=hazy.astype(np.float32)))
    self.assertEqual(result.metrics['working_shape'], [32, 120])
    self.assertEqual(result.images['dehazed'].shape, (40, 150, 3))


if __name__ == '__main__':
  absltest.main()

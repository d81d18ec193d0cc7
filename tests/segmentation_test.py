"""Tests of ddip_jax.tasks.segmentation: one tiny end-to-end run and its helpers."""

import json
import os
import signal
import tempfile
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from configs import default
from ddip_jax import checkpoint_io
from ddip_jax import config_check
from ddip_jax import engine
from ddip_jax import fgbg
from ddip_jax import filters
from ddip_jax import image_io
from ddip_jax import metrics as metrics_lib
from ddip_jax import models
from ddip_jax import outputs
from ddip_jax import runner
from ddip_jax import tasks
from ddip_jax import writing
from ddip_jax.tasks import segmentation

_H, _W = 24, 32


def _synthetic() -> tuple[np.ndarray, np.ndarray]:
  """A (24, 32) image: textured green background, red ellipse; and the ellipse mask."""
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[0:_H, 0:_W]
  img = np.empty((_H, _W, 3), np.float32)
  img[...] = [0.35, 0.55, 0.3]
  img += 0.05 * np.sin(xx * 0.9 + yy * 0.4)[..., None] + rng.normal(0, 0.02, (_H, _W, 1))
  blob = ((yy - _H / 2) / (_H / 4)) ** 2 + ((xx - _W / 2) / (_W / 5)) ** 2 <= 1
  img[blob] = [0.85, 0.15, 0.2]
  return np.clip(img, 0, 1), blob.astype(np.float32)


def _tempdir(test: absltest.TestCase) -> str:
  tmp = tempfile.TemporaryDirectory()
  test.addCleanup(tmp.cleanup)
  return tmp.name


class _Recorder:
  """on_check callback: (stage, step, loss) as host values."""

  def __init__(self):
    self.records = []

  def __call__(self, stage, state):
    self.records.append((stage, int(state.step), float(state.loss)))

  def losses(self, stage):
    return [loss for name, _, loss in self.records if name == stage]


def _run_with_on_check(config, workdir, on_check):
  """segmentation.run with `on_check` passed to engine.optimize."""
  real_optimize = engine.optimize
  with mock.patch.object(engine, 'optimize', lambda problem, **kw: real_optimize(problem, on_check=on_check, **kw)):
    return segmentation.run(config, workdir)


def _end_to_end(tmp: str):
  """Runs the task once on the synthetic image, with inputs and outputs under `tmp`.

  `engine.optimize` is wrapped to record the losses at every check point.

  Returns:
    (config, workdir, the metrics run() returned, the loss recorder).
  """
  image, gt = _synthetic()
  config = default.get_config()
  config.image = os.path.join(tmp, 'in', 'image.png')
  config.gt_mask = os.path.join(tmp, 'in', 'gt.png')
  writing.save_image(config.image, image)
  writing.save_image(config.gt_mask, gt)
  config.max_side = 16  # Works at 12x16, results come back at 24x32.
  config.num_steps = 10
  config.segmentation.hint_steps = 5
  config.early_stop_psnr = 0.0  # Off: the step counts are exact.
  config.learning_rate = 0.01
  config.generator.channels_down = config.generator.channels_up = (4, 8)
  config.generator.channels_skip = (0, 0)
  config.loop.strategy = 'step'  # The smallest compilation; engine_test covers the others.
  config.loop.check_every = 1
  config.progress = False
  tasks.validate(config)
  workdir = os.path.join(tmp, 'out')
  config.loop.checkpoint_every = 4
  recorder = _Recorder()
  returned = _run_with_on_check(config, workdir, recorder)
  return config, workdir, returned, recorder


class EndToEndTest(absltest.TestCase):
  """One run of the task (about the cost of two compilations), checked several ways."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls._tmp = tempfile.TemporaryDirectory()
    cls.config, cls.workdir, cls.returned, cls.recorder = _end_to_end(cls._tmp.name)

  @classmethod
  def tearDownClass(cls):
    cls._tmp.cleanup()
    super().tearDownClass()

  def test_writes_every_output(self):
    workdir = self.workdir
    layers = ['fg', 'bg', 'mask', 'mask_raw', 'mask_binary', 'recomposed', 'cutout', 'fg_hint', 'bg_hint']
    self.assertCountEqual(os.listdir(workdir), [f'{n}.png' for n in layers] + ['summary.png', 'metrics.json'])
    for name in layers:  # Full resolution, although the work was done at 12x16.
      img = image_io.load_image(os.path.join(workdir, f'{name}.png'))
      self.assertEqual(img.shape, (_H, _W, 3), msg=name)
    binary = image_io.load_mask(os.path.join(workdir, 'mask_binary.png'), shape=(_H, _W))
    self.assertTrue(np.isin(binary, (0.0, 1.0)).all())
    summary = image_io.load_image(os.path.join(workdir, 'summary.png'))
    self.assertGreater(summary.shape[1], 4 * summary.shape[0])  # Five panels side by side.

  def test_metrics(self):
    config, workdir, returned = self.config, self.workdir, self.returned
    with open(os.path.join(workdir, 'metrics.json')) as f:
      metrics = json.load(f)
    for key, value in returned.items():  # run() returns what it wrote (plus the record's extras).
      self.assertEqual(metrics[key], json.loads(json.dumps(value)), msg=key)
    self.assertEqual(metrics['status'], 'ok')
    self.assertBetween(metrics['iou'], 0.0, 1.0)
    self.assertBetween(metrics['iou_raw_mask'], 0.0, 1.0)
    self.assertBetween(metrics['iou_whole_mask'], 0.0, 1.0)
    self.assertEqual(metrics['seed'], 0)
    self.assertEqual(metrics['config'], json.loads(json.dumps(config.to_dict())))
    self.assertEqual(metrics['image_shape'], [_H, _W])
    self.assertEqual(metrics['working_shape'], [12, 16])
    self.assertEqual(metrics['stages']['step1_hints']['steps'], 5)
    self.assertEqual(metrics['stages']['step2_decompose']['steps'], 10)
    self.assertFalse(metrics['stages']['step2_decompose']['stopped_early'])
    self.assertBetween(metrics['best_step'], 0, 9)
    self.assertEqual(metrics['hints']['fg_hint']['source'], 'auto:object')
    self.assertEqual(metrics['hints']['grown']['method'], 'grabcut')  # grow_hints 'auto' for automatic hints.
    self.assertBetween(metrics['hints']['grown']['fg_fraction'], 0.01, 0.99)
    self.assertIn('environment', metrics)

  def test_losses_go_down(self):
    returned, recorder = self.returned, self.recorder
    self.assertEqual([s for n, s, _ in recorder.records if n == 'step1_hints'], [1, 2, 3, 4, 5])
    for stage in ('step1_hints', 'step2_decompose'):
      stage_losses = recorder.losses(stage)
      self.assertTrue(all(np.isfinite(stage_losses)), msg=stage)
      self.assertLess(stage_losses[-1], 0.85 * stage_losses[0], msg=stage)
    self.assertEqual(returned['stages']['step2_decompose']['final_loss'], recorder.losses('step2_decompose')[-1])

  def test_interrupted_run_resumes_to_identical_outputs(self):
    workdir = os.path.join(self._tmp.name, 'interrupted')

    def ctrl_c(stage, state):  # A real Ctrl-C during step 2; the run stops after the next step.
      if (stage, int(state.step)) == ('step2_decompose', 6):
        os.kill(os.getpid(), signal.SIGINT)

    with self.assertRaisesRegex(engine.Interrupted, r"\(SIGINT\) at step 7 of stage 'step2_decompose'"):
      _run_with_on_check(self.config, workdir, ctrl_c)
    # The best result so far is written, and the Ctrl-C handler is gone again.
    self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)
    with open(os.path.join(workdir, 'metrics.json')) as f:
      stopped = json.load(f)
    self.assertStartsWith(stopped['status'], 'stopped: interrupted (SIGINT) at step 7')
    self.assertEqual(stopped['stages']['step2_decompose']['steps'], 7)
    self.assertTrue(os.path.isfile(os.path.join(workdir, 'fg.png')))
    self.assertEqual(checkpoint_io.load_checkpoint(os.path.join(workdir, runner.CHECKPOINT))['done'], 7)
    # The same call again resumes and ends exactly as the uninterrupted run.
    resumed = segmentation.run(self.config, workdir)
    self.assertEqual(outputs.without_timings(resumed), outputs.without_timings(self.returned))
    names = sorted(n for n in os.listdir(self.workdir) if n.endswith('.png'))
    self.assertCountEqual([n for n in os.listdir(workdir) if n.endswith('.png')], names)
    for name in names:
      with open(os.path.join(workdir, name), 'rb') as a, open(os.path.join(self.workdir, name), 'rb') as b:
        self.assertEqual(a.read(), b.read(), msg=name)
    with open(os.path.join(workdir, 'metrics.json')) as a, open(os.path.join(self.workdir, 'metrics.json')) as b:
      self.assertEqual(outputs.without_timings(json.load(a)), outputs.without_timings(json.load(b)))


class BadInputTest(parameterized.TestCase):

  @parameterized.parameters('gt_mask', 'fg_hint', 'bg_hint')
  def test_bad_paths_fail_before_the_optimisation(self, field):
    tmp = _tempdir(self)
    config = default.get_config()
    config.image = os.path.join(tmp, 'image.png')
    writing.save_image(config.image, _synthetic()[0])
    missing = os.path.join(tmp, f'no_{field}.png')
    config[field] = missing
    with mock.patch.object(engine, 'optimize', side_effect=AssertionError('optimize was called')):
      with self.assertRaisesRegex(image_io.InputError, 'no such file') as ctx:
        segmentation.run(config, os.path.join(tmp, 'out'))
    self.assertIn(missing, str(ctx.exception))
    self.assertFalse(os.path.exists(os.path.join(tmp, 'out')))


class HelpersTest(parameterized.TestCase):

  @parameterized.parameters((13, 19), (8, 9), (30, 8))
  def test_any_sides_give_layers_of_the_image_size(self, height, width):
    # 3 scales: the generators work on a canvas rounded up to multiples of 8.
    config = default.get_config()
    image, hint = np.zeros((height, width, 3), np.float32), np.zeros((height, width), np.float32)
    problem = segmentation.build_problem(config, image, hint, hint, jax.random.key(0))
    params, stats = jax.eval_shape(
        lambda: models.init_generators(problem.generators, problem.inputs, jax.random.key(1))
    )
    for stage in problem.stages:
      outputs = jax.eval_shape(stage.loss_fn, params, stats, jnp.int32(0), jax.random.key(2), stage.data)[1][1]
      self.assertEqual(
          {n: o.shape for n, o in outputs.items()},
          {'fg': (1, height, width, 3), 'bg': (1, height, width, 3), 'mask': (1, height, width, 1)},
      )

  def test_images_smaller_than_the_generators_are_refused(self):
    tmp = _tempdir(self)
    config = default.get_config()
    config.image = os.path.join(tmp, 'tiny.png')
    writing.save_image(config.image, np.zeros((7, 30, 3), np.float32))
    with mock.patch.object(engine, 'optimize', side_effect=AssertionError('optimize was called')):
      with self.assertRaisesRegex(image_io.InputError, 'is 30x7: too small, .* at least 8 pixels'):
        segmentation.run(config, os.path.join(tmp, 'out'))

  @parameterized.parameters(
      (0, 4000, 0.0),
      (99, 4000, 0.0),
      (250, 4000, 0.002),
      (999, 4000, 0.009),
      (1000, 4000, 0.001),
      (1500, 4000, 0.001),
      (3999, 4000, 0.0),  # The last step is not perturbed.
      (9, 10, 0.0),
  )
  def test_perturbation_sigma(self, step, num_steps, expected):
    sigma = models.perturbation_sigma(jnp.int32(step), num_steps, 0.001)
    self.assertEqual(sigma.dtype, jnp.float32)
    self.assertAlmostEqual(float(sigma), expected, places=7)

  def test_refine_mask_radius_zero_is_identity(self):
    rng = np.random.default_rng(0)
    mask = rng.random((9, 13)).astype(np.float32)
    guide = rng.random((9, 13, 3)).astype(np.float32)
    np.testing.assert_array_equal(fgbg.refine_mask(mask, guide, radius_fraction=0.0, eps=1e-4), mask)
    # round(0.03 * 13) = 0: also off.
    np.testing.assert_array_equal(fgbg.refine_mask(mask, guide, radius_fraction=0.03, eps=1e-4), mask)
    refined = fgbg.refine_mask(mask, guide, radius_fraction=0.2, eps=1e-4)
    self.assertEqual(refined.shape, mask.shape)
    self.assertFalse(np.array_equal(refined, mask))
    self.assertGreaterEqual(refined.min(), 0.0)
    self.assertLessEqual(refined.max(), 1.0)

  def test_refine_mask_follows_guide_edges(self):
    # A mask edge along a colour edge of the guide survives the guided filter.
    rng = np.random.default_rng(1)
    guide = np.where(np.arange(16)[None, :, None] < 8, [0.2, 0.6, 0.3], [0.9, 0.2, 0.1])
    guide = np.clip(guide + rng.normal(0, 0.01, (12, 16, 3)), 0, 1).astype(np.float32)
    mask = np.zeros((12, 16), np.float32)
    mask[:, 8:] = 1.0
    refined = fgbg.refine_mask(mask, guide, radius_fraction=0.2, eps=1e-4)
    np.testing.assert_allclose(refined, mask, atol=0.05)
    # The radius is round(0.2 * 16) = 3 pixels.
    for radius, same in ((3, True), (2, False)):
      direct = filters.guided_filter(guide, mask, radius=radius, eps=1e-4)
      self.assertEqual(np.allclose(refined, np.clip(direct, 0, 1), atol=1e-6), same)

  @parameterized.parameters(
      ([[1, 1, 0, 0]], [[1, 0, 1, 0]], 1 / 3),
      ([[1, 1, 0, 0]], [[1, 1, 0, 0]], 1.0),
      ([[1, 0, 0, 0]], [[0, 1, 0, 0]], 0.0),
      ([[0, 0], [0, 0]], [[0, 0], [0, 0]], 1.0),  # Both empty: a perfect match.
      ([[0.6, 0.5, 0.9]], [[1.0, 1.0, 0.0]], 1 / 3),  # Thresholded at > 0.5.
  )
  def test_iou(self, pred, target, expected):
    self.assertAlmostEqual(metrics_lib.iou(np.array(pred), np.array(target)), expected)

  def test_keep_hinted_components(self):
    binary = np.array([[1, 1, 0, 0, 1], [1, 0, 0, 0, 1], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]], np.float32)
    hint = np.zeros_like(binary)
    hint[1, 0] = 1.0  # Touches the top-left region only (4-connectivity: (2, 2) is separate).
    expected = np.zeros_like(binary)
    expected[0, :2] = expected[1, 0] = 1.0
    np.testing.assert_array_equal(fgbg.keep_hinted_components(binary, hint), expected)
    hint[3, 4] = 1.0  # A hint pixel outside every region keeps nothing more.
    np.testing.assert_array_equal(fgbg.keep_hinted_components(binary, hint), expected)
    hint[0, 4] = 1.0
    expected[:2, 4] = 1.0
    np.testing.assert_array_equal(fgbg.keep_hinted_components(binary, hint), expected)
    # An empty hint (e.g. auto_hints='border') keeps the mask whole.
    np.testing.assert_array_equal(fgbg.keep_hinted_components(binary, np.zeros_like(binary)), binary)

  def test_enforced_hints_keep_thin_parts_and_drop_clutter(self):
    h, w = 32, 48
    full = np.full((h, w, 3), 0.5, np.float32)
    mask = np.zeros((h, w, 1), np.float32)
    mask[8:24, 8:24] = 1.0  # The body ...
    mask[2:6, 36:44] = 1.0  # ... and clutter the mask took in.
    leg = np.zeros((h, w), np.float32)
    leg[16, 24:40] = 1.0  # A 1-px leg: the guided filter erases it.
    fg_hint = np.maximum(leg, np.pad(np.ones((8, 8), np.float32), ((12, 12), (12, 28))))
    bg_hint = np.zeros((h, w), np.float32)
    bg_hint[:7, 30:] = 1.0
    best = {'fg': np.zeros((h, w, 3), np.float32), 'bg': np.zeros((h, w, 3), np.float32), 'mask': mask}
    seg = default.get_config().segmentation
    plain = fgbg.full_size_layers(full, best, fg_hint, seg)
    self.assertFalse(plain['mask_binary'][16, 30:40].any())  # The leg is lost ...
    kept = fgbg.full_size_layers(full, best, fg_hint, seg, (fg_hint, bg_hint))
    self.assertTrue(kept['mask_binary'][16, 24:40].all())  # ... unless the hints are enforced,
    self.assertFalse(kept['mask_binary'][:7, 30:].any())  # which also drops the clutter,
    np.testing.assert_array_equal(kept['mask_binary'][12:20, 12:20], 1.0)  # and keeps the hinted body.
    seg.respect_hints = False
    off = fgbg.full_size_layers(full, best, fg_hint, seg, (fg_hint, bg_hint))
    np.testing.assert_array_equal(off['mask_binary'], plain['mask_binary'])

  @parameterized.parameters(
      ('threshold', 1.5, 'segmentation.threshold'),
      ('grow_hints', 'magic', 'segmentation.grow_hints'),
      ('grow_margin', 0.6, 'segmentation.grow_margin'),
      ('hint_steps', -1, 'segmentation.hint_steps'),
      ('guided_eps', 0.0, 'segmentation.guided_eps'),
      ('auto_hints', 'magic', 'segmentation.auto_hints'),
      ('user_learning_rate', -1e-3, 'segmentation.user_learning_rate'),
  )
  def test_validate(self, field, value, message):
    config = default.get_config()
    config.image = 'x.png'
    tasks.validate(config)
    config.segmentation[field] = value
    with self.assertRaisesRegex(config_check.ConfigError, message):
      tasks.validate(config)

  def test_schedule_with_a_hint_file(self):
    config = default.get_config()
    config.image = 'x.png'
    automatic = segmentation.with_schedule(config)
    self.assertIs(automatic, config)  # No hint file: the default schedule and rate.
    config.fg_hint = 'fg.png'
    config.segmentation.user_learning_rate = 5e-4
    hinted = segmentation.with_schedule(config)
    seg = config.segmentation
    self.assertEqual(
        (hinted.segmentation.hint_steps, hinted.num_steps, hinted.learning_rate),
        (min(seg.hint_steps, seg.user_hint_steps), min(config.num_steps, seg.user_num_steps), 5e-4),
    )
    self.assertNotEqual(config.learning_rate, 5e-4)  # The caller's config is left as it was.
    config.segmentation.user_learning_rate = 0.0  # 0: `learning_rate` applies.
    self.assertEqual(segmentation.with_schedule(config).learning_rate, config.learning_rate)


if __name__ == '__main__':
  absltest.main()

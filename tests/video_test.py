"""Tests of video decomposition: coherent noise, clip I/O, windows, hints and a tiny end-to-end run."""

import json
import os
import subprocess
import sys
import tempfile
import tracemalloc
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
from scipy import ndimage

from configs import default
from ddip_jax import align
from ddip_jax import clip_io
from ddip_jax import config_check
from ddip_jax import engine
from ddip_jax import hints
from ddip_jax import image_io
from ddip_jax import losses
from ddip_jax import memory
from ddip_jax import metrics
from ddip_jax import models
from ddip_jax import tasks
from ddip_jax import video_hints
from ddip_jax import video_motion
from ddip_jax import writing
from ddip_jax.tasks import video
from tests import image_io_test  # pylint: disable=g-bad-import-order

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_F, _H, _W = 3, 32, 32


def _tempdir(test: absltest.TestCase) -> str:
  tmp = tempfile.TemporaryDirectory()
  test.addCleanup(tmp.cleanup)
  return tmp.name


def _clip(num_frames: int = _F, height: int = _H, width: int = _W, side: int = 10, seed: int = 0):
  """A textured still background with a red square moving right: (frames, masks)."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:height, 0:width]
  background = np.empty((height, width, 3), np.float32)
  background[...] = [0.3, 0.55, 0.35]
  background += 0.08 * np.sin(xx * 0.7 + yy * 0.3)[..., None] + rng.normal(0, 0.01, (height, width, 1))
  frames, masks = [], []
  for f in range(num_frames):
    left = 2 + f * (width - side - 4) // max(num_frames - 1, 1)
    mask = np.zeros((height, width), np.float32)
    mask[(height - side) // 2 : (height + side) // 2, left : left + side] = 1
    frames.append(np.where(mask[..., None] > 0, [0.9, 0.15, 0.1], background))
    masks.append(mask)
  return np.clip(np.stack(frames), 0, 1).astype(np.float32), np.stack(masks)


def _write_frames(folder: str, frames: np.ndarray, names=None) -> list[str]:
  names = names or [f'frame_{k}.png' for k in range(len(frames))]
  paths = [os.path.join(folder, n) for n in names]
  for path, frame in zip(paths, frames):
    writing.save_image(path, frame)
  return paths


class VideoNoiseTest(parameterized.TestCase):

  @parameterized.parameters(((8, 8), 2, 5), ((16, 24), 3, 2), ((24, 8), 1, 7))
  def test_shapes(self, shape, depth, num_frames):
    noise = models.make_video_noise(jax.random.key(0), shape, depth, num_frames)
    self.assertEqual(noise.shape, (num_frames, *shape, depth))
    self.assertEqual(noise.dtype, jnp.float32)

  @parameterized.parameters(0.5, 0.8, 0.95)
  def test_stationary_walk_statistics(self, correlation):
    var, frames = 0.01, 6
    noise = np.asarray(
        models.make_video_noise(jax.random.key(1), (64, 64), 4, frames, var=var, correlation=correlation), np.float64
    )
    # Frame 0 is the usual uniform noise in (-var/2, var/2) ...
    self.assertLess(np.abs(noise[0]).max(), var / 2)
    # ... and every frame has its statistics: centred, standard deviation var / sqrt(12).
    np.testing.assert_allclose(noise.mean(axis=(1, 2, 3)), 0.0, atol=0.02 * var)
    np.testing.assert_allclose(noise.std(axis=(1, 2, 3)), var / np.sqrt(12), rtol=0.03)
    # Frames k apart are correlated by correlation^k (neighbours most).
    flat = noise.reshape(frames, -1)
    for lag in (1, 2, 3):
      for f in range(frames - lag):
        self.assertAlmostEqual(np.corrcoef(flat[f], flat[f + lag])[0, 1], correlation**lag, delta=0.03)
    # The increments are fresh noise: independent of the previous frame.
    increments = flat[1:] - correlation * flat[:-1]
    self.assertLess(abs(np.corrcoef(increments[1], flat[1])[0, 1]), 0.03)

  def test_deterministic_and_the_extremes(self):
    a = models.make_video_noise(jax.random.key(2), (8, 8), 2, 4)
    b = models.make_video_noise(jax.random.key(2), (8, 8), 2, 4)
    np.testing.assert_array_equal(a, b)
    still = models.make_video_noise(jax.random.key(2), (8, 8), 2, 4, correlation=1.0)
    for f in range(1, 4):
      np.testing.assert_array_equal(still[f], still[0])
    independent = np.asarray(models.make_video_noise(jax.random.key(3), (32, 32), 4, 3, correlation=0.0))
    self.assertLess(abs(np.corrcoef(independent[0].ravel(), independent[1].ravel())[0, 1]), 0.05)

  def test_clip_noise_static_background(self):
    config = default.get_config()
    noise = video.clip_noise(config, jax.random.key(0), 5, (20, 30))  # Canvas 24x32 for 3 scales.
    self.assertEqual(
        {n: z.shape for n, z in noise.items()}, {'fg': (5, 24, 32, 2), 'mask': (5, 24, 32, 2), 'bg': (1, 24, 32, 2)}
    )
    config.video.static_background = False
    self.assertEqual(video.clip_noise(config, jax.random.key(0), 5, (20, 30))['bg'].shape, (5, 24, 32, 2))


class ClipIoTest(parameterized.TestCase):

  def test_folder_in_natural_order_ignoring_other_files(self):
    tmp = _tempdir(self)
    frames = np.stack([np.full((6, 8, 3), v, np.float32) for v in (0.1, 0.3, 0.5, 0.7)])
    _write_frames(tmp, frames, ['f10.png', 'f2.PNG', 'f1.jpg', 'f3.jpeg'])
    with open(os.path.join(tmp, 'notes.txt'), 'w') as f:
      f.write('not a frame')
    os.mkdir(os.path.join(tmp, 'sub.png'))  # A folder named like a frame is not one.
    loaded, names = clip_io.load_frames(tmp)
    self.assertEqual(names, ['f1.jpg', 'f2.PNG', 'f3.jpeg', 'f10.png'])
    self.assertEqual(loaded.shape, (4, 6, 8, 3))
    np.testing.assert_allclose(loaded[:, 0, 0, 0], [0.5, 0.3, 0.7, 0.1], atol=0.02)  # JPEG: near.

  def test_gif_round_trip(self):
    tmp = _tempdir(self)
    # Few distinct colours, so the GIF palette keeps them exactly.
    frames, _ = _clip(num_frames=4)
    frames = np.round(frames * 4) / 4
    path = os.path.join(tmp, 'clip.gif')
    clip_io.save_gif(path, frames, duration_ms=70)
    with Image.open(path) as im:
      self.assertEqual(im.n_frames, 4)
      self.assertEqual(im.info['duration'], 70)
      self.assertEqual(im.info['loop'], 0)
    loaded, names = clip_io.load_frames(path)
    self.assertEqual(names, ['frame_0000', 'frame_0001', 'frame_0002', 'frame_0003'])
    np.testing.assert_allclose(loaded, frames, atol=1 / 255)

  @parameterized.parameters((4, 5, 6), (4, 5, 6, 1))
  def test_gif_of_masks(self, *shape):
    tmp = _tempdir(self)
    masks = np.zeros(shape, np.float32)
    for f in range(4):
      masks[f, f] = 1.0
    path = os.path.join(tmp, 'masks.gif')
    clip_io.save_gif(path, masks)
    loaded, _ = clip_io.load_frames(path)
    np.testing.assert_array_equal(loaded[..., 0], masks.reshape(4, 5, 6))

  @parameterized.parameters((5, 6), (0, 5, 6, 3), (2, 5, 6, 2))
  def test_save_gif_bad_shape(self, *shape):
    with self.assertRaisesRegex(ValueError, 'frames must be'):
      clip_io.save_gif(os.path.join(_tempdir(self), 'x.gif'), np.zeros(shape, np.float32))

  def test_masks_folder_or_one_file(self):
    tmp = _tempdir(self)
    os.mkdir(os.path.join(tmp, 'masks'))
    masks = np.zeros((3, 8, 8), np.float32)
    masks[np.arange(3), np.arange(3), np.arange(3)] = 1
    _write_frames(os.path.join(tmp, 'masks'), masks[..., None].repeat(3, -1), ['m9.png', 'm10.png', 'm11.png'])
    np.testing.assert_array_equal(clip_io.load_masks(os.path.join(tmp, 'masks'), count=3, shape=(8, 8)), masks)
    # One file serves every frame, resized like load_mask.
    writing.save_image(os.path.join(tmp, 'one.png'), np.ones((4, 4), np.float32))
    np.testing.assert_array_equal(
        clip_io.load_masks(os.path.join(tmp, 'one.png'), count=3, shape=(8, 8)), np.ones((3, 8, 8))
    )
    with self.assertRaisesRegex(image_io.InputError, 'holds 3 masks, but the clip has 4 frames'):
      clip_io.load_masks(os.path.join(tmp, 'masks'), count=4, shape=(8, 8))

  def _bad_inputs(self, tmp: str) -> dict[str, tuple[str, str]]:
    """name -> (path, expected message) of clips that must be refused."""
    cases = {}
    empty = os.path.join(tmp, 'empty')
    os.mkdir(empty)
    cases['empty_folder'] = (empty, 'holds no PNG or JPEG frames')
    texts = os.path.join(tmp, 'texts')
    os.mkdir(texts)
    with open(os.path.join(texts, 'a.txt'), 'w') as f:
      f.write('x')
    cases['no_frames'] = (texts, 'holds no PNG or JPEG frames')
    cases['missing'] = (os.path.join(tmp, 'nothing_here'), 'no such file')
    one = os.path.join(tmp, 'one')
    _write_frames(one, np.zeros((1, 8, 8, 3), np.float32))
    cases['one_frame'] = (one, 'has 1 frame; a video needs at least 2')
    sizes = os.path.join(tmp, 'sizes')
    _write_frames(sizes, np.zeros((2, 8, 8, 3), np.float32))
    writing.save_image(os.path.join(sizes, 'frame_2.png'), np.zeros((8, 9, 3), np.float32))
    cases['sizes'] = (sizes, r"frames differ in size: .*frame_2.png' is 9x8, .*frame_0.png' is 8x8")
    broken = os.path.join(tmp, 'broken')
    _write_frames(broken, np.zeros((2, 8, 8, 3), np.float32))
    with open(os.path.join(broken, 'frame_1.png'), 'w') as f:
      f.write('not an image')
    cases['corrupt_frame'] = (broken, "frame_1.png': not a recognised image file")
    png = os.path.join(tmp, 'still.png')
    writing.save_image(png, np.zeros((8, 8, 3), np.float32))
    cases['png_file'] = (png, 'is a PNG file, not an animated GIF')
    gif = os.path.join(tmp, 'clip.gif')
    clip_io.save_gif(gif, np.stack([np.zeros((8, 8)), np.ones((8, 8))]))
    with open(gif, 'rb') as f:
      data = f.read()
    truncated = os.path.join(tmp, 'truncated.gif')
    with open(truncated, 'wb') as f:
      f.write(data[: len(data) // 2])
    cases['truncated_gif'] = (truncated, 'cannot read .*truncated.gif')
    one_gif = os.path.join(tmp, 'one.gif')
    clip_io.save_gif(one_gif, np.zeros((1, 8, 8)))
    cases['one_frame_gif'] = (one_gif, 'has 1 frame')
    return cases

  def test_a_clip_too_large_is_refused_before_decoding_and_decoded_a_frame_at_a_time(self):
    tmp = _tempdir(self)
    frames = np.stack([np.full((60, 80), k / 20, np.float32) for k in range(20)])
    gif, folder = os.path.join(tmp, 'clip.gif'), os.path.join(tmp, 'frames')
    clip_io.save_gif(gif, frames)
    _write_frames(folder, frames[:3, ..., None].repeat(3, -1), ['a.png', 'b.png', 'c.png'])
    for path, count in ((gif, 20), (folder, 3)):
      with (
          mock.patch.dict(os.environ, {memory.MEMORY_ENV: image_io_test._limit_gb(60, 80, count - 0.5)}),
          mock.patch.object(Image.Image, 'load', side_effect=AssertionError('decoded')),
          self.assertRaisesRegex(
              image_io.InputError,
              rf'^{path!r} is {count} frames of 80x60: its run needs about .* GB of memory, more '
              rf'than the limit of .* \(DDIP_JAX_MEMORY_GB=.*\); at most {count - 1} frames of '
              'this size fit$',
          ),
      ):
        clip_io.load_frames(path)
    tracemalloc.start()
    try:
      clip, _ = clip_io.load_frames(gif)
      peak = tracemalloc.get_traced_memory()[1]
    finally:
      tracemalloc.stop()
    self.assertEqual(clip.shape, (20, 60, 80, 3))
    self.assertLess(peak, 1.3 * clip.nbytes)  # The clip's array and a frame or two, never a second clip.

  def test_bad_inputs_are_one_line_errors(self):
    for name, (path, message) in self._bad_inputs(_tempdir(self)).items():
      with self.subTest(name):
        with self.assertRaisesRegex(image_io.InputError, message) as ctx:
          clip_io.load_frames(path)
        self.assertNotIn('\n', str(ctx.exception))

  def test_cli_bad_input_one_line_error(self):
    tmp = _tempdir(self)
    os.mkdir(os.path.join(tmp, 'empty'))
    workdir = os.path.join(tmp, 'out')
    proc = subprocess.run(
        [sys.executable, 'main.py', '--config=configs/video.py', f'--config.image={tmp}/empty', f'--workdir={workdir}'],
        cwd=_REPO,
        env=dict(os.environ, PYTHONPATH=_REPO),
        capture_output=True,
        text=True,
        timeout=120,
    )
    self.assertEqual(proc.returncode, 2, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    self.assertEqual(errors, [f"error: '{tmp}/empty' holds no PNG or JPEG frames"], proc.stderr)
    self.assertNotIn('Traceback', proc.stderr)
    self.assertFalse(os.path.exists(workdir))


class HelpersTest(parameterized.TestCase):

  @parameterized.parameters(
      (12, 8, 2, [(0, 8), (4, 12)]),
      (20, 8, 2, [(0, 8), (6, 14), (12, 20)]),
      (14, 8, 2, [(0, 8), (6, 14)]),
      (5, 8, 2, [(0, 5)]),
      (8, 8, 2, [(0, 8)]),
      (9, 0, 0, [(0, 9)]),
      (5, 2, 0, [(0, 2), (2, 4), (3, 5)]),
  )
  def test_windows(self, num_frames, size, overlap, expected):
    self.assertEqual(video.windows(num_frames, size, overlap), expected)

  def test_blend_windows(self):
    a = {'mask': np.zeros((4, 1, 1, 1))}
    b = {'mask': np.ones((4, 1, 1, 1))}
    blended = video.blend_windows([(0, 4), (2, 6)], [a, b])
    self.assertEqual(sorted(blended), list(range(6)))
    # Frame 2 is window a's 3rd (weight 2) and b's 1st (weight 1); frame 3: a's last (1), b's 2nd (2).
    values = [float(blended[f]['mask'].squeeze()) for f in range(6)]
    np.testing.assert_allclose(values, [0, 0, 1 / 3, 2 / 3, 1, 1])

  def test_temporal_term(self):
    frames = np.zeros((3, 2, 2, 3), np.float32)
    frames[1, 0, 0] = 0.5  # Pixel (0, 0) changes between frames 0-1 and 1-2.
    weights = video.still_weights(jnp.asarray(frames), 0.05)
    self.assertEqual(weights.shape, (2, 2, 2, 1))
    np.testing.assert_allclose(weights[:, 0, 0, 0], np.exp(-0.25 / 0.005), rtol=1e-5)
    np.testing.assert_allclose(weights[:, 1, 1, 0], 1.0)
    mask = np.zeros((3, 2, 2, 1), np.float32)
    mask[1] = 1.0  # The mask flips everywhere in frame 1.
    # Only where the frames did not change does that cost: 3 of 4 pixels, 2 frame pairs.
    expected = (2 * 3 * 1.0 + 2 * float(weights[0, 0, 0, 0])) / 8
    self.assertAlmostEqual(float(losses.temporal_consistency(jnp.asarray(mask), weights)), expected, places=6)

  def test_motion_hints(self):
    frames, masks = _clip(num_frames=6, height=40, width=48)
    fg, bg = hints.motion_hints(frames)
    self.assertEqual(fg.shape, masks.shape)
    self.assertTrue(fg.any(axis=(1, 2)).all())  # Every frame has a foreground hint ...
    self.assertFalse((fg * (1 - masks)).any())  # ... inside the moving square only,
    self.assertFalse((bg * masks).any())  # and the background hint never touches it.
    self.assertGreater(bg.sum() / (1 - masks).sum(), 0.6)
    fg2, bg2, info = hints.resolve_hints(frames, fg_path=None, bg_path=None, method='motion')
    np.testing.assert_array_equal(fg2, fg)
    np.testing.assert_array_equal(bg2, bg)
    self.assertEqual(info['fg_hint']['source'], 'auto:motion')
    # A single-image method works frame by frame.
    fg3, _, _ = hints.resolve_hints(frames, fg_path=None, bg_path=None, method='border')
    self.assertEqual(fg3.shape, masks.shape)

  @parameterized.parameters(
      ('window_size', 1, 'video.window_size'),
      ('window_overlap', 8, 'video.window_overlap'),
      ('auto_hints', 'magic', 'video.auto_hints'),
      ('colour_sigma', 0.0, 'video.colour_sigma'),
      ('background_weight', -1.0, 'video.background_weight'),
      ('noise_correlation', 1.5, 'video.noise_correlation'),
  )
  def test_validate(self, field, value, message):
    config = default.get_config()
    config.task, config.image = 'video', 'clip/'
    tasks.validate(config)
    config.video[field] = value
    with self.assertRaisesRegex(config_check.ConfigError, message):
      tasks.validate(config)


def _tiny_config(tmp: str):
  """A video config for `_clip()` written under `tmp`: tiny generators, 4 steps of step 2 only."""
  frames, masks = _clip()
  _write_frames(os.path.join(tmp, 'frames'), frames)
  _write_frames(os.path.join(tmp, 'masks'), masks[..., None].repeat(3, -1))
  config = default.get_config()
  config.task = 'video'
  config.image = os.path.join(tmp, 'frames')
  config.gt_mask = os.path.join(tmp, 'masks')
  config.video.window_size = 0
  config.video.temporal_weight = 0.1
  config.segmentation.hint_steps = 0  # Step 1 is segmentation's, tested there: one compilation.
  config.num_steps = 4
  config.early_stop_psnr = 0.0
  config.learning_rate = 0.01
  config.generator.channels_down = config.generator.channels_up = (4, 8)
  config.generator.channels_skip = (0, 0)
  config.loop.strategy = 'step'
  config.loop.check_every = 1
  config.progress = False
  tasks.validate(config)
  return config


class EndToEndTest(absltest.TestCase):
  """3 frames of 32x32 as one batch, tiny generators, 4 steps."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls._tmp = tempfile.TemporaryDirectory()
    config = _tiny_config(cls._tmp.name)
    cls.workdir = os.path.join(cls._tmp.name, 'out')
    cls.losses = []
    real_optimize = engine.optimize

    def optimize(problem, **kwargs):
      record = lambda stage, state: cls.losses.append(float(state.loss))
      return real_optimize(problem, on_check=record, **kwargs)

    with mock.patch.object(engine, 'optimize', optimize):
      cls.metrics = video.run(config, cls.workdir)

  @classmethod
  def tearDownClass(cls):
    cls._tmp.cleanup()
    super().tearDownClass()

  def test_writes_every_output(self):
    names = [f'{k:04d}.png' for k in range(_F)]
    for layer in video.FRAME_LAYERS + ('fg_hint', 'bg_hint'):
      self.assertEqual(sorted(os.listdir(os.path.join(self.workdir, layer))), names, msg=layer)
      for name in names:
        img = image_io.load_image(os.path.join(self.workdir, layer, name))
        self.assertEqual(img.shape, (_H, _W, 3), msg=layer)
    for layer in video.FRAME_LAYERS:
      with Image.open(os.path.join(self.workdir, f'{layer}.gif')) as im:
        # Identical consecutive frames (a still background) are merged by the GIF writer.
        self.assertBetween(im.n_frames, 1 if layer == 'bg' else 2, _F, msg=layer)
    binary = image_io.load_mask(os.path.join(self.workdir, 'mask_binary', '0001.png'), shape=(_H, _W))
    self.assertTrue(np.isin(binary, (0.0, 1.0)).all())
    summary = image_io.load_image(os.path.join(self.workdir, 'summary.png'))
    self.assertGreater(summary.shape[0], 5 * _H)  # Five rows: input, fg, bg, mask, cut-out.
    self.assertNotIn('checkpoint_window1.msgpack', os.listdir(self.workdir))

  def test_metrics(self):
    with open(os.path.join(self.workdir, 'metrics.json')) as f:
      metrics = json.load(f)
    self.assertEqual(metrics['status'], 'ok')
    self.assertEqual(metrics['num_frames'], _F)
    self.assertEqual(metrics['frames_done'], _F)
    self.assertEqual(metrics['windows'], [[0, 3]])
    self.assertLen(metrics['iou_per_frame'], _F)
    self.assertAlmostEqual(metrics['iou'], np.mean(metrics['iou_per_frame']))
    for key in ('iou', 'iou_whole_mask', 'iou_raw_mask'):
      self.assertBetween(metrics[key], 0.0, 1.0)
    self.assertGreater(metrics['frames_per_second'], 0)
    self.assertEqual(metrics['hints']['fg_hint']['source'], 'auto:motion')
    (run,) = metrics['window_runs']
    self.assertEqual(list(run['stages']), ['step2_decompose'])
    self.assertEqual(run['stages']['step2_decompose']['steps'], 4)
    self.assertTrue(np.isfinite(run['best_recon_psnr']))

  def test_losses_go_down(self):
    self.assertLen(self.losses, 4)
    self.assertTrue(all(np.isfinite(self.losses)))
    self.assertLess(self.losses[-1], self.losses[0])


class WindowsTest(absltest.TestCase):
  """Windows with the optimisation replaced by made-up results (no compilation)."""

  def test_windows_are_blended_and_a_stop_keeps_the_frames_done(self):
    tmp = _tempdir(self)
    config = _tiny_config(tmp)
    config.video.window_size, config.video.window_overlap = 2, 1
    workdir = os.path.join(tmp, 'out')
    calls, failing = [], []

    def optimize(problem, **kwargs):
      calls.append((problem, os.path.basename(kwargs['checkpoint'].path)))
      if len(calls) in failing:
        err = engine.NumericalError('loss is nan at step 1 of stage step2_decompose')
        err.result = engine.Result(None, None, {}, -np.inf, -1, {'stages': {}})
        raise err
      frames = problem.inputs['fg'].shape[0]
      value = 0.2 if len(calls) == 1 else 0.8  # Window 1's layers are 0.2, window 2's 0.8.
      best = {
          'fg': np.full((frames, _H, _W, 3), value, np.float32),
          'bg': np.full((frames, _H, _W, 3), value, np.float32),
          'mask': np.full((frames, _H, _W, 1), value, np.float32),
      }
      return engine.Result(None, None, best, 20.0, 3, {'stages': {}})

    with mock.patch.object(engine, 'optimize', optimize):
      metrics = video.run(config, workdir)
    self.assertEqual([name for _, name in calls], ['checkpoint_window1.msgpack', 'checkpoint_window2.msgpack'])
    self.assertEqual([p.inputs['mask'].shape[0] for p, _ in calls], [2, 2])
    self.assertEqual(metrics['windows'], [[0, 2], [1, 3]])
    # Frame 1 is window 1's last (weight 1) and window 2's first (weight 1): the mean.
    fg = [image_io.load_image(os.path.join(workdir, 'fg', f'{k:04d}.png'))[0, 0, 0] for k in range(_F)]
    np.testing.assert_allclose(fg, [0.2, 0.5, 0.8], atol=1 / 255)

    # Window 2 fails: the frames of window 1 are written, and the error goes on.
    workdir = os.path.join(tmp, 'failed')
    calls.clear()
    failing.append(2)
    with mock.patch.object(engine, 'optimize', optimize):
      with self.assertRaisesRegex(engine.NumericalError, 'nan'):
        video.run(config, workdir)
    with open(os.path.join(workdir, 'metrics.json')) as f:
      written = json.load(f)
    self.assertStartsWith(written['status'], 'stopped in window 2: loss is nan')
    self.assertEqual(written['frames_done'], 2)
    self.assertLen(written['iou_per_frame'], 2)
    self.assertEqual(sorted(os.listdir(os.path.join(workdir, 'mask'))), ['0000.png', '0001.png'])


def _panned_clip(shifts: list[tuple[int, int]], size: tuple[int, int] = (48, 64)) -> tuple[np.ndarray, np.ndarray]:
  """Windows of a smooth random texture shifted by whole pixels, a square moving over them; and its masks."""
  rng = np.random.default_rng(3)
  world = np.stack([ndimage.gaussian_filter(rng.uniform(0, 1, (96, 128)), 1.5) for _ in range(3)], -1)
  world = (world - world.min()) / (world.max() - world.min())
  h, w = size
  frames, masks = [], []
  for f, (dx, dy) in enumerate(shifts):
    frame = world[20 + dy : 20 + dy + h, 30 + dx : 30 + dx + w].copy()
    mask = np.zeros((h, w), np.float32)
    mask[18:28, 4 + 6 * f : 14 + 6 * f] = 1
    frame[mask > 0] = (1.0, 0.1, 0.1)
    frames.append(frame)
    masks.append(mask)
  return np.stack(frames).astype(np.float32), np.stack(masks)


class AlignTest(parameterized.TestCase):

  def test_a_static_clip_gets_identities(self):
    frames, _ = _panned_clip([(0, 0)] * 5)
    np.testing.assert_array_equal(align.camera_motion(frames), np.tile(np.eye(3), (5, 1, 1)))

  def test_a_pan_is_recovered_and_undone(self):
    shifts = [(2 * f, -f) for f in range(5)]
    frames, _ = _panned_clip(shifts)
    transforms = align.camera_motion(frames)
    # Frame f's pixel (x, y) shows the world at (x + dx_f, y + dy_f): the middle frame's (x + dx_f - dx_2, ...).
    expected = np.array([[s[0] - shifts[2][0], s[1] - shifts[2][1]] for s in shifts], np.float64)
    np.testing.assert_allclose(transforms[:, :2, 2], expected, atol=0.3)
    np.testing.assert_allclose(transforms[:, :2, :2], np.tile(np.eye(2), (5, 1, 1)), atol=0.01)
    self.assertFalse(align.is_static(transforms))
    aligned = align.to_reference(frames, transforms)
    seen = align.coverage(transforms, frames.shape[1:3])
    self.assertFalse(seen[0].all())  # The first frame does not see the right edge of the middle one.
    inner = seen.all(0)
    inner[16:30] = False  # The moving square.
    residual = np.abs(aligned[:, inner] - aligned[2][inner])  # Sub-pixel errors of the estimate: small.
    self.assertLess(residual.mean(), 0.01)
    self.assertLess(residual.max(), 0.1)
    round_trip = align.from_reference(align.to_reference(frames, transforms, nearest=True), transforms, nearest=True)
    np.testing.assert_array_equal(round_trip[4, 10:-10, 10:-10], frames[4, 10:-10, 10:-10])

  def test_motion_mask_follows_the_object_of_a_panned_clip(self):
    frames, masks = _panned_clip([(2 * f, -f) for f in range(7)])
    config = default.get_config()
    moving = video_motion.motion_mask(config, frames)
    config.video.align = 'off'
    still = video_motion.motion_mask(config, frames)
    ious = [np.mean([metrics.iou(m, g) for m, g in zip(found, masks)]) for found in (moving, still)]
    self.assertGreater(ious[0], 0.6)  # The 3x3 blur of the change widens a 10x10 square to about 12x12.
    self.assertLess(ious[1], 0.2)  # Without alignment, the whole textured background moves.

  def test_match_lighting(self):
    frames, _ = _panned_clip([(0, 0)] * 4)
    darker = frames * np.array([1.0, 0.9, 0.8, 0.7], np.float32)[:, None, None, None]
    plain = hints.background_change(darker)
    matched = hints.background_change(darker, match_lighting=True)
    away = np.r_[0:14, 32:48]  # Rows the moving square never comes near.
    self.assertGreater(plain[3, away].mean(), 5.0)
    self.assertLess(matched[:, away].max(), 1.0)


def _slow_object_clip(num_frames: int = 10, covered: range = range(7)) -> tuple[np.ndarray, np.ndarray]:
  """A textured still background and a 12x12 square of fresh random texture every frame: over rows and columns
  8..19 in the frames `covered` (most of them: the median there is the square's texture), over rows 20..31 in
  the others (which show the background at rows 8..19)."""
  rng = np.random.default_rng(3)
  background = rng.uniform(0.2, 0.8, (32, 32, 3)).astype(np.float32)
  frames = np.repeat(background[None], num_frames, 0)
  masks = np.zeros((num_frames, 32, 32), np.float32)
  for f in range(num_frames):
    top = 8 if f in covered else 20
    frames[f, top : top + 12, 8:20] = rng.uniform(0.0, 1.0, (12, 12, 3))
    masks[f, top : top + 12, 8:20] = 1
  return frames, masks


class VideoHintsTest(parameterized.TestCase):
  """The mode background, the motion map and the final mask's confident rule (ddip_jax/video_hints.py)."""

  def test_the_mode_is_the_background_where_the_median_is_the_object(self):
    frames, _ = _slow_object_clip()
    lab = np.stack([hints.rgb_to_lab(f) for f in frames])
    truth = hints.rgb_to_lab(frames[9])  # Frames 7..9 show the background over rows 8..19.
    mode = video_hints.mode_background(lab)
    median = np.median(lab, axis=0)
    core = (slice(8, 20), slice(8, 20))
    self.assertLess(np.abs(mode[core] - truth[core]).max(), 1e-3)
    self.assertGreater(np.abs(median[core] - truth[core]).mean(), 5.0)  # The median is the square's texture.
    below = hints.rgb_to_lab(frames[0])[20:]  # Frame 0 shows the background below row 20.
    self.assertLess(np.abs(mode[20:] - below).max(), 1e-3)

  def test_mode_background_uses_only_the_frames_that_see_a_pixel(self):
    frames, _ = _slow_object_clip()
    lab = np.stack([hints.rgb_to_lab(f) for f in frames])
    valid = np.ones(lab.shape[:3], bool)
    valid[7:, 8:20, 8:20] = False  # The frames showing the background there are not seen: the square's mode wins.
    mode = video_hints.mode_background(lab, valid)
    self.assertGreater(np.abs(mode[8:20, 8:20] - hints.rgb_to_lab(frames[9])[8:20, 8:20]).mean(), 5.0)
    self.assertEqual(video_hints.mode_background(lab, np.zeros_like(valid)).max(), 0.0)

  def test_noise_level_and_tolerance(self):
    frames, _ = _slow_object_clip()
    lab = np.stack([hints.rgb_to_lab(f) for f in frames])
    self.assertEqual(video_hints.noise_level(lab), 0.0)
    noisy = lab + np.random.default_rng(0).normal(0, 1.0, lab.shape)
    self.assertAlmostEqual(video_hints.noise_level(noisy), 2.7, delta=0.4)  # |N(0, 2 I_3)|'s median is ~2.7.

  def test_mode_hints_leave_no_ghost(self):
    frames, masks = _slow_object_clip()
    found = [
        hints.background_change(frames, estimate_background=estimate) > 12
        for estimate in (None, video_hints.mode_background)
    ]
    ghost = [mask[7:, 8:18, 8:20].mean() for mask in found]  # Where the square stood (2 rows off its next place).
    self.assertGreater(ghost[0], 0.5)
    self.assertLess(ghost[1], 0.05)
    self.assertGreater(np.mean([metrics.iou(m, g) for m, g in zip(found[1], masks)]), 0.7)  # The 3x3 blur widens it.

  def test_motion_map(self):
    np.testing.assert_allclose(video_hints.motion_map(np.array([0.0, 6.0, 9.0, 12.0, 30.0])), [0.0, 0.0, 0.5, 1.0, 1.0])

  def test_confident_blend(self):
    dip = np.array([0.05, 0.5, 0.95, 0.2])
    motion = np.array([1.0, 0.9, 0.0, 0.0])
    np.testing.assert_allclose(video_hints.confident_blend(dip, motion, 0.1), [1.0, 0.9, 0.95, 0.0])
    np.testing.assert_allclose(video_hints.confident_blend(dip, motion, 0.1, remove=True), [0.05, 0.9, 0.95, 0.0])
    np.testing.assert_allclose(video_hints.confident_blend(dip, motion, 0.0, remove=True), motion)
    np.testing.assert_allclose(video_hints.confident_blend(dip, motion, 0.3, remove=True), [0.05, 0.9, 0.95, 0.2])

  def test_refined_motion_mask_keeps_the_hints(self):
    frames, masks = _slow_object_clip()
    config = default.get_config()
    config.video.background = 'mode'
    config.video.confident_mask = 0.1
    config.segmentation.guided_radius = 0.03
    refined = video_motion.refined_motion_mask(config, frames)
    self.assertGreater(np.mean([metrics.iou(m, g) for m, g in zip(refined, masks)]), 0.7)
    self.assertLess(refined[7:, 8:18, 8:20].mean(), 0.05)
    fg, bg = hints.motion_hints(frames, estimate_background=video_hints.mode_background)
    self.assertTrue((refined[fg > 0.5] == 1).all())
    self.assertTrue((refined[bg > 0.5] == 0).all())

  @parameterized.parameters(('background', 'mean'), ('confident_mask', 0.6), ('confident_mask', -0.1))
  def test_validate_new_fields(self, field, value):
    config = default.get_config()
    config.task, config.image = 'video', 'clip/'
    config.video[field] = value
    with self.assertRaisesRegex(config_check.ConfigError, f'video.{field}'):
      tasks.validate(config)


class MovingCameraTest(absltest.TestCase):
  """A decomposition end to end (tiny generators, 4 steps) of a clip whose camera pans."""

  def test_a_moving_camera_is_decomposed_in_the_middle_frames_coordinates(self):
    frames, masks = _panned_clip([(2 * f, -f) for f in range(5)], size=(32, 64))
    config = _tiny_config(_tempdir(self))
    result = video.decompose(config, video.Inputs(frames=frames, names=[str(k) for k in range(5)], gt_mask=masks))
    self.assertTrue(result.metrics['camera_moves'])
    self.assertAlmostEqual(result.metrics['camera_corner_motion_px'], 4.5, delta=0.5)
    binary = np.stack([result.images[f'mask_binary/{k:04d}'] for k in range(5)])
    self.assertEqual(binary.shape, masks.shape)
    np.testing.assert_array_equal(result.images['cutout/0000'][binary[0] > 0.5], frames[0][binary[0] > 0.5])
    # Warped back: each frame's foreground hint lies on its own square.
    for k in range(5):
      hint = result.images[f'fg_hint/{k:04d}'] > 0.5
      self.assertGreater(hint.sum(), 20)
      self.assertTrue(ndimage.binary_dilation(masks[k] > 0, iterations=1)[hint].all())


if __name__ == '__main__':
  absltest.main()

"""The Python API (`ddip_jax.segment`, ...) on arrays: nothing written, progress reported, clear errors.

Every API function's run on its demo, and the layers it returns, are checked
in tests/golden_test.py (the outputs recorded before the API existed).
"""

import contextlib
import io
import os
import tempfile
from unittest import mock

from absl.testing import absltest
import numpy as np
from PIL import Image

import ddip_jax
from ddip_jax import api
from ddip_jax import array_inputs
from ddip_jax import engine
from ddip_jax import image_io
from ddip_jax import memory
from ddip_jax import outputs
from ddip_jax import restarts
from ddip_jax import runner
from ddip_jax import writing

# The tiny settings of the golden runs, as keyword overrides.
_TINY = {
    'max_side': 32,
    'num_steps': 3,
    'generator.channels_down': (4, 8),
    'generator.channels_up': (4, 8),
    'generator.channels_skip': (0, 0),
    'segmentation': {'hint_steps': 3, 'hint_phase': 1},
}


class SegmentTest(absltest.TestCase):

  def test_arrays_in_layers_out_nothing_written(self):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    image[8:24, 8:24] = (250, 30, 30)  # A red square on noise.
    fg_hint = np.zeros((32, 32), bool)
    fg_hint[14:18, 14:18] = True
    calls = []
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(tempfile, 'tempdir', tmp):
      result = ddip_jax.segment(image, fg_hint, progress=lambda *args: calls.append(args), **_TINY)
      self.assertEqual(os.listdir(tmp), [])  # Its temporary folders are gone.
    self.assertIsInstance(result, ddip_jax.Segmentation)
    for name in ('fg', 'bg', 'recomposed'):
      self.assertEqual(getattr(result, name).shape, (32, 32, 3))
    self.assertEqual(result.mask.shape, (32, 32))
    self.assertTrue(np.isin(result.mask_binary, (0.0, 1.0)).all())
    self.assertTrue(result.mask_binary[14:18, 14:18].all())  # The user's fg hint is respected.
    self.assertEqual(result.metrics['status'], 'ok')
    self.assertNotIn('iou', result.metrics)  # The demo's ground truth is not the user's.
    # (step, total, loss, psnr, stage): each stage reports its end.
    self.assertEqual(
        [(c[0], c[1], c[4]) for c in calls if c[0] == c[1]], [(3, 3, 'step1_hints'), (3, 3, 'step2_decompose')]
    )
    # Each stage opens with (0, total, nan, nan, stage); every later report has the loss and PSNR.
    self.assertEqual([c[0] for c in calls if np.isnan(c[2])], [0, 0])
    self.assertTrue(all(np.isfinite(c[3]) for c in calls if c[0] > 0))
    with self.assertRaises(Exception):
      result.fg = None  # Frozen.

  def test_in_memory_the_workdir_runs_layers_and_no_file(self):
    """Without a workdir the arrays go to the decomposition and back as they are (issue 27): no file is encoded or
    written, and the layers are the workdir run's to the 8 bits its files hold."""
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    image[8:24, 8:24] = (250, 30, 30)
    fg_hint = np.zeros((32, 32), bool)
    fg_hint[14:18, 14:18] = True
    with (
        mock.patch.object(writing, 'write_files', side_effect=AssertionError('wrote a file')),
        mock.patch.object(writing, 'encode_png', side_effect=AssertionError('encoded a PNG')),
    ):
      in_memory = ddip_jax.segment(image, fg_hint, **_TINY)
    with tempfile.TemporaryDirectory() as workdir, contextlib.redirect_stderr(io.StringIO()):
      filed = ddip_jax.segment(image, fg_hint, workdir=workdir, **_TINY)
    for name in ('fg', 'bg', 'mask', 'mask_binary', 'recomposed'):
      self.assertEqual(getattr(in_memory, name).dtype, np.float32)
      np.testing.assert_array_equal(
          image_io.to_uint8(getattr(in_memory, name)), image_io.to_uint8(getattr(filed, name)), err_msg=name
      )
    self.assertEqual(in_memory.metrics['config']['image'], '<the image array>')
    self.assertEqual(in_memory.metrics['input_sha256'], {})
    self.assertEqual(in_memory.metrics['hints']['fg_hint']['source'], 'the fg_hint array')

    def compared(metrics):  # Less what names the inputs (arrays here, files there) and the run record.
      metrics = outputs.without_timings(metrics)
      del metrics['hints']['fg_hint']['source']
      return {k: v for k, v in metrics.items() if k not in ('config', 'input_sha256', 'seed')}

    self.assertEqual(compared(in_memory.metrics), compared(filed.metrics))

  def test_dehaze_in_memory_the_workdir_runs_layers_and_no_file(self):
    image = np.random.default_rng(3).integers(100, 256, (32, 32, 3), dtype=np.uint8)
    tiny = {key: value for key, value in _TINY.items() if key != 'segmentation'}
    with (
        mock.patch.object(writing, 'write_files', side_effect=AssertionError('wrote a file')),
        mock.patch.object(writing, 'encode_png', side_effect=AssertionError('encoded a PNG')),
    ):
      in_memory = ddip_jax.dehaze(image, progress=False, **tiny)
    with tempfile.TemporaryDirectory() as workdir:
      filed = ddip_jax.dehaze(image, workdir=workdir, progress=False, **tiny)
    for name in ('dehazed', 'transmission', 'airlight'):
      np.testing.assert_array_equal(
          image_io.to_uint8(getattr(in_memory, name)), image_io.to_uint8(getattr(filed, name)), err_msg=name
      )
    self.assertEqual(
        outputs.without_timings(in_memory.metrics)['passes'], outputs.without_timings(filed.metrics)['passes']
    )

  def test_video_in_memory_the_workdir_runs_layers_and_no_file(self):
    rng = np.random.default_rng(4)
    frames = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    for k in range(3):
      frames[k, 8:20, 4 + 6 * k : 16 + 6 * k] = (250, 30, 30)  # A red square moving on noise.
    tiny = {
        **{key: value for key, value in _TINY.items() if key != 'segmentation'},
        'segmentation': {'hint_steps': 3, 'hint_phase': 1},
    }
    with (
        mock.patch.object(writing, 'write_files', side_effect=AssertionError('wrote a file')),
        mock.patch.object(writing, 'encode_png', side_effect=AssertionError('encoded a PNG')),
    ):
      in_memory = ddip_jax.decompose_video(frames, progress=False, **tiny)
    with tempfile.TemporaryDirectory() as workdir:
      filed = ddip_jax.decompose_video(list(frames), workdir=workdir, progress=False, **tiny)
    for name in ('fg', 'bg', 'mask', 'mask_binary'):
      self.assertEqual(getattr(in_memory, name).shape[:3], (3, 32, 32))
      np.testing.assert_array_equal(
          image_io.to_uint8(getattr(in_memory, name)), image_io.to_uint8(getattr(filed, name)), err_msg=name
      )
    self.assertEqual(in_memory.metrics['frame_names'], ['frame 0', 'frame 1', 'frame 2'])

  def test_separate_in_memory_the_workdir_runs_layers_and_no_file(self):
    rng = np.random.default_rng(5)
    a, b = (rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2))
    mix1, mix2 = ((w * a + (1 - w) * b).astype(np.uint8) for w in (0.7, 0.3))
    tiny = {key: value for key, value in _TINY.items() if key != 'segmentation'}
    with (
        mock.patch.object(writing, 'write_files', side_effect=AssertionError('wrote a file')),
        mock.patch.object(writing, 'encode_png', side_effect=AssertionError('encoded a PNG')),
    ):
      in_memory = ddip_jax.separate(mix1, mix2, progress=False, **tiny)
    with tempfile.TemporaryDirectory() as workdir:
      filed = ddip_jax.separate(mix1, mix2, workdir=workdir, progress=False, **tiny)
    for name in ('layer1', 'layer2', 'recomposed1', 'recomposed2'):
      np.testing.assert_array_equal(
          image_io.to_uint8(getattr(in_memory, name)), image_io.to_uint8(getattr(filed, name)), err_msg=name
      )

  def test_watermark_in_memory_the_workdir_runs_layers_and_no_file(self):
    rng = np.random.default_rng(6)
    image = rng.integers(60, 200, (32, 32, 3), dtype=np.uint8)
    image[14:18, 6:26] = 250  # A light bar: the mark.
    hint = np.zeros((32, 32), bool)
    hint[10:22, 4:28] = True
    others = [rng.integers(60, 200, (32, 32, 3), dtype=np.uint8) for _ in range(2)]
    for other in others:
      other[14:18, 6:26] = 250
    tiny = {
        **{key: value for key, value in _TINY.items() if key != 'segmentation'},
        'watermark': {'hint_steps': 3, 'mask_channels': (4, 8), 'mask_skip': (0, 0), 'runs': 2},
    }
    for case, call in (
        ('hint', lambda **kw: ddip_jax.remove_watermark(image, hint, progress=False, **tiny, **kw)),
        ('many', lambda **kw: ddip_jax.remove_watermark(image, others=others, progress=False, **tiny, **kw)),
    ):
      with self.subTest(case):
        with (
            mock.patch.object(writing, 'write_files', side_effect=AssertionError('wrote a file')),
            mock.patch.object(writing, 'encode_png', side_effect=AssertionError('encoded a PNG')),
        ):
          in_memory = call()
        with tempfile.TemporaryDirectory() as workdir:
          filed = call(workdir=workdir)
        self.assertLen(in_memory.others_clean, 2 if case == 'many' else 0)
        for name, got, want in [
            ('clean', in_memory.clean, filed.clean),
            ('watermark', in_memory.watermark, filed.watermark),
            ('mask', in_memory.mask, filed.mask),
        ] + [(f'other{k}', a, b) for k, (a, b) in enumerate(zip(in_memory.others_clean, filed.others_clean))]:
          self.assertEqual(got.dtype, np.float32, name)
          self.assertEqual(got.shape, want.shape, name)
          np.testing.assert_array_equal(image_io.to_uint8(got), image_io.to_uint8(want), err_msg=name)
        self.assertEqual(in_memory.metrics['config']['image'], '<the image array>')
        self.assertEqual(
            outputs.without_timings(in_memory.metrics)['runs'], outputs.without_timings(filed.metrics)['runs']
        )

  def test_an_array_run_in_a_workdir_resumes_or_is_already_done(self):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    fg_hint = np.zeros((32, 32), bool)
    fg_hint[14:18, 14:18] = True
    with tempfile.TemporaryDirectory() as workdir, contextlib.redirect_stderr(io.StringIO()):
      first = ddip_jax.segment(image, fg_hint, workdir=workdir, **_TINY)
      self.assertLen(os.listdir(os.path.join(workdir, runner.INPUTS)), 2)  # The image and the hint, by content.
      with mock.patch.object(restarts, 'run', side_effect=AssertionError('ran again')):
        again = ddip_jax.segment(image.copy(), fg_hint.copy(), workdir=workdir, **_TINY)  # Equal arrays.
      np.testing.assert_array_equal(again.mask_binary, first.mask_binary)
      self.assertEqual({k: again.metrics[k] for k in first.metrics}, first.metrics)  # Its metrics.json.
      redone = ddip_jax.segment(image, fg_hint, workdir=workdir, overwrite=True, **_TINY)
      self.assertGreater(redone.metrics['seconds'], 0)
      self.assertNotEqual(redone.metrics['seconds'], first.metrics['seconds'])
      with self.assertRaisesRegex(
          api.InputError,
          f"--workdir '{workdir}' holds a run of another config " r"\(image: '.*image_[0-9a-f]+.png' there",
      ):
        ddip_jax.segment(255 - image, fg_hint, workdir=workdir, **_TINY)

  def test_progress_true_or_false_is_the_bar_or_nothing(self):
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    fg_hint = np.zeros((32, 32), bool)
    fg_hint[14:18, 14:18] = True
    for progress in (True, False):
      with self.subTest(progress=progress), contextlib.redirect_stderr(io.StringIO()) as stderr:
        ddip_jax.segment(image, fg_hint, progress=progress, **_TINY)
      self.assertEqual('step2_decompose: 100%' in stderr.getvalue(), progress)


class ErrorsTest(absltest.TestCase):
  """Mistakes raise the errors main.py prints as one `error:` line, before anything runs."""

  def test_bad_inputs(self):
    image = np.zeros((32, 32, 3), np.float32)
    cases = [
        (lambda: ddip_jax.segment(np.zeros((32, 32, 5))), api.InputError, r'shape \(32, 32, 5\).*\(height, width, 3\)'),
        (
            lambda: ddip_jax.segment(image, np.zeros((32, 32, 3))),
            api.InputError,
            r'fg_hint is an array of shape \(32, 32, 3\): expected \(height, width\)',
        ),
        (lambda: ddip_jax.segment(image - 2), api.InputError, r'in \[0, 1\]$'),
        (lambda: ddip_jax.segment(image + 200), api.InputError, r'in \[0, 1\]; these look like 0-255 values'),
        (lambda: ddip_jax.segment(image.astype(np.int64)), api.InputError, 'dtype int64'),
        (lambda: ddip_jax.segment('no/such/image.png'), api.InputError, 'no such file'),
        (lambda: ddip_jax.segment(image, num_step=3), api.ConfigError, 'did you mean --config.num_steps'),
        (lambda: ddip_jax.segment(image, num_steps='many'), api.ConfigError, 'num_steps'),
        (lambda: ddip_jax.segment(image, num_steps=0), api.ConfigError, 'config.num_steps = 0'),
        (lambda: ddip_jax.segment(image, segmentation={'threshold': 2.0}), api.ConfigError, 'segmentation.threshold'),
        (lambda: ddip_jax.remove_watermark(image), api.InputError, 'either a hint'),
        (lambda: ddip_jax.decompose_video([image]), api.InputError, 'at least 2 frames'),
        (lambda: ddip_jax.dehaze(image, config='no_such_config.py'), api.ConfigError, 'no such config file'),
        (lambda: ddip_jax.dehaze(image, config=7), api.ConfigError, 'config=7: expected a config file'),
        (lambda: ddip_jax.dehaze(image, progress='yes'), api.ConfigError, "progress='yes': expected a function"),
        (
            lambda: ddip_jax.decompose_video([image, np.zeros((40, 32, 3), np.float32)], max_side=32),
            api.InputError,
            r'^frames differ in size: frame 1 is 32x40, frame 0 is 32x32;',
        ),
        (
            lambda: ddip_jax.remove_watermark(image, np.zeros((32, 32), bool)),
            api.InputError,
            r'^the hint array marks no pixel',
        ),
        # Not the demo: None is what cv2.imread returns for a file it cannot read.
        (lambda: ddip_jax.segment(None), api.InputError, r'^image is None: expected an array or an image file'),
        (lambda: ddip_jax.dehaze(None), api.InputError, r'^image is None'),
        (lambda: ddip_jax.decompose_video(None), api.InputError, r'^frames is None'),
        (
            lambda: ddip_jax.segment(np.zeros((0, 0, 3), np.uint8)),
            ddip_jax.InputError,
            r'^image is an empty array of shape \(0, 0, 3\)',
        ),
        (
            lambda: ddip_jax.segment(image, config=os.path.join(api._REPOSITORY, 'configs', 'dehaze.py')),
            api.ConfigError,
            r"runs task 'dehaze': this function runs 'segmentation'$",
        ),
        (lambda: ddip_jax.segment(image, num_steps=np.int64(0)), api.ConfigError, r'^config.num_steps = 0: must be'),
        (
            lambda: ddip_jax.segment(image, num_steps=True),
            api.ConfigError,
            r'^config.num_steps = True: expected a number, not a bool$',
        ),
        (
            lambda: ddip_jax.segment(image, inputs='photos/*.png'),
            api.ConfigError,
            r'^inputs: the Python API runs the input it is given; call it once per image',
        ),
        (
            lambda: ddip_jax.separate(image, image, transparency={'image2': 'other.png'}),
            api.ConfigError,
            r"^transparency.image2: give it as the function's argument, not as a config override$",
        ),
    ]
    for index, (call, error, pattern) in enumerate(cases):
      with self.subTest(case=index):
        with self.assertRaisesRegex(error, pattern):
          call()

  def test_errors_name_the_array_not_its_temporary_file(self):
    with self.assertRaises(api.InputError) as caught:
      ddip_jax.segment(np.zeros((4, 4, 3), np.uint8))
    self.assertEqual(
        str(caught.exception), 'the image array is 4x4: too small, the generators need sides of at least 8 pixels'
    )

  def test_the_errors_are_those_main_reports(self):
    self.assertTrue(issubclass(ddip_jax.InputError, runner.RUN_ERRORS))
    self.assertTrue(issubclass(ddip_jax.ConfigError, runner.RUN_ERRORS))
    self.assertIs(ddip_jax.NumericalError, engine.NumericalError)
    self.assertIs(ddip_jax.Interrupted, engine.Interrupted)

  def test_numpy_numbers_are_taken_as_the_command_line_takes_numbers(self):
    config = api.make_config(
        'zebra',
        None,
        {'image': 'photo.png'},
        {'num_steps': np.int64(7), 'learning_rate': np.float32(0.5), 'generator.channels_down': np.array([4, 8])},
    )
    self.assertEqual((config.num_steps, type(config.num_steps)), (7, int))
    self.assertEqual(config.learning_rate, 0.5)
    self.assertEqual(config.generator.channels_down, (4, 8))

  def test_an_array_too_large_for_the_memory_is_refused_before_it_is_converted(self):
    with (
        tempfile.TemporaryDirectory() as tmp,
        mock.patch.object(tempfile, 'tempdir', tmp),
        mock.patch.dict(os.environ, {memory.MEMORY_ENV: '0.55'}),
        mock.patch.object(writing, 'encode_png', side_effect=AssertionError('converted')),
    ):
      with self.assertRaisesRegex(
          api.InputError,
          r'^the image array is 600x500 \(0.3 megapixels\): its run needs '
          r'about 0.6 GB of memory, more than the limit of 0.6 GB',
      ):
        ddip_jax.segment(np.zeros((500, 600, 3), np.uint8))
      with self.assertRaisesRegex(api.InputError, r'^the clip is 9 frames of 300x200: .* at most 5 frames of this '):
        ddip_jax.decompose_video(np.zeros((9, 200, 300, 3), np.uint8))
      self.assertEqual(os.listdir(tmp), [])


class ArrayInputTest(absltest.TestCase):
  """Arrays of the kinds image files hold become what `main.py` reads from such a file."""

  def test_gray_alpha_and_16_bit_arrays_as_their_files(self):
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
      for name, array, mode in (
          ('gray', rng.integers(0, 256, (6, 5), dtype=np.uint8), 'L'),
          ('rgba', rng.integers(0, 256, (6, 5, 4), dtype=np.uint8), 'RGBA'),
          ('gray_alpha', rng.integers(0, 256, (6, 5, 2), dtype=np.uint8), 'LA'),
      ):
        with self.subTest(name):
          path = os.path.join(tmp, f'{name}.png')
          Image.fromarray(array, mode).save(path)
          np.testing.assert_allclose(
              array_inputs.as_float_image(array, name, channels=True), image_io.load_image(path), atol=1e-6
          )
      wide = rng.integers(0, 65536, (6, 5, 3), dtype=np.uint16)
      np.testing.assert_allclose(array_inputs.as_float_image(wide, 'wide', channels=True), wide / 65535.0, atol=1e-6)
    mask = array_inputs.as_float_image(np.ones((6, 5, 1), bool), 'hint', channels=False)
    self.assertEqual((mask.shape, mask.dtype), ((6, 5), np.float32))

  def test_an_rgba_photo_runs(self):
    image = np.zeros((32, 32, 4), np.uint8)
    image[..., 3] = 255
    image[8:24, 8:24, :3] = (250, 30, 30)
    fg_hint = np.zeros((32, 32), bool)
    fg_hint[14:18, 14:18] = True
    result = ddip_jax.segment(image, fg_hint, **_TINY)
    self.assertEqual(result.fg.shape, (32, 32, 3))


class ConfigTest(absltest.TestCase):

  def test_overrides_by_dotted_name_or_nested_dict(self):
    config = api.make_config(
        'zebra',
        None,
        {'image': 'photo.png'},
        {'num_steps': 7, 'segmentation.hint_steps': 5, 'generator': {'channels_down': [4]}},
    )
    self.assertEqual((config.image, config.num_steps, config.segmentation.hint_steps), ('photo.png', 7, 5))
    self.assertEqual(config.generator.channels_down, (4,))
    self.assertIsNone(config.gt_mask)  # The demo's ground truth does not describe photo.png.
    kept = api.make_config('zebra', None, {'image': 'photo.png'}, {'gt_mask': 'truth.png'})
    self.assertEqual(kept.gt_mask, 'truth.png')


if __name__ == '__main__':
  absltest.main()

"""Tests of ddip_jax.hints: automatic hints on a synthetic image, user hint files."""

import os
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from ddip_jax import hints
from ddip_jax import image_io
from ddip_jax import watermark_strokes
from ddip_jax import writing


def _synthetic(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """A textured green background with a red elliptical blob in the middle.

  Returns:
    (image (H, W, 3) float32 in [0, 1], blob (H, W) bool).
  """
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  img = np.empty((h, w, 3), np.float32)
  img[...] = [0.35, 0.55, 0.3]
  img += 0.06 * np.sin(xx * 0.9 + yy * 0.4)[..., None]  # Stripes ...
  img += rng.normal(0, 0.03, (h, w, 1)) + rng.normal(0, 0.01, (h, w, 3))  # ... and grain.
  blob = ((yy - h / 2) / (h / 4)) ** 2 + ((xx - w / 2) / (w / 5)) ** 2 <= 1
  img[blob] = [0.85, 0.15, 0.2]
  img[blob] += rng.normal(0, 0.03, (blob.sum(), 3))
  return np.clip(img, 0, 1).astype(np.float32), blob


def _tempdir(test: absltest.TestCase) -> str:
  tmp = tempfile.TemporaryDirectory()
  test.addCleanup(tmp.cleanup)
  return tmp.name


def _border(h: int, w: int, band: int) -> np.ndarray:
  ring = np.ones((h, w), bool)
  ring[band:-band, band:-band] = False
  return ring


class AutomaticHintsTest(parameterized.TestCase):

  @parameterized.parameters((48, 64), (37, 53), (120, 90))
  def test_saliency_hints_find_the_blob(self, h, w):
    img, blob = _synthetic(h, w)
    fg, bg, info = hints.resolve_hints(img, fg_path=None, bg_path=None, method='saliency')
    for hint in (fg, bg):
      self.assertEqual(hint.shape, (h, w))
      self.assertEqual(hint.dtype, np.float32)
      self.assertTrue(np.isin(hint, (0.0, 1.0)).all())
    fg, bg = fg > 0, bg > 0
    # Precision 1: every fg hint pixel is in the blob, every bg hint pixel outside.
    self.assertTrue(fg.any())
    self.assertFalse((fg & ~blob).any())
    self.assertFalse((bg & blob).any())
    self.assertFalse((fg & bg).any())
    # ... and the hints cover a fair part of both regions.
    self.assertGreater(fg.sum(), 0.3 * blob.sum())
    self.assertGreater(bg.sum(), 0.5 * (~blob).sum())
    self.assertTrue(bg[_border(h, w, 2)].all())
    self.assertEqual(info['fg_hint']['source'], 'auto:saliency')
    self.assertAlmostEqual(info['fg_hint']['fraction'], fg.mean(), places=6)
    self.assertEqual(info['bg_hint']['source'], 'auto:saliency')
    self.assertEqual(info['overlap_pixels'], 0)

  def test_saliency_map_range(self):
    img, blob = _synthetic(40, 56)
    sal = hints.saliency_map(img)
    self.assertEqual(sal.shape, (40, 56))
    self.assertGreaterEqual(sal.min(), 0.0)
    self.assertLessEqual(sal.max(), 1.0)
    self.assertGreater(sal[blob].mean(), sal[~blob].mean() + 0.5)

  @parameterized.parameters(((48, 64), 2), ((200, 300), 4), ((10, 400), 2))
  def test_border_hints(self, shape, band):
    # Band = max(2, round(0.02 * shorter side)).
    img = np.full(shape + (3,), 0.5, np.float32)
    fg, bg, info = hints.resolve_hints(img, fg_path=None, bg_path=None, method='border')
    np.testing.assert_array_equal(fg, np.zeros(shape))
    np.testing.assert_array_equal(bg, _border(*shape, band).astype(np.float32))
    self.assertEqual(info['fg_hint']['source'], 'auto:border')
    self.assertEqual(info['fg_hint']['fraction'], 0.0)

  def test_rgb_to_lab_golden_values(self):
    rgb = np.array([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    # CIE Lab (D65) of sRGB white, black, red and blue.
    expected = [[[100.0, 0.0, 0.0], [0.0, 0.0, 0.0], [53.24, 80.09, 67.20], [32.30, 79.19, -107.86]]]
    np.testing.assert_allclose(hints.rgb_to_lab(rgb), expected, atol=0.02)


class UserHintsTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = _tempdir(self)
    self.image, self.blob = _synthetic(48, 64)

  def _save(self, name: str, mask: np.ndarray) -> str:
    path = os.path.join(self.dir, name)
    writing.save_image(path, mask.astype(np.float32))
    return path

  def test_user_hints_are_resized_to_the_image(self):
    small_fg = np.zeros((24, 32))
    small_fg[9:15, 12:20] = 1
    small_bg = np.zeros((24, 32))
    small_bg[:3] = 1
    small_bg[3:, 29:] = 0.8  # Binarised at 0.5.
    small_bg[20:, :4] = 0.3  # Below 0.5: not hinted.
    fg_path, bg_path = self._save('fg.png', small_fg), self._save('bg.png', small_bg)
    fg, bg, info = hints.resolve_hints(self.image, fg_path=fg_path, bg_path=bg_path, method='saliency')
    # Nearest-neighbour x2: every pixel becomes a 2x2 block.
    np.testing.assert_array_equal(fg, np.kron(small_fg, np.ones((2, 2))))
    np.testing.assert_array_equal(bg, np.kron(small_bg > 0.5, np.ones((2, 2))))
    self.assertEqual(info['fg_hint']['source'], fg_path)
    self.assertEqual(info['bg_hint']['source'], bg_path)
    self.assertAlmostEqual(info['fg_hint']['fraction'], 48 / (24 * 32))

  def test_a_thin_stroke_survives_shrinking(self):
    big_fg = np.zeros((480, 640))
    rows = np.arange(100, 380)
    big_fg[rows, rows + 103] = 1.0  # A 1-px diagonal stroke, 10x the image's size, off nearest's samples.
    big_bg = np.zeros((480, 640))
    big_bg[:, 630:] = 1.0
    fg_path, bg_path = self._save('fg.png', big_fg), self._save('bg.png', big_bg)
    fg, bg, _ = hints.resolve_hints(self.image, fg_path=fg_path, bg_path=bg_path, method='border')
    expected = np.zeros((48, 64), bool)
    expected[rows // 10, (rows + 103) // 10] = True  # Every 10x10 block the stroke crosses ...
    self.assertTrue((fg[expected] == 1).all())  # ... is hinted (nearest neighbour kept 1 pixel in 10),
    self.assertLessEqual(fg.sum(), 3 * expected.sum())  # and not much more.
    np.testing.assert_array_equal(bg[:, 63], 1.0)

  def test_one_user_hint_and_one_automatic(self):
    fg_user = np.zeros((48, 64))
    fg_user[20:28, 24:40] = 1
    fg_path = self._save('fg.png', fg_user)
    fg, bg, info = hints.resolve_hints(self.image, fg_path=fg_path, bg_path=None, method='border')
    np.testing.assert_array_equal(fg, fg_user)
    np.testing.assert_array_equal(bg, _border(48, 64, 2))
    self.assertEqual(info['bg_hint']['source'], 'auto:border')

  def test_only_a_box_finds_the_object_inside_it(self):
    # A blue patch outside the box, away from the border: the most salient region
    # against the border's colours, but not against those outside the box.
    image = self.image.copy()
    image[3:45, 51:62] = [0.1, 0.2, 0.95]
    self.assertFalse(self.blob[3:45, 51:62].any())
    fg_border, _, _ = hints.resolve_hints(image, fg_path=None, bg_path=None, method='object')
    self.assertFalse(self.blob[fg_border > 0].all())  # Without the box: on the patch.
    box = np.zeros((48, 64))
    box[8:40, 14:50] = 1
    outside = self._save('outside.png', 1 - box)
    for method in ('object', 'saliency'):
      fg, bg, info = hints.resolve_hints(image, fg_path=None, bg_path=outside, method=method)
      np.testing.assert_array_equal(bg[box == 0], 1.0)  # The user's hint is kept ...
      self.assertTrue(fg.any(), method)
      self.assertFalse((fg * (1 - box)).any(), method)  # ... the fg hint is inside the box ...
      self.assertTrue(self.blob[fg > 0].all(), method)  # ... on the object.
      self.assertEqual(info['fg_hint']['source'], f'auto:{method} (against the bg_hint)')

  def test_object_hints_mark_only_the_border_as_background(self):
    fg, bg, _ = hints.resolve_hints(self.image, fg_path=None, bg_path=None, method='object')
    band = max(2, round(0.02 * 48))
    np.testing.assert_array_equal(bg > 0, _border(48, 64, band) & (fg == 0))
    self.assertTrue(fg.any() and self.blob[fg > 0].all())

  def test_partial_overlap_is_dropped_from_both(self):
    fg_user = np.zeros((48, 64))
    fg_user[10:30, 10:30] = 1
    bg_user = np.zeros((48, 64))
    bg_user[20:40, 20:40] = 1
    fg, bg, info = hints.resolve_hints(
        self.image, fg_path=self._save('fg.png', fg_user), bg_path=self._save('bg.png', bg_user), method='saliency'
    )
    overlap = (fg_user > 0) & (bg_user > 0)
    self.assertEqual(info['overlap_pixels'], 100)
    np.testing.assert_array_equal(fg, (fg_user > 0) & ~overlap)
    np.testing.assert_array_equal(bg, (bg_user > 0) & ~overlap)

  @parameterized.named_parameters(
      ('fg_all_zero', 'fg', 0.0, 'marks no pixel'),
      ('bg_all_zero', 'bg', 0.0, 'marks no pixel'),
      ('fg_below_half', 'fg', 0.4, 'marks no pixel'),
      ('fg_all_one', 'fg', 1.0, 'marks every pixel'),
      ('bg_all_one', 'bg', 1.0, 'marks every pixel'),
  )
  def test_degenerate_user_hint_is_refused(self, which, value, message):
    path = self._save(f'{which}.png', np.full((24, 32), value))
    kwargs = {'fg_path': None, 'bg_path': None, f'{which}_path': path}
    with self.assertRaisesRegex(image_io.InputError, message) as ctx:
      hints.resolve_hints(self.image, method='border', **kwargs)
    self.assertIn(path, str(ctx.exception))
    self.assertNotIn('\n', str(ctx.exception))

  def test_fully_overlapping_user_hints_are_refused(self):
    # Identical hints would both be emptied by the overlap rule: the run would go
    # on without any hint, so the inputs are refused instead.
    square = np.zeros((48, 64))
    square[10:30, 10:30] = 1
    fg_path, bg_path = self._save('fg.png', square), self._save('bg.png', square)
    with self.assertRaisesRegex(image_io.InputError, 'also marked in the bg_hint') as ctx:
      hints.resolve_hints(self.image, fg_path=fg_path, bg_path=bg_path, method='saliency')
    self.assertIn(fg_path, str(ctx.exception))
    self.assertIn(bg_path, str(ctx.exception))
    # A bg hint inside the fg hint: the bg hint would vanish.
    inner = np.zeros((48, 64))
    inner[15:20, 15:20] = 1
    inner_path = self._save('inner.png', inner)
    with self.assertRaisesRegex(image_io.InputError, f'{inner_path}: every pixel the bg_hint'):
      hints.resolve_hints(self.image, fg_path=fg_path, bg_path=inner_path, method='saliency')

  def test_user_hint_covering_the_automatic_one(self):
    # A user fg hint over the whole border band empties the automatic bg hint;
    # that is the user's choice, not an error.
    fg_user = _border(48, 64, 3).astype(np.float32)
    fg, bg, info = hints.resolve_hints(self.image, fg_path=self._save('fg.png', fg_user), bg_path=None, method='border')
    np.testing.assert_array_equal(fg, _border(48, 64, 3) & ~_border(48, 64, 2))
    np.testing.assert_array_equal(bg, np.zeros((48, 64)))
    self.assertEqual(info['overlap_pixels'], _border(48, 64, 2).sum())

  @parameterized.parameters('fg', 'bg')
  def test_missing_hint_file(self, which):
    path = os.path.join(self.dir, 'no_such_hint.png')
    kwargs = {'fg_path': None, 'bg_path': None, f'{which}_path': path}
    with self.assertRaisesRegex(image_io.InputError, 'no such file') as ctx:
      hints.resolve_hints(self.image, method='saliency', **kwargs)
    self.assertIn(path, str(ctx.exception))


if __name__ == '__main__':
  absltest.main()


class EmptyAutomaticHintsTest(parameterized.TestCase):
  """Automatic hints that mark nothing are refused like a user's empty hint file."""

  @parameterized.parameters(
      ((32, 48, 3), 'saliency', 'no pixel as foreground'),
      ((4, 32, 48, 3), 'motion', 'no pixel as foreground'),
      ((4, 32, 48, 3), 'saliency', 'no pixel as foreground'),
  )
  def test_a_blank_image_is_refused(self, shape, method, message):
    with self.assertRaisesRegex(
        image_io.InputError,
        f'^the automatic hints \\({method}\\) mark {message}: ' 'nothing stands out of the image; give hint files',
    ):
      hints.resolve_hints(np.full(shape, 0.5, np.float32), fg_path=None, bg_path=None, method=method)

  def test_border_hints_have_no_foreground_by_design(self):
    fg, bg, _ = hints.resolve_hints(np.full((32, 48, 3), 0.5, np.float32), fg_path=None, bg_path=None, method='border')
    self.assertFalse(fg.any())
    self.assertTrue(bg.any())


class StrokeHintTest(parameterized.TestCase):
  """`stroke_hint`: the thin strokes of a watermark inside its rough box."""

  def _watermarked(self, colour: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image, _ = _synthetic(48, 48, seed=3)
    strokes = np.zeros((48, 48), bool)
    strokes[20:22, 12:36] = True  # A 2-pixel bar ...
    strokes[14:30, 23:25] = True  # ... and its cross.
    box = np.zeros((48, 48), np.float32)
    box[10:34, 8:40] = 1
    blended = image.copy()
    blended[strokes] = 0.5 * image[strokes] + 0.5 * colour
    return blended, strokes, box

  @parameterized.parameters(('light', 1.0), ('dark', 0.0), ('auto', 1.0), ('auto', 0.0))
  def test_finds_the_strokes_inside_the_box(self, polarity, colour):
    image, strokes, box = self._watermarked(colour)
    found, used = watermark_strokes.stroke_hint(image, box, polarity=polarity, width=5)
    self.assertTrue(used.startswith('light (' if colour else 'dark ('), used)
    self.assertEqual(found.dtype, np.float32)
    self.assertFalse(found[box == 0].any())  # Never outside the box.
    hit = found > 0
    self.assertGreater((hit & strokes).sum() / strokes.sum(), 0.8)  # Recall.
    self.assertGreater((hit & strokes).sum() / hit.sum(), 0.5)  # Precision (the whole box's: 0.09).

  def test_wrong_polarity_misses_the_strokes(self):
    image, strokes, box = self._watermarked(1.0)
    found, _ = watermark_strokes.stroke_hint(image, box, polarity='dark', width=5)
    self.assertLess(((found > 0) & strokes).sum() / strokes.sum(), 0.2)

  @parameterized.parameters(
      ({'polarity': 'none', 'width': 5}, 'polarity'),
      ({'polarity': 'light', 'width': 4}, 'odd'),
      ({'polarity': 'light', 'width': 1}, 'odd'),
  )
  def test_bad_arguments(self, kwargs, message):
    image, _, box = self._watermarked(1.0)
    with self.assertRaisesRegex(ValueError, message):
      watermark_strokes.stroke_hint(image, box, **kwargs)

"""Tests of ddip_jax.cutout: an interactive cut-out whose corrections continue the last result in memory."""

from absl.testing import absltest
import chex
import numpy as np

import ddip_jax
from ddip_jax import compile_cache
from ddip_jax import cutout

# A tiny net and schedule: the test is about what carries over, not about quality.
_TINY = {
    'max_side': 32,
    'generator.channels_down': (4, 8),
    'generator.channels_up': (4, 8),
    'generator.channels_skip': (0, 0),
    'segmentation.user_hint_steps': 6,
    'segmentation.user_num_steps': 6,
    'loop.strategy': 'step',
}


def _photo() -> tuple[np.ndarray, np.ndarray]:
  """(48, 64, 3) uint8: a red disc on a textured green background; and the disc."""
  yy, xx = np.mgrid[:48, :64]
  disc = (yy - 24) ** 2 + (xx - 32) ** 2 < 14**2
  photo = np.where(disc[..., None], [220, 40, 50], [60, 140, 70]) + (10 * np.sin(xx * 0.7))[..., None]
  return np.clip(photo, 0, 255).astype(np.uint8), disc


class StrokeCoreTest(absltest.TestCase):

  def test_a_wide_strokes_rim_is_not_core_a_dab_is(self):
    stroke = np.zeros((40, 40), bool)
    stroke[5:25, 5:25] = True  # A wide brush: half-width 10.
    stroke[33, 33] = True  # A one-pixel dab.
    core = cutout.stroke_core(stroke)
    self.assertTrue(core[15, 15] and core[33, 33])
    self.assertFalse(core[5, 15] or core[24, 10])  # The rim.
    self.assertFalse((core & ~stroke).any())
    self.assertFalse(cutout.stroke_core(np.zeros((3, 3), bool)).any())

  def test_shrunk_strokes_keep_thin_lines(self):
    stroke = np.zeros((40, 80), bool)
    stroke[21, 10:70] = True
    small = cutout.shrink_strokes(stroke, (10, 20))
    self.assertTrue(small[5, 3:17].all())


class CutoutTest(absltest.TestCase):

  def test_a_correction_continues_without_compiling_and_respects_the_click(self):
    photo, disc = _photo()
    fg = np.zeros(disc.shape, bool)
    fg[24, 26:38] = True
    bg = np.zeros(disc.shape, bool)
    bg[2, :] = bg[-3, :] = True
    cut = ddip_jax.Cutout(photo, progress=False, correction_steps=4, **_TINY)
    self.assertIsNone(cut.result)
    first = cut.add(fg=fg, bg=bg)
    self.assertEqual(first.steps, 12)
    chex.assert_shape([first.mask, first.alpha, first.soft_mask], disc.shape)
    chex.assert_shape([first.fg, first.bg], (*disc.shape, 3))
    self.assertEqual(first.cutout.shape, (*disc.shape, 4))
    np.testing.assert_array_equal(first.cutout[..., 3], np.round(first.alpha * 255).astype(np.uint8))
    np.testing.assert_array_equal(first.alpha >= 0.5, first.mask > 0.5)  # The soft edge thresholded is the mask.
    self.assertTrue(first.mask[fg].all() and not first.mask[bg].any())
    # A background click inside the disc: it must end as background, and no step compiles again.
    click = np.zeros(disc.shape, bool)
    click[20:23, 30:33] = True
    preview = cut.preview(bg=click)
    self.assertFalse(preview[21, 31])
    with compile_cache.count_compilations() as compiled:
      second = cut.add(bg=click)
    self.assertEqual(compiled.steps, 0)
    self.assertEqual(second.steps, 4)
    self.assertFalse(second.mask[21, 31] or second.alpha[21, 31])
    self.assertTrue(second.mask[fg & ~click].all())
    self.assertIs(cut.result, second)
    # Replacing the strokes: the click is gone.
    third = cut.add(fg=fg, bg=bg, replace=True)
    self.assertTrue(third.mask[24, 30])

  def test_compiled_ahead_the_first_result_compiles_no_step(self):
    photo, disc = _photo()
    fg = np.zeros(disc.shape, bool)
    fg[24, 26:38] = True
    tiny = {**_TINY, 'generator.channels_down': (4, 4), 'generator.channels_up': (4, 4)}  # A program of its own.
    cut = ddip_jax.Cutout(photo, progress=False, **tiny)
    cut.compile_ahead().join()
    with compile_cache.count_compilations() as compiled:
      cut.add(fg=fg)
    self.assertEqual(compiled.steps, 0)

  def test_same_seed_same_result(self):
    photo, disc = _photo()
    fg = np.zeros(disc.shape, bool)
    fg[24, 26:38] = True
    masks = [ddip_jax.Cutout(photo, seed=3, progress=False, **_TINY).add(fg=fg).soft_mask for _ in range(2)]
    np.testing.assert_array_equal(*masks)

  def test_bad_inputs(self):
    photo, _ = _photo()
    with self.assertRaisesRegex(ddip_jax.InputError, 'image is None'):
      ddip_jax.Cutout(None)
    with self.assertRaisesRegex(ddip_jax.ConfigError, 'no_such'):
      ddip_jax.Cutout(photo, no_such=1)
    with self.assertRaisesRegex(ddip_jax.ConfigError, 'correction_steps'):
      ddip_jax.Cutout(photo, correction_steps=0)
    cut = ddip_jax.Cutout(photo, progress=False, **_TINY)
    with self.assertRaisesRegex(ddip_jax.InputError, 'stroke map of shape'):
      cut.add(fg=np.ones((5, 5), bool))


if __name__ == '__main__':
  absltest.main()

"""Tests of ddip_jax.grow: geodesic distances, GrabCut growth and dense hints."""

from absl.testing import absltest
import numpy as np

from ddip_jax import grow
from ddip_jax import hints as hints_lib


def _two_regions(h: int = 40, w: int = 56):
  """A textured green background with a red ellipse, its mask, a 1-px stroke and a border band."""
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[0:h, 0:w]
  image = np.empty((h, w, 3), np.float32)
  image[...] = [0.3, 0.55, 0.25]
  image += 0.04 * np.sin(xx * 0.9 + yy * 0.5)[..., None] + rng.normal(0, 0.02, (h, w, 1))
  blob = ((yy - h / 2) / (h / 4)) ** 2 + ((xx - w / 2) / (w / 4)) ** 2 <= 1
  image[blob] = [0.85, 0.2, 0.15] + rng.normal(0, 0.03, (blob.sum(), 3))
  stroke = np.zeros((h, w), bool)
  stroke[h // 2 - 1 : h // 2 + 2, w // 2 - 8 : w // 2 + 9] = True
  band = np.zeros((h, w), bool)
  band[:2], band[-2:], band[:, :2], band[:, -2:] = True, True, True, True
  return np.clip(image, 0, 1), blob, stroke, band


class GeodesicTest(absltest.TestCase):

  def test_flat_image_is_chessboard_like_path_length(self):
    lab = np.zeros((5, 7, 3))
    seeds = np.zeros((5, 7), bool)
    seeds[0, 0] = True
    d = grow.geodesic_distance(lab, seeds, length_cost=1.0)
    self.assertAlmostEqual(d[0, 0], 0.0, places=6)
    self.assertAlmostEqual(d[0, 6], 6.0, places=6)
    self.assertAlmostEqual(d[4, 4], 4 * np.sqrt(2), places=6)  # Diagonal steps.
    self.assertAlmostEqual(d[4, 6], 4 * np.sqrt(2) + 2, places=6)

  def test_edge_costs_its_colour_change(self):
    lab = np.zeros((3, 6, 3))
    lab[:, 3:, 0] = 50.0  # A vertical edge of 50 Lab units.
    seeds = np.zeros((3, 6), bool)
    seeds[:, 0] = True
    d = grow.geodesic_distance(lab, seeds, length_cost=1.0)
    self.assertAlmostEqual(d[1, 2], 2.0, places=6)
    self.assertAlmostEqual(d[1, 3], 53.0, places=6)  # Crossing the edge once.
    self.assertAlmostEqual(d[1, 5], 55.0, places=6)


class GrowTest(absltest.TestCase):

  def test_a_stroke_grows_to_the_object(self):
    image, blob, stroke, band = _two_regions()
    masks = grow.grow_masks(image, stroke.astype(np.float32), band.astype(np.float32))
    self.assertEqual(set(masks), {'geodesic', 'background'})
    for name, mask in masks.items():
      iou = (mask & blob).sum() / (mask | blob).sum()
      self.assertGreater(iou, 0.9, name)
      self.assertTrue(mask[stroke].all() and not mask[band].any(), name)

  def test_dense_hints_are_correct_and_leave_a_band(self):
    image, blob, stroke, band = _two_regions()
    for method in ('select', 'grabcut'):
      fg, bg, grown = grow.dense_hints(
          image, stroke.astype(np.float32), band.astype(np.float32), margin=0.04, method=method
      )
      self.assertEqual(fg.dtype, np.float32)
      self.assertFalse((fg * bg).any())
      self.assertGreater(fg.sum(), 5 * stroke.sum(), method)  # It grew.
      self.assertTrue(blob[fg > 0].all(), method)  # Only object pixels are fg ...
      self.assertFalse(blob[bg > 0].any(), method)  # ... and only background pixels bg.
      self.assertTrue(((fg + bg) == 0)[blob ^ np.roll(blob, 1, axis=1)].all(), method)  # Boundary unhinted.
      self.assertTrue(grown[stroke].all())

  def test_bg_allowed_limits_the_grown_background(self):
    image, blob, stroke, band = _two_regions()
    allowed = np.zeros(blob.shape, np.float32)
    allowed[:, :20] = 1.0
    _, bg, _ = grow.dense_hints(
        image, stroke.astype(np.float32), band.astype(np.float32), margin=0.04, bg_allowed=allowed
    )
    np.testing.assert_array_equal(bg > 0, (allowed > 0) & ~blob & (bg > 0) | band)
    self.assertTrue((bg[:, :20] > 0).sum() > 0.5 * (~blob[:, :20]).sum())  # Grown where allowed.
    self.assertFalse((bg[2:-2, 20:-2] > 0).any())  # Only the user's band elsewhere.

  def test_deterministic(self):
    image, _, stroke, band = _two_regions()
    a = grow.dense_hints(image, stroke.astype(np.float32), band.astype(np.float32), margin=0.02)
    b = grow.dense_hints(image, stroke.astype(np.float32), band.astype(np.float32), margin=0.02)
    for x, y in zip(a, b):
      np.testing.assert_array_equal(x, y)

  def test_nothing_to_grow_from_returns_hints(self):
    image, _, stroke, _ = _two_regions()
    empty = np.zeros(stroke.shape, np.float32)
    fg, bg, _ = grow.dense_hints(image, stroke.astype(np.float32), empty, margin=0.02)
    np.testing.assert_array_equal(fg, stroke)
    self.assertFalse(bg.any())

  def test_unknown_method(self):
    image, _, stroke, band = _two_regions()
    with self.assertRaises(ValueError):
      grow.dense_hints(image, stroke.astype(np.float32), band.astype(np.float32), margin=0.02, method='nope')


class CorrectionTest(absltest.TestCase):

  def test_a_click_flips_the_region_it_points_at_and_no_further(self):
    image = np.zeros((30, 60, 3), np.float32)
    image[:, 20:40] = [0.9, 0.1, 0.1]  # A red band in the middle of black.
    start = np.zeros((30, 60), bool)  # The previous mask missed everything.
    fg = np.zeros((30, 60), bool)
    fg[15, 30] = True  # A click on the red band.
    bg = np.zeros((30, 60), bool)
    bg[:, 0] = True  # The user's background stroke at the left edge.
    out = grow.corrected_start(image, start, new_fg=fg, new_bg=np.zeros_like(fg), fg=fg, bg=bg)
    self.assertTrue(out[:, 21:39].all())  # The red band, up to its edges.
    self.assertFalse(out[:, :19].any())  # Not across the edge towards the bg stroke.
    # A bg click takes it back.
    click = np.zeros((30, 60), bool)
    click[5, 25] = True
    back = grow.corrected_start(image, out, new_fg=np.zeros_like(fg), new_bg=click, fg=fg, bg=bg | click)
    self.assertFalse(back[click].any())
    self.assertTrue(back[15, 30])  # The fg click's own pixel stays.

  def test_a_click_on_a_missed_tip_does_not_flood_the_background_like_it(self):
    image = np.full((30, 60, 3), 0.5, np.float32)  # Grey background.
    image[5:25, 10:30] = 0.1  # A dark body the previous mask has...
    image[14:17, 30:35] = 0.47  # ...and a tip of nearly the background's grey that it missed.
    start = np.zeros((30, 60), bool)
    start[5:25, 10:30] = True
    fg = np.zeros((30, 60), bool)
    fg[15, 33] = True  # A click on the tip.
    bg = np.zeros((30, 60), bool)
    bg[:, -1] = True  # The user's background stroke: the right edge, far away.
    out = grow.corrected_start(image, start, new_fg=fg, new_bg=np.zeros_like(fg), fg=fg, bg=bg)
    self.assertTrue(out[15, 30:35].all())  # The tip.
    self.assertTrue(out[5:25, 10:30].all())  # The body stays.
    self.assertLess(out[:, 30:].sum(), 60)  # Not halfway to the far stroke (about 700 pixels before the reach).

  def test_dense_hints_from_a_start_keep_the_strokes(self):
    image = np.zeros((30, 60, 3), np.float32)
    image[:, 20:40] = [0.9, 0.1, 0.1]
    start = np.zeros((30, 60), bool)
    start[:, 20:40] = True
    fg = np.zeros((30, 60))
    fg[15, 30] = 1
    bg = np.zeros((30, 60))
    bg[:, 0] = 1
    bg[:, -1] = 1
    new_fg, new_bg, grown = grow.dense_hints(image, fg, bg, margin=0.02, start=start)
    self.assertTrue(grown[:, 22:38].all() and not grown[:, :18].any())
    self.assertTrue(new_fg[15, 30] and new_bg[0, 0] and not new_bg[15, 30])


class SnapTest(absltest.TestCase):

  def _shifted(self):
    image, blob, stroke, band = _two_regions()
    return image, blob, np.roll(blob, 3, axis=1), stroke, band  # A mask beside the object's edge.

  def test_a_mask_beside_the_edge_snaps_to_it(self):
    image, blob, shifted, stroke, band = self._shifted()
    iou = lambda m: (m & blob).sum() / (m | blob).sum()
    snapped = grow.snap(image, shifted, stroke, band)
    self.assertLess(iou(shifted), 0.85)
    self.assertGreater(iou(snapped), 0.95)
    self.assertTrue(snapped[stroke].all() and not snapped[band].any())

  def test_fixed_pixels_win_and_a_large_photo_snaps_shrunk(self):
    image, blob, shifted, stroke, band = self._shifted()
    fixed_bg = band | (blob & (np.arange(blob.shape[1]) < 24))  # The object's left part marked as background.
    snapped = grow.snap(image, shifted, stroke, fixed_bg)
    self.assertFalse(snapped[fixed_bg].any())
    big = np.repeat(np.repeat(image, 3, 0), 3, 1)  # 120 x 168, snapped at 56 px: the same mask enlarged.
    enlarge = lambda m: np.repeat(np.repeat(m, 3, 0), 3, 1)
    snapped_big = grow.snap(big, enlarge(shifted), enlarge(stroke), enlarge(band), max_side=56)
    self.assertEqual(snapped_big.shape, big.shape[:2])
    self.assertGreater((snapped_big == enlarge(grow.snap(image, shifted, stroke, band))).mean(), 0.97)

  def test_reach_keeps_far_regions(self):
    image, blob, _, stroke, band = self._shifted()
    twin = np.zeros(blob.shape, bool)
    twin[4:10, 4:12] = True  # A second patch of the object's colour, far from the mask.
    image = image.copy()
    image[twin] = image[blob][: twin.sum()]  # The object's own pixels.
    anywhere = grow.snap(image, blob, stroke, band, reach=None)
    near = grow.snap(image, blob, stroke, band)
    self.assertGreater(anywhere[twin].mean(), 0.9)  # GrabCut's colour model takes it ...
    self.assertFalse(near[twin].any())  # ... the default reach does not.

  def test_one_sided_mask_is_kept(self):
    image, blob, _, stroke, band = self._shifted()
    none = np.zeros(blob.shape, bool)
    np.testing.assert_array_equal(grow.snap(image, none, none, band), none)
    np.testing.assert_array_equal(grow.snap(image, ~none, none, none), ~none)


if __name__ == '__main__':
  absltest.main()

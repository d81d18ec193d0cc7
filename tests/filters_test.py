"""Tests of ddip_jax.filters against brute-force numpy and hand-computed values."""

import functools

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from ddip_jax import filters


def _random(shape, seed=0):
  return np.random.default_rng(seed).random(shape, dtype=np.float32)


# ---------------------------------------------------------------- references


def _np_windows(x, radius, border):
  """Yields (i, j, window) for every pixel, brute force."""
  h, w = x.shape[:2]
  if border == 'reflect':
    padded = np.pad(x, [(radius, radius), (radius, radius)] + [(0, 0)] * (x.ndim - 2), mode='symmetric')
  for i in range(h):
    for j in range(w):
      if border == 'reflect':
        yield i, j, padded[i : i + 2 * radius + 1, j : j + 2 * radius + 1]
      else:
        yield i, j, x[max(i - radius, 0) : i + radius + 1, max(j - radius, 0) : j + radius + 1]


def _np_box(x, radius, reduce, border='clip'):
  x = np.asarray(x, np.float64)
  out = np.zeros_like(x)
  for i, j, window in _np_windows(x, radius, border):
    out[i, j] = reduce(window, axis=(0, 1))
  return out


def _np_guided_filter(guide, src, radius, eps, border='clip', det_guard=False):
  """Per-pixel transcription of He et al.'s guidedfilter_color.m, float64.

  OpenCV's ximgproc.guidedFilter is border='reflect' with det_guard=True: for a
  3-channel guide and eps < 1e-2 a determinant with |det| < 1e-6 is replaced by 1.
  """
  guide = np.asarray(guide, np.float64)
  p = np.asarray(src, np.float64)
  p = p[..., None] if p.ndim == 2 else p
  h, w, g = guide.shape
  stacked = np.concatenate([guide, p], axis=-1)
  a = np.zeros((h, w, g, p.shape[-1]))
  b = np.zeros((h, w, p.shape[-1]))
  for i, j, window in _np_windows(stacked, radius, border):
    window_i = window[..., :g].reshape(-1, g)
    window_p = window[..., g:].reshape(-1, p.shape[-1])
    mean_i, mean_p = window_i.mean(0), window_p.mean(0)
    sigma = window_i.T @ window_i / len(window_i) - np.outer(mean_i, mean_i)
    sigma += eps * np.eye(g)
    cov_ip = window_i.T @ window_p / len(window_i) - np.outer(mean_i, mean_p)
    det = np.linalg.det(sigma)
    if det_guard and g == 3 and eps < 1e-2 and abs(det) < 1e-6:
      inverse = np.linalg.inv(sigma) * det  # the adjugate, divided by 1
    else:
      inverse = np.linalg.inv(sigma)
    a[i, j] = inverse @ cov_ip
    b[i, j] = mean_p - a[i, j].T @ mean_i
  mean_a = _np_box(a, radius, np.mean, border)
  mean_b = _np_box(b, radius, np.mean, border)
  q = np.einsum('hwgk,hwg->hwk', mean_a, guide) + mean_b
  return q.reshape(np.shape(src))


def _np_upsample_bilinear_x2(x):
  """torch bilinear, align_corners=False, scale 2, by its general index formula."""
  x = np.asarray(x, np.float64)
  for axis in (1, 2):
    n = x.shape[axis]
    out = []
    for o in range(2 * n):
      source = max((o + 0.5) / 2 - 0.5, 0.0)
      lo = int(np.floor(source))
      hi = min(lo + 1, n - 1)
      frac = source - lo
      out.append((1 - frac) * np.take(x, lo, axis) + frac * np.take(x, hi, axis))
    x = np.stack(out, axis=axis)
  return x


# --------------------------------------------------------------------- tests


class BoxFilterTest(parameterized.TestCase):

  @parameterized.parameters(
      ((5, 7), 0, 'clip'),
      ((5, 7), 2, 'clip'),
      ((6, 4, 3), 9, 'clip'),
      ((1, 3, 2), 1, 'clip'),
      ((5, 7), 2, 'reflect'),
      ((6, 4, 3), 9, 'reflect'),
  )
  def test_matches_brute_force(self, shape, radius, border):
    x = _random(shape)
    box_sum = functools.partial(filters.box_sum, radius=radius, border=border)
    box_mean = functools.partial(filters.box_mean, radius=radius, border=border)
    np.testing.assert_allclose(box_sum(x), _np_box(x, radius, np.sum, border), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(box_mean(x), _np_box(x, radius, np.mean, border), rtol=1e-5, atol=1e-6)

  def test_hand_computed_values(self):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    # Clipped 3x3 windows: top-left corner sees rows 0-1, cols 0-1.
    np.testing.assert_allclose(filters.box_sum(x, radius=1)[0, 0], 0 + 1 + 4 + 5)
    np.testing.assert_allclose(filters.box_mean(x, radius=1)[0, 0], 10 / 4)
    # A window larger than the image sees every pixel: the global mean.
    np.testing.assert_allclose(filters.box_mean(x, radius=7), np.full((3, 4), 5.5), rtol=1e-6)
    # OpenCV cv2.boxFilter(x, -1, (11, 11), normalize=True,
    # borderType=cv2.BORDER_REFLECT)[0] on the same image.
    np.testing.assert_allclose(
        filters.box_mean(x, radius=5, border='reflect')[0], [6.181818, 6.0, 5.7272725, 5.5454545], rtol=1e-6
    )


class GuidedFilterTest(parameterized.TestCase):

  @parameterized.parameters(
      ((7, 9), 3, 2, False),
      ((7, 9, 2), 3, 12, False),
      ((7, 9), 1, 2, False),
      ((7, 9), 3, 2, True),
      ((7, 9, 2), 1, 12, True),
  )
  def test_matches_numpy_reference(self, src_shape, guide_channels, radius, opencv_compat):
    guide = _random((7, 9, guide_channels), seed=1)
    src = _random(src_shape, seed=2)
    eps = 1e-3
    fn = functools.partial(filters.guided_filter, radius=radius, eps=eps, opencv_compat=opencv_compat)
    out = fn(guide, src)
    self.assertEqual(out.shape, src.shape)
    np.testing.assert_allclose(
        out,
        _np_guided_filter(
            guide, src, radius, eps, border='reflect' if opencv_compat else 'clip', det_guard=opencv_compat
        ),
        atol=2e-5,
    )

  def test_opencv_determinant_guard(self):
    # Flat top half: det(Sigma + eps Id) ~ eps^3 < 1e-6, OpenCV's guard kicks in.
    guide = ((np.arange(90).reshape(6, 5, 3) * 7 % 11) / 10).astype(np.float32)
    guide[:3] = 0.5 + 0.002 * guide[:3]
    src = ((np.arange(30).reshape(6, 5) * 3 % 7) / 6).astype(np.float32)
    # cv2.ximgproc.guidedFilter(guide, src, 1, 1e-4), OpenCV 5.0.0.
    expected = np.array(
        [
            [0.31275719, 0.40329218, 0.51646090, 0.60082304, 0.64814812],
            [0.37654322, 0.43827161, 0.49186847, 0.54727942, 0.56590229],
            [0.44031781, 0.47724855, 0.47462553, 0.48857507, 0.46092454],
            [0.57016456, 0.54702240, 0.51017916, 0.60518527, 0.22495124],
            [0.47394386, 0.30050421, 0.36594909, 0.75950974, 0.49447626],
            [0.83289427, 0.34165367, 0.44091639, 0.39637506, 0.39323702],
        ]
    )
    opencv = functools.partial(filters.guided_filter, radius=1, eps=1e-4, opencv_compat=True)
    np.testing.assert_allclose(opencv(guide, src), expected, atol=1e-5)
    np.testing.assert_allclose(
        opencv(guide, src), _np_guided_filter(guide, src, 1, 1e-4, border='reflect', det_guard=True), atol=1e-5
    )
    # Without the guard the flat half is filtered very differently.
    unguarded = _np_guided_filter(guide, src, 1, 1e-4, border='reflect')
    self.assertGreater(np.abs(unguarded - expected).max(), 0.05)

  def test_hand_computed_values(self):
    guide = _random((7, 9, 3), seed=3)
    fn = functools.partial(filters.guided_filter, radius=2, eps=1e-2)
    # A constant source has zero covariance with the guide: a = 0, q = p.
    np.testing.assert_allclose(fn(guide, np.full((7, 9), 0.3, np.float32)), 0.3, rtol=1e-5)
    # Radius 0: every window is one pixel, so var = cov = 0, a = 0 and q = p.
    gray = guide[..., :1]
    fn0 = functools.partial(filters.guided_filter, radius=0, eps=1e-2)
    np.testing.assert_allclose(fn0(gray, 2 * gray[..., 0] + 1), 2 * gray[..., 0] + 1, rtol=1e-6)


class MinFilterTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(((5, 7), 0), ((5, 7), 3), ((6, 4, 3), 1), ((6, 4, 3), 10))
  def test_matches_brute_force(self, shape, radius):
    x = _random(shape)
    fn = self.variant(functools.partial(filters.min_filter, radius=radius))
    np.testing.assert_array_equal(fn(x), _np_box(x, radius, np.min).astype(np.float32))

  @chex.variants(with_jit=True, without_jit=True)
  def test_hand_computed_values(self):
    x = np.ones((4, 5, 2), np.float32)
    x[0, 0, 0] = 0.0
    x[3, 4, 1] = -1.0
    out = self.variant(functools.partial(filters.min_filter, radius=1))(x)
    expected = np.ones((4, 5, 2), np.float32)
    expected[:2, :2, 0] = 0.0
    expected[2:, 3:, 1] = -1.0
    np.testing.assert_array_equal(out, expected)


class ReflectPadTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(
      ((2, 5, 7, 3), 1),
      ((1, 8, 6, 2), 2),
      ((1, 3, 3, 1), 2),
      ((1, 2, 2, 3), 2),
      ((1, 2, 3, 1), 1),  # pad >= a side: several reflections.
  )
  def test_values_and_gradient_match_jnp_pad(self, shape, pad):
    rng = np.random.default_rng(0)
    x = rng.random(shape, dtype=np.float32)
    reference = functools.partial(jnp.pad, pad_width=((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')
    out, vjp = jax.vjp(self.variant(functools.partial(filters.reflect_pad, pad=pad)), x)
    expected, expected_vjp = jax.vjp(reference, x)
    np.testing.assert_array_equal(out, expected)
    g = rng.random(out.shape, dtype=np.float32)
    np.testing.assert_allclose(vjp(g)[0], expected_vjp(g)[0], rtol=1e-6, atol=1e-6)


class UpsampleTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters((1, 3, 5, 2), (2, 4, 4, 1), (1, 1, 2, 3))
  def test_matches_torch_formula(self, *shape):
    x = _random(shape)
    out = self.variant(filters.upsample_bilinear_x2)(x)
    chex.assert_shape(out, (shape[0], 2 * shape[1], 2 * shape[2], shape[3]))
    np.testing.assert_allclose(out, _np_upsample_bilinear_x2(x), rtol=1e-6, atol=1e-7)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters((1, 3, 5, 2), (2, 8, 7, 3))
  def test_matches_jax_image_resize(self, *shape):
    # jax.image.resize renormalises the triangle kernel at the border, which for
    # x2 upsampling equals edge clamping: the two agree everywhere.
    x = _random(shape, seed=4)
    out = self.variant(filters.upsample_bilinear_x2)(x)
    expected = jax.image.resize(x, out.shape, 'bilinear')
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters((1, 1, 1, 2), (1, 2, 3, 1), (2, 5, 4, 3), (1, 8, 8, 2))
  def test_gradient_matches_autodiff_of_the_stencil(self, *shape):
    x = _random(shape, seed=5)
    g = _random((shape[0], 2 * shape[1], 2 * shape[2], shape[3]), seed=6)
    stencil = lambda x: filters._upsample_axis_x2(filters._upsample_axis_x2(x, 1), 2)  # pylint: disable=protected-access
    ours = jax.vjp(self.variant(filters.upsample_bilinear_x2), x)[1](g)[0]
    np.testing.assert_allclose(ours, jax.vjp(stencil, x)[1](g)[0], rtol=1e-5, atol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_hand_computed_values(self):
    x = np.array([0.0, 1.0], np.float32).reshape(1, 1, 2, 1)
    out = self.variant(filters.upsample_bilinear_x2)(x)
    np.testing.assert_allclose(out[0, :, :, 0], [[0.0, 0.25, 0.75, 1.0]] * 2)

  def test_keeps_dtype(self):
    x = jnp.ones((1, 3, 3, 2), jnp.bfloat16)
    self.assertEqual(filters.upsample_bilinear_x2(x).dtype, jnp.bfloat16)


if __name__ == '__main__':
  absltest.main()

"""Tests of ddip_jax.losses against hand-written numpy and hand-computed values."""

import functools

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from ddip_jax import losses

# (N, H, W, C): batch of one and two, odd and even sides.
_SHAPES = ((1, 8, 9, 3), (2, 13, 10, 3), (1, 17, 16, 3))


def _images(shape, seed=0):
  rng = np.random.default_rng(seed)
  a = rng.random(shape, dtype=np.float32)
  b = rng.random(shape, dtype=np.float32)
  return a, b


# ---------------------------------------------------------------- references


def _np_extended_l1(a, b, mask):
  a, b, mask = (np.asarray(v, np.float64) for v in (a, b, mask))
  return np.mean(np.abs(mask * a - mask * b)) / np.mean(np.abs(mask))


def _np_std_loss(x):
  g = np.asarray(x, np.float64).mean(axis=-1)  # (N, H, W)
  n, h, w = g.shape
  errors = []
  for k in range(n):
    for i in range(2, h - 2):
      for j in range(2, w - 2):
        errors.append(g[k, i, j] - g[k, i - 2 : i + 3, j - 2 : j + 3].sum() / 25)
  return np.mean(np.square(errors))


def _np_avg_pool(x):
  n, h, w, c = x.shape
  out = np.zeros((n, h // 2, w // 2, c))
  for i in range(h // 2):
    for j in range(w // 2):
      out[:, i, j] = x[:, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean(axis=(1, 2))
  return out


def _np_exclusion_loss(a, b, levels):
  """Loop-by-loop transcription of the PyTorch ExclusionLoss (NHWC)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  squash = lambda g: 2 / (1 + np.exp(-g)) - 1
  channels = a.shape[-1]
  terms_x, terms_y = [], []
  for _ in range(levels):
    ax, ay = squash(a[:, 1:] - a[:, :-1]), squash(a[:, :, 1:] - a[:, :, :-1])
    bx, by = squash(b[:, 1:] - b[:, :-1]), squash(b[:, :, 1:] - b[:, :, :-1])
    for i in range(channels):
      for j in range(channels):
        terms_x.append(np.mean(ax[..., j] ** 2 * bx[..., i] ** 2) ** 0.25)
        terms_y.append(np.mean(ay[..., j] ** 2 * by[..., i] ** 2) ** 0.25)
    a, b = _np_avg_pool(a), _np_avg_pool(b)
  pairs = levels * channels**2
  return (sum(terms_x) / pairs + sum(terms_y) / pairs) / 2


# --------------------------------------------------------------------- tests


class PixelLossesTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*_SHAPES)
  def test_l1_mse_psnr_match_numpy(self, *shape):
    a, b = _images(shape)
    diff = a.astype(np.float64) - b
    np.testing.assert_allclose(self.variant(losses.l1)(a, b), np.mean(np.abs(diff)), rtol=1e-5)
    np.testing.assert_allclose(self.variant(losses.mse)(a, b), np.mean(diff**2), rtol=1e-5)
    np.testing.assert_allclose(self.variant(losses.psnr)(a, b), -10 * np.log10(np.mean(diff**2)), rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_hand_computed_values(self):
    a = np.zeros((1, 2, 2, 1), np.float32)
    b = np.array([0.1, -0.1, 0.1, -0.1], np.float32).reshape(1, 2, 2, 1)
    np.testing.assert_allclose(self.variant(losses.l1)(a, b), 0.1, rtol=1e-6)
    np.testing.assert_allclose(self.variant(losses.mse)(a, b), 0.01, rtol=1e-6)
    np.testing.assert_allclose(self.variant(losses.psnr)(a, b), 20.0, rtol=1e-6)
    # |0.25 - 0.5| = 0.25 -> 1 / 0.25.
    np.testing.assert_allclose(self.variant(losses.gray_loss)(np.full((2, 3, 3, 1), 0.25, np.float32)), 4.0, rtol=1e-6)
    # Half the mask ones, half zeros: numerator mean |0.1|/2 over (N, H, W, C).
    mask = np.array([1, 0, 1, 0], np.float32).reshape(1, 2, 2, 1)
    np.testing.assert_allclose(self.variant(losses.extended_l1)(a, b, mask), (0.1 / 2) / 0.5, rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_psnr_of_identical_images_is_capped(self):
    a, _ = _images((1, 4, 5, 3))
    np.testing.assert_allclose(self.variant(losses.psnr)(a, a), 100.0, rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*_SHAPES)
  def test_extended_l1_matches_numpy(self, *shape):
    a, b = _images(shape)
    mask = np.random.default_rng(1).random(shape[:3] + (1,), dtype=np.float32)
    np.testing.assert_allclose(self.variant(losses.extended_l1)(a, b, mask), _np_extended_l1(a, b, mask), rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_extended_l1_zero_mask_is_finite(self):
    a, b = _images((2, 5, 7, 3))
    mask = np.zeros((2, 5, 7, 1), np.float32)
    value, grads = self.variant(jax.value_and_grad(losses.extended_l1, argnums=(0, 1)))(a, b, mask)
    self.assertEqual(float(value), 0.0)
    chex.assert_tree_all_finite(grads)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*_SHAPES)
  def test_gray_loss_matches_numpy(self, *shape):
    m, _ = _images(shape[:3] + (1,))
    expected = 1 / np.mean(np.abs(m.astype(np.float64) - 0.5))
    np.testing.assert_allclose(self.variant(losses.gray_loss)(m), expected, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(0.5, 0.3, 1.0)
  def test_gray_loss_gradient_is_finite_on_constant_masks(self, level):
    m = jnp.full((1, 6, 5, 1), level, jnp.float32)
    value, grad = self.variant(jax.value_and_grad(losses.gray_loss))(m)
    chex.assert_tree_all_finite((value, grad))
    # d/dm 1/mean|m - .5| = -sign(m - .5) / (numel * mean^2); 0 at the floor.
    distance = abs(level - 0.5)
    expected = 0.0 if distance == 0 else -np.sign(level - 0.5) / (30 * distance**2)
    np.testing.assert_allclose(grad, np.full(m.shape, expected), rtol=1e-5, atol=1e-9)


class BlendTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters((2, 5, 7, 1), (1, 5, 7, 1), (2, 1, 1, 1))
  def test_blend_and_its_gradient_match_broadcasting(self, *weight_shape):
    a, b = _images((2, 5, 7, 3))
    w = np.random.default_rng(2).random(weight_shape, dtype=np.float32)
    np.testing.assert_allclose(self.variant(losses.blend)(w, a, b), w * a + (1 - w) * b, rtol=1e-6)

    def loss(blend_fn, w):
      return jnp.sum(jnp.sin(blend_fn(w, a, b)))

    ours = self.variant(jax.grad(functools.partial(loss, losses.blend)))(w)
    broadcast = jax.grad(functools.partial(loss, lambda w, a, b: w * a + (1 - w) * b))(w)
    chex.assert_shape(ours, weight_shape)
    np.testing.assert_allclose(ours, broadcast, rtol=1e-5, atol=1e-6)

  def test_blend_with_a_colour_layer(self):
    _, b = _images((1, 5, 7, 3))
    colour = np.array([0.9, 0.8, 0.1], np.float32).reshape(1, 1, 1, 3)
    w = np.random.default_rng(3).random((1, 5, 7, 1), dtype=np.float32)
    np.testing.assert_allclose(losses.blend(w, colour, b), w * colour + (1 - w) * b, rtol=1e-6)
    grad = jax.grad(lambda w: jnp.sum(losses.blend(w, colour, b)))(w)
    np.testing.assert_allclose(grad, np.sum(colour - b, axis=-1, keepdims=True), rtol=1e-5, atol=1e-6)

  def test_expand_channels(self):
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1)
    np.testing.assert_array_equal(losses.expand_channels(x, 3), np.broadcast_to(x, (1, 2, 3, 3)))
    np.testing.assert_array_equal(losses.expand_channels(x, 1), x)


class StdLossTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters((1, 5, 5, 3), (2, 7, 6, 3), (1, 9, 11, 1))
  def test_matches_numpy(self, *shape):
    x, _ = _images(shape)
    np.testing.assert_allclose(self.variant(losses.std_loss)(x), _np_std_loss(x), rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_hand_computed_values(self):
    # One white pixel in the centre of a 5x5 image: one valid position,
    # centre 1, box mean 1/25 -> (24/25)^2.
    x = np.zeros((1, 5, 5, 3), np.float32)
    x[0, 2, 2] = 1.0
    np.testing.assert_allclose(self.variant(losses.std_loss)(x), (24 / 25) ** 2, rtol=1e-6)
    # The grey level is the channel mean: only channel 0 lit -> centre 1/3.
    x[0, 2, 2, 1:] = 0.0
    np.testing.assert_allclose(self.variant(losses.std_loss)(x), (24 / 75) ** 2, rtol=1e-6)
    constant = np.full((2, 6, 7, 3), 0.7, np.float32)
    np.testing.assert_allclose(self.variant(losses.std_loss)(constant), 0.0, atol=1e-12)

  def test_rejects_images_smaller_than_the_window(self):
    with self.assertRaises(ValueError):
      losses.std_loss(jnp.zeros((1, 4, 9, 3)))


class ExclusionLossTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(
      ((1, 8, 9, 3), 3),
      ((2, 13, 10, 3), 3),
      ((1, 17, 16, 3), 3),
      ((2, 5, 7, 3), 1),
      ((1, 9, 6, 1), 2),
      ((1, 6, 7, 2), 2),
  )
  def test_matches_numpy(self, shape, levels):
    a, b = _images(shape, seed=levels)
    # Sharper edges than U(0, 1) noise: gradients in [-3, 3] use more of the sigmoid.
    a, b = 3 * a, 3 * b
    fn = self.variant(functools.partial(losses.exclusion_loss, levels=levels))
    np.testing.assert_allclose(fn(a, b), _np_exclusion_loss(a, b, levels), rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(0.5, 2.0)
  def test_hand_computed_ramp(self, slope):
    # a = b = slope * row: every H-gradient is `slope`, every W-gradient 0, so
    # each of the 9 x-terms is (tanh(slope / 2)^4) ** 0.25 and the y-terms are 0.
    ramp = slope * np.arange(4, dtype=np.float32)[None, :, None, None]
    image = np.broadcast_to(ramp, (2, 4, 5, 3))
    fn = self.variant(functools.partial(losses.exclusion_loss, levels=1))
    np.testing.assert_allclose(fn(image, image), np.tanh(slope / 2) / 2, rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_gradients_are_finite_on_constant_images(self):
    constant = jnp.full((1, 8, 8, 3), 0.4, jnp.float32)
    textured, _ = _images((1, 8, 8, 3))
    grad_fn = self.variant(jax.value_and_grad(losses.exclusion_loss, argnums=(0, 1)))
    for a, b in ((constant, constant), (constant, textured), (textured, constant)):
      value, grads = grad_fn(a, b)
      self.assertEqual(float(value), 0.0)
      chex.assert_tree_all_finite(grads)
      np.testing.assert_array_equal(grads[0], 0.0)
    value, grads = grad_fn(textured, 1 - textured)
    self.assertGreater(float(value), 0.0)
    chex.assert_tree_all_finite(grads)
    self.assertGreater(float(jnp.abs(grads[0]).max()), 0.0)

  def test_rejects_images_too_small_for_the_levels(self):
    with self.assertRaises(ValueError):
      losses.exclusion_loss(jnp.zeros((1, 7, 8, 3)), jnp.zeros((1, 7, 8, 3)), levels=3)


if __name__ == '__main__':
  absltest.main()

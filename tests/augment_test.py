"""Tests of ddip_jax.augment against numpy's rot90/flip and hand-written schedules."""

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from ddip_jax import augment


def _np_transform(x, k):
  """The official `create_augmentations` order, written out with numpy (NHWC)."""
  if k >= 4:
    x = x[:, ::-1]
  return np.rot90(x, k % 4, axes=(1, 2))


def _batch(size, channels=3, seed=0):
  return np.random.default_rng(seed).random((2, size, size, channels), dtype=np.float32)


class TransformTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*[(k, s) for k in range(8) for s in (4, 7)])
  def test_matches_numpy_and_inverse_undoes_it(self, k, size):
    x = _batch(size)
    out = self.variant(augment.transform)(x, jnp.int32(k))
    np.testing.assert_array_equal(out, _np_transform(x, k))
    back = self.variant(augment.inverse)(out, jnp.int32(k))
    np.testing.assert_array_equal(back, x)

  def test_eight_distinct_transforms(self):
    # A 2x2 image with four different pixels tells all 8 elements apart.
    x = np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1)
    outs = {tuple(np.asarray(augment.transform(x, k)).ravel()) for k in range(8)}
    self.assertLen(outs, 8)

  def test_hand_written_corner_moves(self):
    x = np.zeros((1, 3, 3, 1), np.float32)
    x[0, 0, 2, 0] = 1.0  # Top-right corner.
    # rot90 (H towards W) takes the top-right corner to the top-left one.
    self.assertEqual(np.asarray(augment.transform(x, 1))[0, 0, 0, 0], 1.0)
    # Flip along H takes it to the bottom-right.
    self.assertEqual(np.asarray(augment.transform(x, 4))[0, 2, 2, 0], 1.0)

  def test_inverse_table_is_a_group_inverse(self):
    x = _batch(5)
    for k in range(8):
      once = augment.transform(x, k)
      np.testing.assert_array_equal(augment.transform(once, augment.INVERSE[k]), x)

  def test_traced_index_compiles_once(self):

    @jax.jit
    @chex.assert_max_traces(n=1)
    def roundtrip(x, k):
      return augment.inverse(augment.transform(x, k) * 2.0, k)

    x = _batch(6)
    for k in range(8):
      np.testing.assert_allclose(roundtrip(x, jnp.int32(k)), 2.0 * x)

  def test_gradient_is_the_inverse_transform(self):
    x, w = _batch(5, seed=1), _batch(5, seed=2)
    for k in (1, 6):
      grad = jax.grad(lambda v: jnp.sum(augment.transform(v, jnp.int32(k)) * w))(x)
      np.testing.assert_array_equal(grad, augment.inverse(w, k))

  def test_rejects_non_square(self):
    with self.assertRaisesRegex(ValueError, 'square'):
      augment.transform(np.zeros((1, 4, 6, 3), np.float32), 0)


class ScheduleTest(absltest.TestCase):

  def test_official_schedule(self):
    steps = jnp.arange(40)
    got = np.asarray(jax.jit(augment.official_schedule, static_argnums=1)(steps, 40))
    want = [0 if it % 2 == 1 or it == 39 else (it // 2) % 8 for it in range(40)]
    np.testing.assert_array_equal(got, want)
    # Even steps 0, 2, ..., 14 cycle through all eight transforms.
    self.assertEqual(sorted(got[0:16:2].tolist()), list(range(8)))

  def test_watermark_schedule_period_4(self):
    # The official watermark code: it % 4 in {1, 2, 3} -> identity, else (it // 2) % 8.
    got = np.asarray(
        jax.jit(augment.official_schedule, static_argnums=1, static_argnames='period')(jnp.arange(40), 40, period=4)
    )
    want = [0 if it % 4 in (1, 2, 3) or it == 39 else (it // 2) % 8 for it in range(40)]
    np.testing.assert_array_equal(got, want)
    self.assertEqual(sorted(set(got.tolist())), [0, 2, 4, 6])

  def test_last_step_is_identity(self):
    self.assertEqual(int(augment.official_schedule(jnp.int32(4), 5)), 0)
    self.assertEqual(int(augment.official_schedule(jnp.int32(4), 6)), 2)


if __name__ == '__main__':
  absltest.main()

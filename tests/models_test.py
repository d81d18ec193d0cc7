"""Tests of ddip_jax.models: shapes, ranges, hand-counted parameters, init, BatchNorm."""

import functools
import math

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from configs import default
from ddip_jax import filters
from ddip_jax import models


def _key(seed: int) -> jax.Array:
  """An 'rbg' key: these tests check shapes and ranges, not particular values, and
  XLA:CPU compiles a network's initialiser several times faster with rbg than with
  the default threefry (seconds per test on 2 cores)."""
  return jax.random.key(seed, impl='rbg')


def _apply(gen, variables, z):
  """Train-mode forward pass, jitted (one compile instead of one per op)."""
  return jax.jit(functools.partial(gen.apply, mutable=['batch_stats']))(variables, z)


def _init_apply(gen, z, key=0):
  variables = jax.jit(gen.init)(_key(key), z)
  out, _ = _apply(gen, variables, z)
  return variables, out


def _count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _hand_count(depth, down, up, skip, k_down, k_up, out_channels) -> tuple[int, int]:
  """(params, batch-stat entries) of the architecture in the models.py docstring.

  A conv with bias has k*k*cin*cout + cout parameters; a BatchNorm over c
  channels has 2c parameters (scale, bias) and 2c statistics (mean, var).
  """
  params = stats = 0

  def conv(k, cin, cout):
    nonlocal params
    params += k * k * cin * cout + cout

  def bn(c):
    nonlocal params, stats
    params += 2 * c
    stats += 2 * c

  d = depth
  for i in range(len(down)):
    conv(k_down, d, down[i])
    bn(down[i])  # Stride-2 conv.
    conv(k_down, down[i], down[i])
    bn(down[i])
    deeper = up[i + 1] if i + 1 < len(down) else down[i]
    if skip[i]:
      conv(1, d, skip[i])
      bn(skip[i])
    bn(skip[i] + deeper)  # BN after the concatenation.
    conv(k_up, skip[i] + deeper, up[i])
    bn(up[i])
    conv(1, up[i], up[i])
    bn(up[i])
    d = down[i]
  conv(1, up[0], out_channels)  # Head.
  return params, stats


class HelpersTest(parameterized.TestCase):

  @parameterized.parameters(
      (16, 16, 3, (16, 16)),
      (17, 23, 2, (20, 24)),
      (17, 23, 3, (24, 24)),
      (32, 24, 3, (32, 24)),
      (1, 9, 1, (2, 10)),
  )
  def test_canvas_shape(self, h, w, scales, expected):
    self.assertEqual(models.canvas_shape(h, w, scales), expected)

  def test_center_crop(self):
    x = jnp.arange(6 * 7, dtype=jnp.float32).reshape(1, 6, 7, 1)
    out = models.center_crop(x, 3, 4)
    # Offsets (6 - 3) // 2 = 1 rows and (7 - 4) // 2 = 1 columns.
    np.testing.assert_array_equal(out[0, ..., 0], np.arange(42).reshape(6, 7)[1:4, 1:5])
    np.testing.assert_array_equal(models.center_crop(x, 6, 7), x)

  def test_upsample_nearest(self):
    x = jnp.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
    expected = [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    np.testing.assert_array_equal(models.upsample_x2(x, 'nearest')[0, ..., 0], expected)

  def test_upsample_bilinear_is_the_fixed_stencil(self):
    x = jax.random.uniform(jax.random.key(0), (1, 3, 5, 2))
    np.testing.assert_array_equal(models.upsample_x2(x, 'bilinear'), filters.upsample_bilinear_x2(x))
    with self.assertRaisesRegex(ValueError, 'bicubic'):
      models.upsample_x2(x, 'bicubic')

  @parameterized.parameters(((5, 7), 3, 0.01), ((16, 24), 8, 0.1))
  def test_make_noise_uniform(self, shape, depth, var):
    z = models.make_noise(jax.random.key(1), shape, depth, var=var, method='noise')
    chex.assert_shape(z, (1, *shape, depth))
    chex.assert_type(z, jnp.float32)
    self.assertLess(float(jnp.abs(z).max()), var / 2)
    # Really spread over the interval, not a constant or a tiny normal.
    self.assertGreater(float(jnp.abs(z).max()), 0.3 * var)
    self.assertGreater(float(jnp.std(z)), 0.15 * var)
    other = models.make_noise(jax.random.key(2), shape, depth, var=var)
    self.assertFalse(np.array_equal(z, other))

  def test_make_noise_meshgrid(self):
    z = models.make_noise(jax.random.key(0), (3, 5), 3, method='meshgrid')
    chex.assert_shape(z, (1, 3, 5, 3))
    x = np.tile(np.array([0, 0.25, 0.5, 0.75, 1.0]), (3, 1))
    y = np.tile(np.array([[0.0], [0.5], [1.0]]), (1, 5))
    np.testing.assert_allclose(z[0, ..., 0], x)
    np.testing.assert_allclose(z[0, ..., 1], y)
    np.testing.assert_allclose(z[0, ..., 2], x)  # Channels repeat x, y, x, ...
    z1 = models.make_noise(jax.random.key(0), (3, 5), 1, method='meshgrid')
    chex.assert_shape(z1, (1, 3, 5, 1))
    np.testing.assert_allclose(z1[0, ..., 0], x)
    with self.assertRaisesRegex(ValueError, 'fourier'):
      models.make_noise(jax.random.key(0), (3, 5), 2, method='fourier')

  def test_perturb(self):
    z = models.make_noise(jax.random.key(0), (8, 8), 4)
    np.testing.assert_array_equal(models.perturb(z, jax.random.key(1), jnp.float32(0.0)), z)
    big = jnp.zeros((1, 64, 64, 4))
    noisy = models.perturb(big, jax.random.key(1), jnp.float32(0.5))
    self.assertAlmostEqual(float(jnp.std(noisy)), 0.5, delta=0.02)


class SkipGeneratorTest(parameterized.TestCase):

  @parameterized.named_parameters(
      dict(
          testcase_name='16x16_3scales',
          h=16,
          w=16,
          down=(8, 16, 32),
          skip=(0, 0, 0),
          k=3,
          upsample='bilinear',
          out_channels=3,
      ),
      dict(
          testcase_name='17x23_2scales', h=17, w=23, down=(8, 16), skip=(0, 0), k=3, upsample='bilinear', out_channels=1
      ),
      dict(
          testcase_name='32x24_skip_k5',
          h=32,
          w=24,
          down=(8, 16, 32),
          skip=(0, 0, 4),
          k=5,
          upsample='bilinear',
          out_channels=3,
      ),
      dict(
          testcase_name='17x23_3scales_skips_nearest',
          h=17,
          w=23,
          down=(4, 8, 8),
          skip=(2, 4, 4),
          k=5,
          upsample='nearest',
          out_channels=3,
      ),
  )
  def test_shapes_and_range(self, h, w, down, skip, k, upsample, out_channels):
    gen = models.SkipGenerator(
        out_channels=out_channels,
        channels_down=down,
        channels_up=down,
        channels_skip=skip,
        kernel_down=k,
        kernel_up=k,
        upsample_mode=upsample,
    )
    canvas = models.canvas_shape(h, w, gen.num_scales)
    z = models.make_noise(jax.random.key(0), canvas, 2, var=0.1)
    variables, out = _init_apply(gen, z)
    chex.assert_shape(out, (1, *canvas, out_channels))
    chex.assert_tree_all_finite(out)
    self.assertGreater(float(out.min()), 0.0)
    self.assertLess(float(out.max()), 1.0)
    self.assertGreater(float(out.std()), 0.0)
    chex.assert_shape(models.center_crop(out, h, w), (1, h, w, out_channels))
    # Without the sigmoid the same weights give the logits.
    raw_gen = gen.clone(sigmoid=False)
    raw, _ = _apply(raw_gen, variables, z)
    np.testing.assert_allclose(jax.nn.sigmoid(raw), out, rtol=1e-5, atol=1e-6)
    self.assertLess(float(raw.min()), 0.0)  # Logits of a centred BN output: both signs.
    self.assertGreater(float(raw.max()), 0.0)
    self.assertEqual(_count(variables['params']), _hand_count(2, down, down, skip, k, k, out_channels)[0])

  @parameterized.parameters((3, 35179), (1, 35161))
  def test_default_parameter_count(self, out_channels, expected):
    # By hand, input depth 2, channels (8, 16, 32), k = 3, no skips:
    #   scale 0: conv 9*2*8+8=152, BN 16, conv 9*8*8+8=584, BN 16, concat-BN 2*16=32,
    #            conv 9*16*8+8=1160, BN 16, conv1x1 8*8+8=72, BN 16           -> 2064
    #   scale 1: 1168 + 32 + 2320 + 32 + 64 + 4624 + 32 + 272 + 32           -> 8576
    #   scale 2: 4640 + 64 + 9248 + 64 + 64 + 9248 + 64 + 1056 + 64         -> 24512
    #   head: 8*C + C (27 for C = 3, 9 for C = 1).
    gen = models.SkipGenerator(out_channels=out_channels)
    variables = jax.eval_shape(gen.init, jax.random.key(0), jnp.zeros((1, 16, 16, 2)))
    self.assertEqual(_count(variables['params']), expected)
    self.assertEqual(
        _hand_count(2, (8, 16, 32), (8, 16, 32), (0, 0, 0), 3, 3, out_channels),
        (expected, _count(variables['batch_stats'])),
    )

  def test_batchnorm_uses_batch_statistics(self):
    gen = models.SkipGenerator(channels_down=(4, 8), channels_up=(4, 8), channels_skip=(0, 2))
    z = models.make_noise(jax.random.key(0), (8, 12), 2, var=0.1)
    variables, out = _init_apply(gen, z)
    # Running averages far from the batch's own statistics must not matter.
    odd_stats = jax.tree.map(lambda s: jnp.full_like(s, 7.0), variables['batch_stats'])
    out_odd, updates = _apply(gen, {'params': variables['params'], 'batch_stats': odd_stats}, z)
    np.testing.assert_allclose(out_odd, out, rtol=1e-6, atol=1e-6)
    # ... but they are still tracked (momentum 0.9 towards the batch statistics).
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), updates['batch_stats'], odd_stats)
    self.assertTrue(all(jax.tree.leaves(changed)))
    # A perturbation of one sample changes the other's output through the batch statistics.
    batch = jnp.concatenate([z, z + 0.05 * jax.random.normal(jax.random.key(3), z.shape)])
    out_batch, _ = _apply(gen, variables, batch)
    self.assertGreater(float(jnp.abs(out_batch[:1] - out).max()), 1e-4)

  def test_torch_uniform_init(self):
    # The production (threefry) key here: this test is about the values drawn.
    gen = models.SkipGenerator(channels_down=(8, 16), channels_up=(8, 16), channels_skip=(0, 4), kernel_down=5)
    variables = jax.jit(gen.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 2)))
    convs = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(variables['params']):
      names = [p.key for p in path]
      if names[-1] != 'kernel':
        continue
      convs += 1
      conv = variables['params']
      for name in names[:-1]:
        conv = conv[name]
      k, _, cin, _ = leaf.shape
      bound = 1.0 / math.sqrt(k * k * cin)
      for x in (leaf, conv['bias']):  # The bias uses the kernel's fan-in too.
        self.assertLessEqual(float(jnp.abs(x).max()), bound, msg=names)
        self.assertGreater(float(jnp.abs(x).max()), 0.0, msg=names)
      if leaf.size >= 200:  # Enough samples to see the uniform's shape.
        self.assertGreater(float(jnp.abs(leaf).max()), 0.95 * bound, msg=names)
        self.assertAlmostEqual(float(jnp.std(leaf)) / (bound / math.sqrt(3)), 1.0, delta=0.1, msg=names)
    # 2 scales x 4 convs + 1 skip conv + head.
    self.assertEqual(convs, 10)

  def test_mismatched_channel_lists(self):
    gen = models.SkipGenerator(channels_down=(4, 8), channels_up=(4,), channels_skip=(0, 0))
    with self.assertRaisesRegex(ValueError, 'equal lengths'):
      jax.eval_shape(gen.init, jax.random.key(0), jnp.zeros((1, 8, 8, 2)))


class FromConfigTest(absltest.TestCase):

  def test_generator_from_config(self):
    config = default.get_config()
    gen_config = config.generator
    gen_config.channels_down = (4, 6)
    gen_config.channels_up = (5, 7)
    gen_config.channels_skip = (0, 3)
    gen_config.kernel_down = 5
    gen_config.kernel_up = 1
    gen_config.negative_slope = 0.1
    gen_config.upsample_mode = 'nearest'
    gen_config.dtype = 'bfloat16'
    gen = models.generator_from_config(gen_config, out_channels=1)
    self.assertEqual(gen.out_channels, 1)
    self.assertEqual(gen.channels_down, (4, 6))
    self.assertEqual(gen.channels_up, (5, 7))
    self.assertEqual(gen.channels_skip, (0, 3))
    self.assertEqual((gen.kernel_down, gen.kernel_up), (5, 1))
    self.assertEqual(gen.negative_slope, 0.1)
    self.assertEqual(gen.upsample_mode, 'nearest')
    self.assertEqual(gen.dtype, jnp.bfloat16)
    self.assertTrue(gen.sigmoid)
    self.assertFalse(models.generator_from_config(gen_config, out_channels=3, sigmoid=False).sigmoid)
    self.assertEqual(models.generator_from_config(gen_config, out_channels=3, kernel_up=3).kernel_up, 3)

  def test_default_config_matches_default_generator(self):
    config = default.get_config()
    self.assertEqual(
        models.generator_from_config(config.generator, out_channels=3), models.SkipGenerator(out_channels=3)
    )

  def test_noise_from_config(self):
    config = default.get_config()
    config.generator.input_depth = 5
    config.generator.noise_var = 0.2
    z = models.noise_from_config(config.generator, jax.random.key(0), (8, 16))
    chex.assert_shape(z, (1, 8, 16, 5))
    self.assertLess(float(jnp.abs(z).max()), 0.1)
    self.assertGreater(float(jnp.abs(z).max()), 0.05)
    config.generator.noise_method = 'meshgrid'
    z = models.noise_from_config(config.generator, jax.random.key(0), (8, 16))
    np.testing.assert_allclose(z[0, 0, :, 0], np.arange(16) / 15, rtol=1e-6)


if __name__ == '__main__':
  absltest.main()

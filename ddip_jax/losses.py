"""Losses of Double-DIP, as pure functions on NHWC float images.

Every function follows the official PyTorch Double-DIP code (`net/losses.py`)
term for term; only the layout differs (NHWC here, NCHW there). Images are
float32 in [0, 1] with a batch dimension N >= 1; every loss reduces over the
whole batch to a scalar, as the `torch.nn` losses with `reduction='mean'` do.

All functions are jittable and differentiable; the places where the original
divides by zero or takes a root at zero are guarded as documented per function.
"""

import chex
import jax
import jax.numpy as jnp

from ddip_jax import metrics

# Floor of the denominators of `extended_l1` and `gray_loss`. Small enough not to
# change any value a real mask produces, large enough that 1 / floor is finite.
_DENOMINATOR_FLOOR = 1e-12
_GRAY_FLOOR = 1e-6
# MSE floor of `psnr`: caps the PSNR of identical images at `metrics.PSNR_CAP` (100 dB).
_MSE_FLOOR = 10.0 ** (-metrics.PSNR_CAP / 10)


def _assert_image_pair(a: jax.Array, b: jax.Array) -> None:
  chex.assert_rank([a, b], 4)
  chex.assert_equal_shape([a, b])
  chex.assert_type([a, b], float)


def l1(a: jax.Array, b: jax.Array) -> jax.Array:
  """Mean absolute error, `torch.nn.L1Loss()`.

  Args:
    a: (N, H, W, C) image.
    b: (N, H, W, C) image.

  Returns:
    Scalar mean of |a - b| over all elements.
  """
  _assert_image_pair(a, b)
  return jnp.mean(jnp.abs(a - b))


def mse(a: jax.Array, b: jax.Array) -> jax.Array:
  """Mean squared error, `torch.nn.MSELoss()`.

  Args:
    a: (N, H, W, C) image.
    b: (N, H, W, C) image.

  Returns:
    Scalar mean of (a - b)^2 over all elements.
  """
  _assert_image_pair(a, b)
  return jnp.mean(jnp.square(a - b))


def extended_l1(a: jax.Array, b: jax.Array, mask: jax.Array) -> jax.Array:
  """L1 restricted to a soft mask and normalised by the mask's mass.

  `ExtendedL1Loss`: mean|mask * a - mask * b| / mean|mask|. The numerator mean
  runs over the broadcast (N, H, W, C) tensor, the denominator mean over the
  mask itself, so with a one-channel mask the value is C times smaller than a
  per-pixel average would be; that is the original's definition, kept as is.

  Args:
    a: (N, H, W, C) image.
    b: (N, H, W, C) image.
    mask: (N, H, W, 1) or (N, H, W, C) weights, usually in [0, 1].

  Returns:
    Scalar loss. The denominator is floored at 1e-12, so an all-zero mask gives
    0 (a finite value and finite gradients) instead of 0 / 0.
  """
  _assert_image_pair(a, b)
  chex.assert_rank(mask, 4)
  chex.assert_type(mask, float)
  chex.assert_is_broadcastable(mask.shape, a.shape)
  numerator = jnp.mean(jnp.abs(mask * a - mask * b))
  normaliser = jnp.mean(jnp.abs(mask))
  return numerator / jnp.maximum(normaliser, _DENOMINATOR_FLOOR)


def gray_loss(m: jax.Array) -> jax.Array:
  """Pushes a mask away from 0.5, towards a binary 0/1 mask.

  `GrayLoss`: 1 / mean|m - 0.5|. The value is >= 2 for m in [0, 1].

  Args:
    m: (N, H, W, C) mask, values in [0, 1].

  Returns:
    Scalar loss. mean|m - 0.5| is floored at 1e-6, so a mask that is 0.5
    everywhere gives 1e6 (finite, zero gradient) instead of infinity.
  """
  chex.assert_rank(m, 4)
  chex.assert_type(m, float)
  distance = jnp.mean(jnp.abs(m - 0.5))
  return 1.0 / jnp.maximum(distance, _GRAY_FLOOR)


def std_loss(x: jax.Array) -> jax.Array:
  """Penalises local variation of the grey level (`StdLoss`).

  g = mean of x over channels; the loss is the MSE between each pixel of g and
  the mean of its 5x5 neighbourhood, over the 'VALID' region (pixels at least 2
  away from every border), i.e. the original's two 5x5 convolutions, one with a
  centre-picking kernel and one with a 1/25 box.

  Args:
    x: (N, H, W, C) image with H, W >= 5.

  Returns:
    Scalar loss.
  """
  chex.assert_rank(x, 4)
  chex.assert_type(x, float)
  if x.shape[1] < 5 or x.shape[2] < 5:
    raise ValueError(f'std_loss needs H, W >= 5, got shape {x.shape}.')
  gray = jnp.mean(x, axis=-1, keepdims=True)
  centre = gray[:, 2:-2, 2:-2, :]
  box = jax.lax.reduce_window(gray, 0.0, jax.lax.add, (1, 5, 5, 1), (1, 1, 1, 1), 'VALID') / 25.0
  return jnp.mean(jnp.square(centre - box))


def _safe_fourth_root(x: jax.Array) -> jax.Array:
  """x ** 0.25 for x >= 0, with gradient 0 (not inf / nan) where x == 0."""
  positive = x > 0
  safe_x = jnp.where(positive, x, 1.0)
  return jnp.where(positive, jnp.power(safe_x, 0.25), 0.0)


def _avg_pool_2x2(x: jax.Array) -> jax.Array:
  """`torch.nn.AvgPool2d(2, stride=2)` on NHWC: odd trailing rows/cols dropped."""
  n, h, w, c = x.shape
  x = x[:, : h // 2 * 2, : w // 2 * 2, :]
  return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def exclusion_loss(a: jax.Array, b: jax.Array, *, levels: int = 3) -> jax.Array:
  """Gradient exclusion loss of Zhang et al. 2018, as used by Double-DIP.

  Pushes the edges of the two layers apart: at each of `levels` scales the
  finite-difference gradients along H ("x") and along W ("y") of both images
  are squashed with s = 2 * sigmoid(g) - 1, and for every pair of channels
  (j of `a`, i of `b`) the term mean(s_a[..., j]^2 * s_b[..., i]^2) ** 0.25 is
  taken (mean over N, H, W). Both images are then 2x2 average-pooled (floor
  for odd sizes) for the next scale. The loss is

    (sum_x / (levels * C * C) + sum_y / (levels * C * C)) / 2,

  which for C = 3 is the original's division by `levels * 9`.

  The fourth root has an infinite derivative at 0; here its gradient is 0
  where the mean is exactly 0 (e.g. a constant image), value unchanged.

  Args:
    a: (N, H, W, C) first layer, e.g. the foreground.
    b: (N, H, W, C) second layer, e.g. the background.
    levels: number of scales; floor(H / 2**(levels - 1)) and the same for W
      must be >= 2 so that the coarsest scale still has a gradient.

  Returns:
    Scalar loss, in [0, 1].
  """
  _assert_image_pair(a, b)
  _check_levels(a, levels, 'exclusion_loss')

  def pair_terms(grad_a: jax.Array, grad_b: jax.Array) -> jax.Array:
    sq_a = jnp.square(2.0 * jax.nn.sigmoid(grad_a) - 1.0)
    sq_b = jnp.square(2.0 * jax.nn.sigmoid(grad_b) - 1.0)
    count = grad_a.shape[0] * grad_a.shape[1] * grad_a.shape[2]
    # (C, C) matrix of means over N, H, W; HIGHEST keeps it fp32 on GPU/TPU.
    means = jnp.einsum('nhwj,nhwi->ij', sq_a, sq_b, precision=jax.lax.Precision.HIGHEST) / count
    return jnp.sum(_safe_fourth_root(means))

  terms = [pair_terms(ga, gb) for ga, gb in _pyramid_gradients(a, b, levels)]
  sum_x, sum_y = sum(terms[0::2]), sum(terms[1::2])
  pairs = levels * a.shape[-1] ** 2
  return (sum_x / pairs + sum_y / pairs) / 2.0


def _check_levels(a: jax.Array, levels: int, name: str) -> None:
  """Raises unless the coarsest of `levels` 2x2-pooled scales still has a gradient."""
  coarsest = 2 ** (levels - 1)
  if levels < 1 or a.shape[1] // coarsest < 2 or a.shape[2] // coarsest < 2:
    raise ValueError(f'{name} with levels={levels} needs H, W >= {2 * coarsest}, got shape {a.shape}.')


def _pyramid_gradients(a: jax.Array, b: jax.Array, levels: int) -> list[tuple[jax.Array, jax.Array]]:
  """[(along H of a, of b), (along W of a, of b)] finite differences, finest of `levels` scales first."""
  grads = []
  for level in range(levels):
    if level:
      a, b = _avg_pool_2x2(a), _avg_pool_2x2(b)
    grads.append((a[:, 1:] - a[:, :-1], b[:, 1:] - b[:, :-1]))
    grads.append((a[:, :, 1:] - a[:, :, :-1], b[:, :, 1:] - b[:, :, :-1]))
  return grads


def gradient_correlation(a: jax.Array, b: jax.Array, *, levels: int = 3) -> jax.Array:
  """A scale-invariant exclusion measure: how much the edges of two layers coincide.

  At each of `levels` scales (as in `exclusion_loss`) and for both directions,
  the normalised correlation sum(|g_a[..., j]| |g_b[..., i]|) /
  sqrt(sum(g_a[..., j]^2) sum(g_b[..., i]^2)) of the gradient magnitudes is
  averaged over the C x C channel pairs; the result is the mean over scales and
  directions. Unlike `exclusion_loss` it does not change when a layer is scaled,
  so it can compare layer estimates of different contrast (e.g. the unmixings
  of two mixtures with different alphas, `tasks/transparency.py`).

  Args:
    a: (N, H, W, C) first layer.
    b: (N, H, W, C) second layer.
    levels: number of scales, as in `exclusion_loss`.

  Returns:
    Scalar in [0, 1]: 0 when no edge of `a` meets an edge of `b`.
  """
  _assert_image_pair(a, b)
  _check_levels(a, levels, 'gradient_correlation')

  def correlation(grad_a: jax.Array, grad_b: jax.Array) -> jax.Array:
    abs_a, abs_b = jnp.abs(grad_a), jnp.abs(grad_b)
    hi = jax.lax.Precision.HIGHEST
    cross = jnp.einsum('nhwj,nhwi->ji', abs_a, abs_b, precision=hi)
    norms = jnp.sqrt(
        jnp.sum(jnp.square(abs_a), axis=(0, 1, 2))[:, None] * jnp.sum(jnp.square(abs_b), axis=(0, 1, 2))[None, :]
    )
    return jnp.mean(cross / jnp.maximum(norms, _DENOMINATOR_FLOOR))

  grads = _pyramid_gradients(a, b, levels)
  return sum(correlation(ga, gb) for ga, gb in grads) / len(grads)


def psnr(a: jax.Array, b: jax.Array) -> jax.Array:
  """Peak signal-to-noise ratio in dB for data range 1.

  Args:
    a: (N, H, W, C) image, values in [0, 1].
    b: (N, H, W, C) image, values in [0, 1].

  Returns:
    Scalar 10 * log10(1 / mse(a, b)) over the whole batch. The MSE is floored
    at 1e-10, so identical images give 100 dB instead of infinity.
  """
  _assert_image_pair(a, b)
  error = jnp.maximum(jnp.mean(jnp.square(a - b)), _MSE_FLOOR)
  return -10.0 * jnp.log10(error)


def temporal_consistency(m: jax.Array, weights: jax.Array) -> jax.Array:
  """Weighted change of a mask between consecutive frames.

  mean(weights * |m[1:] - m[:-1]|): with weights near 1 where the input frames
  do not change, the mask is held still there (see `tasks/video.py`).

  Args:
    m: (F, H, W, C) the frames' masks, F >= 2.
    weights: (F - 1, H, W, 1) or (F - 1, H, W, C) weights in [0, 1].

  Returns:
    Scalar loss.
  """
  chex.assert_rank([m, weights], 4)
  chex.assert_type([m, weights], float)
  chex.assert_is_broadcastable(weights.shape, (m.shape[0] - 1,) + m.shape[1:])
  return jnp.mean(weights * jnp.abs(m[1:] - m[:-1]))


def expand_channels(x: jax.Array, channels: int) -> jax.Array:
  """A one-channel (N, H, W, 1) map repeated to (N, H, W, channels).

  The values are those of broadcasting, but built by concatenation, so the
  gradient sums the channels with element-wise additions. Broadcasting's
  gradient is a reduction over a last axis of 3, which XLA:CPU runs about 20x
  slower (3.3 against 0.15 ms for a 256x256 blend and its gradient).
  """
  chex.assert_rank(x, 4)
  chex.assert_axis_dimension(x, 3, 1)
  return jnp.concatenate([x] * channels, axis=-1) if channels > 1 else x


def blend(weight: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
  """weight * a + (1 - weight) * b, the composition of every layered model.

  Args:
    weight: (N, H, W, 1) per-pixel weights of `a` (a mask, a transmission) or
      any shape broadcastable with `a` and `b` (e.g. (N, 1, 1, 1) scalars).
    a, b: NHWC, broadcastable to one another (e.g. a (1, 1, 1, 3) colour).
  """
  if weight.ndim == 4 and weight.shape[-1] == 1 and weight.shape[1] * weight.shape[2] > 1:
    # Per-pixel weights: see `expand_channels` (scalars broadcast faster as they are).
    weight = expand_channels(weight, jnp.broadcast_shapes(a.shape, b.shape)[-1])
  return weight * a + (1 - weight) * b

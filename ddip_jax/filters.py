"""Image filters: box, guided and minimum filters, fixed x2 bilinear upsampling, reflection padding.

The box, guided and minimum filters work on one image, (H, W) or (H, W, C),
float32; use `jax.vmap` for a batch. `upsample_bilinear_x2` works on an NHWC
batch because the generators call it inside their networks.

Borders: the box filter (and so the guided filter) clips its window at the image
border and averages the pixels that remain, like He et al.'s reference code
(`boxfilter.m`: the mean is normalised by the box sum of an all-ones image).
`border='reflect'` instead pads by symmetric reflection and always divides by
(2r + 1)^2, which is OpenCV's normalised `boxFilter(..., BORDER_REFLECT)` as used
by `cv2.ximgproc.guidedFilter`.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

_BORDERS = ('clip', 'reflect')


def _window_sum_along(x: jax.Array, radius: int, axis: int, border: str) -> jax.Array:
  """Sums of 2r+1 consecutive values along `axis` by a difference of cumulative sums."""
  n = x.shape[axis]
  if border == 'reflect':
    # Symmetric padding ("cba|abc|cba"), repeated for radius >= n: one gather.
    period = np.arange(-radius, n + radius) % (2 * n)
    x = jnp.take(x, np.where(period < n, period, 2 * n - 1 - period), axis=axis)
  # Cumulative sums of the line minus its mean stay near 0 instead of growing
  # to n * mean, which keeps float32 window sums accurate on long lines.
  offset = jnp.mean(x, axis=axis, keepdims=True)
  centred = x - offset
  zero = jnp.zeros_like(jax.lax.slice_in_dim(centred, 0, 1, axis=axis))
  # prefix[k] = sum of the first k values, so a window [lo, hi) sums to
  # prefix[hi] - prefix[lo]: two reads per pixel whatever the radius.
  prefix = jnp.concatenate([zero, jnp.cumsum(centred, axis=axis)], axis=axis)
  index = np.arange(n)
  if border == 'reflect':
    lo, hi = index, index + 2 * radius + 1
  else:
    lo, hi = np.maximum(index - radius, 0), np.minimum(index + radius + 1, n)
  count = (hi - lo).astype(np.float32).reshape((n,) + (1,) * (x.ndim - axis - 1))
  return jnp.take(prefix, hi, axis=axis) - jnp.take(prefix, lo, axis=axis) + offset * count


def _check_box_args(x: jax.Array, radius: int, border: str) -> None:
  chex.assert_rank(x, {2, 3, 4})
  chex.assert_type(x, float)
  if radius < 0:
    raise ValueError(f'radius must be >= 0, got {radius}.')
  if border not in _BORDERS:
    raise ValueError(f'border must be one of {_BORDERS}, got {border!r}.')


def box_sum(x: jax.Array, radius: int, *, border: str = 'clip') -> jax.Array:
  """Sum over the (2r+1) x (2r+1) window around every pixel, O(1) per pixel.

  Separable differences of cumulative sums (integral image), as in He et al.'s
  `boxfilter.m`. Each line is centred on its mean before the cumulative sum, so
  the float32 rounding error scales with the line's spread, not its length.

  Args:
    x: (H, W) or (H, W, ...) image; trailing axes are filtered independently.
    radius: window radius r >= 0; may exceed the image size.
    border: 'clip' sums only the pixels inside the image; 'reflect' sums over
      the image padded by symmetric reflection (OpenCV's BORDER_REFLECT).

  Returns:
    Window sums, same shape as `x`.
  """
  _check_box_args(x, radius, border)
  rows = _window_sum_along(x, radius, 0, border)
  return _window_sum_along(rows, radius, 1, border)


def box_mean(x: jax.Array, radius: int, *, border: str = 'clip') -> jax.Array:
  """Mean over the (2r+1) x (2r+1) window around every pixel.

  Args:
    x: (H, W) or (H, W, ...) image; trailing axes are filtered independently.
    radius: window radius r >= 0; may exceed the image size.
    border: 'clip' (default) averages the pixels of the window that lie inside
      the image (He et al.'s reference); 'reflect' averages (2r + 1)^2 values
      of the symmetrically padded image (OpenCV's normalised box filter with
      BORDER_REFLECT).

  Returns:
    Window means, same shape as `x`.
  """
  _check_box_args(x, radius, border)
  if border == 'reflect':
    return box_sum(x, radius, border=border) / float((2 * radius + 1)**2)
  h, w = x.shape[:2]
  count_h = np.minimum(np.arange(h) + radius, h - 1) - np.maximum(np.arange(h) - radius, 0) + 1
  count_w = np.minimum(np.arange(w) + radius, w - 1) - np.maximum(np.arange(w) - radius, 0) + 1
  count = np.outer(count_h, count_w).astype(np.float32).reshape((h, w) + (1,) * (x.ndim - 2))
  return box_sum(x, radius) / count


def _adjugate_and_det(sigma: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Adjugate (..., G, G) and determinant (...) of symmetric G x G matrices, G <= 3."""
  g = sigma.shape[-1]
  if g == 1:
    return jnp.ones_like(sigma), sigma[..., 0, 0]
  if g == 2:
    a, b, d = sigma[..., 0, 0], sigma[..., 0, 1], sigma[..., 1, 1]
    adj = jnp.stack([jnp.stack([d, -b], -1), jnp.stack([-b, a], -1)], -2)
    return adj, a * d - b * b
  rows = [sigma[..., i, :] for i in range(3)]
  # For symmetric M the cofactor rows r1 x r2, r2 x r0, r0 x r1 form adj(M).
  adj = jnp.stack([jnp.cross(rows[(i + 1) % 3], rows[(i + 2) % 3]) for i in range(3)], -2)
  det = jnp.sum(rows[0] * adj[..., 0, :], axis=-1)
  return adj, det


def radius_px(fraction: float, shape: tuple[int, ...]) -> int:
  """A filter radius given as a fraction of the longer side of an (H, W, ...) image, in pixels."""
  return int(round(fraction * max(shape[:2])))


def guided_filter(
    guide: jax.Array,
    src: jax.Array,
    *,
    radius: int,
    eps: float,
    opencv_compat: bool = False,
) -> jax.Array:
  """Guided filter of He et al. (ECCV 2010 / TPAMI 2013), colour or grey guide.

  In every (2r+1)^2 window the output is a linear function of the guide,
  q = a^T I + b, fitted to `src` by ridge regression: with Sigma the window
  covariance of the guide channels and cov_Ip their covariance with `src`,
  a = (Sigma + eps * Id)^-1 cov_Ip and b = mean(p) - a^T mean(I). The per-pixel
  coefficients are averaged over the windows covering the pixel. Matrices are
  inverted in closed form (adjugate / determinant).

  With `opencv_compat=False` this is `guidedfilter_color.m` / `guidedfilter.m`
  of the reference code (windows clipped at the border). With
  `opencv_compat=True` it reproduces `cv2.ximgproc.guidedFilter(guide, src,
  radius, eps)`, which the official Double-DIP dehazing uses: windows padded by
  BORDER_REFLECT and, for a 3-channel guide with eps < 1e-2, OpenCV's guard that
  replaces a determinant of magnitude < 1e-6 by 1. That guard drives `a` towards 0
  (q -> mean(src)) in flat regions, where det(Sigma + eps Id) is about eps^3.

  Args:
    guide: (H, W, G) guide image, G in {1, 2, 3} (grey or colour), e.g. in [0, 1].
    src: (H, W) or (H, W, K) image to filter; channels are filtered independently.
    radius: window radius r >= 0 (the window is (2r+1) x (2r+1)).
    eps: regularisation eps > 0, in squared guide units (not squared again).
    opencv_compat: match OpenCV's border handling and determinant guard.

  Returns:
    Filtered image, same shape as `src`, float32.
  """
  chex.assert_rank(guide, 3)
  chex.assert_rank(src, {2, 3})
  chex.assert_type([guide, src], float)
  chex.assert_equal_shape_prefix([guide, src], 2)
  g = guide.shape[-1]
  if not 1 <= g <= 3:
    raise ValueError(f'guide must have 1, 2 or 3 channels, got {guide.shape}.')
  border = 'reflect' if opencv_compat else 'clip'

  def mean(x: jax.Array) -> jax.Array:
    return box_mean(x, radius, border=border)

  p = src[..., None] if src.ndim == 2 else src
  h, w, k = p.shape
  # q - mean(src) does not change when constants are subtracted from guide and
  # src; centring both stops E[I I^T] - E[I] E[I]^T cancelling in float32.
  src_offset = jnp.mean(p, axis=(0, 1))
  p = p - src_offset
  guide = guide - jnp.mean(guide, axis=(0, 1))

  # One box filter pass over all first and second moments, one over a and b.
  moments = mean(jnp.concatenate([
      guide,
      p,
      (guide[..., :, None] * guide[..., None, :]).reshape(h, w, g * g),
      (guide[..., :, None] * p[..., None, :]).reshape(h, w, g * k),
  ], axis=-1))
  mean_i, mean_p, mean_ii, mean_ip = jnp.split(moments, np.cumsum([g, k, g * g]), axis=-1)
  sigma = mean_ii.reshape(h, w, g, g) - mean_i[..., :, None] * mean_i[..., None, :]
  sigma = sigma + eps * jnp.eye(g, dtype=sigma.dtype)
  cov_ip = mean_ip.reshape(h, w, g, k) - mean_i[..., :, None] * mean_p[..., None, :]

  adj, det = _adjugate_and_det(sigma)
  if opencv_compat and g == 3 and eps < 1e-2:
    det = jnp.where(jnp.abs(det) < 1e-6, 1.0, det)
  # Elementwise products and sums, not matmuls: G <= 3, and it stays fp32 on GPU.
  a = jnp.sum(adj[..., :, :, None] * cov_ip[..., None, :, :], axis=-2) / det[..., None, None]
  b = mean_p - jnp.sum(a * mean_i[..., :, None], axis=-2)  # (H, W, K)
  coefficients = mean(jnp.concatenate([a.reshape(h, w, g * k), b], axis=-1))
  mean_a = coefficients[..., :g * k].reshape(h, w, g, k)
  mean_b = coefficients[..., g * k:]
  q = jnp.sum(mean_a * guide[..., :, None], axis=-2) + mean_b + src_offset
  return q.reshape(src.shape)


# For one-off calls outside a traced loss (mask refinement, transmission): compiled
# whole, it compiles faster than its dozen ops run eagerly, each compiled on its own.
guided_filter_jit = jax.jit(guided_filter, static_argnames=('radius', 'eps', 'opencv_compat'))


def min_filter(x: jax.Array, radius: int) -> jax.Array:
  """Minimum over the (2r+1) x (2r+1) window around every pixel, per channel.

  Separable (rows, then columns) `lax.reduce_window`; the window is clipped at
  the border (padding with +inf), the same as edge-replicating padding. This is
  the erosion of the dark channel prior.

  Args:
    x: (H, W) or (H, W, C) image.
    radius: window radius r >= 0; may exceed the image size.

  Returns:
    Window minima, same shape as `x`.
  """
  chex.assert_rank(x, {2, 3})
  chex.assert_type(x, float)
  if radius < 0:
    raise ValueError(f'radius must be >= 0, got {radius}.')
  size = 2 * radius + 1
  for axis in (0, 1):
    window = [1] * x.ndim
    window[axis] = size
    padding = [(0, 0)] * x.ndim
    padding[axis] = (radius, radius)
    x = jax.lax.reduce_window(x, jnp.inf, jax.lax.min, window, (1,) * x.ndim, padding)
  return x


def _jnp_reflect_pad(x: jax.Array, pad: int) -> jax.Array:
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
  """Reflection padding of the spatial dims of an NHWC tensor (`jnp.pad` mode 'reflect').

  Same values and gradient as `jnp.pad`, but the gradient is the centre crop of
  the incoming one plus the four folded-back border strips, instead of one
  padded full-size tensor per border (25% less time for a 3x3 convolution's
  padding and gradients at 256x256x16 on XLA:CPU).

  Args:
    x: (N, H, W, C).
    pad: pixels added on each side (from H, W = pad + 1 up, `jnp.pad` reflects
      several times; so does its gradient).
  """
  return _jnp_reflect_pad(x, pad)


def _reflect_pad_fwd(x: jax.Array, pad: int):
  return reflect_pad(x, pad), None


def _reflect_pad_bwd(pad: int, _, g: jax.Array):
  g = jnp.asarray(g)
  h, w = g.shape[1] - 2 * pad, g.shape[2] - 2 * pad
  if pad >= min(h, w):  # Multiple reflections: autodiff's gradient of jnp.pad (linear, so at 0).
    _, vjp = jax.vjp(functools.partial(_jnp_reflect_pad, pad=pad), jnp.zeros((g.shape[0], h, w, g.shape[3]), g.dtype))
    return vjp(g)
  # Padded column j < pad copies column pad - j, padded column w + pad + j copies w - 2 - j.
  gw = g[:, :, pad:pad + w]
  gw = gw.at[:, :, 1:pad + 1].add(jnp.flip(g[:, :, :pad], 2))
  gw = gw.at[:, :, w - 1 - pad:w - 1].add(jnp.flip(g[:, :, w + pad:], 2))
  gh = gw[:, pad:pad + h]  # The same for rows.
  gh = gh.at[:, 1:pad + 1].add(jnp.flip(gw[:, :pad], 1))
  gh = gh.at[:, h - 1 - pad:h - 1].add(jnp.flip(gw[:, h + pad:], 1))
  return (gh,)


reflect_pad.defvjp(_reflect_pad_fwd, _reflect_pad_bwd)


def _upsample_axis_x2(x: jax.Array, axis: int) -> jax.Array:
  """x2 half-pixel bilinear upsampling along one axis, edge values repeated."""
  n = x.shape[axis]
  first = jax.lax.slice_in_dim(x, 0, 1, axis=axis)
  last = jax.lax.slice_in_dim(x, n - 1, n, axis=axis)
  before = jnp.concatenate([first, jax.lax.slice_in_dim(x, 0, n - 1, axis=axis)], axis)
  after = jnp.concatenate([jax.lax.slice_in_dim(x, 1, n, axis=axis), last], axis)
  # Output 2k sits at input coordinate k - 1/4, output 2k + 1 at k + 1/4.
  even = 0.75 * x + 0.25 * before
  odd = 0.75 * x + 0.25 * after
  out = jnp.stack([even, odd], axis=axis + 1)
  return out.reshape(x.shape[:axis] + (2 * n,) + x.shape[axis + 1:])


def _upsample_axis_x2_transpose(g: jax.Array, axis: int) -> jax.Array:
  """The gradient of `_upsample_axis_x2` (linear): g (2n along `axis`) -> (n along `axis`)."""
  n = g.shape[axis] // 2
  pairs = g.reshape(g.shape[:axis] + (n, 2) + g.shape[axis + 1:])
  even = jax.lax.index_in_dim(pairs, 0, axis + 1, keepdims=False)
  odd = jax.lax.index_in_dim(pairs, 1, axis + 1, keepdims=False)
  if n == 1:
    return even + odd
  piece = functools.partial(jax.lax.slice_in_dim, axis=axis)
  zero = jnp.zeros_like(piece(even, 0, 1))
  # Input k is `before` of output 2k + 2 (and of output 0 for k = 0), `after` of
  # output 2k - 1 (and of output 2n - 1 for k = n - 1).
  from_before = jnp.concatenate([piece(even, 0, 1) + piece(even, 1, 2), piece(even, 2, n), zero], axis)
  from_after = jnp.concatenate([zero, piece(odd, 0, n - 2), piece(odd, n - 2, n - 1) + piece(odd, n - 1, n)],
                               axis)
  return 0.75 * (even + odd) + 0.25 * (from_before + from_after)


@jax.custom_vjp
def upsample_bilinear_x2(x: jax.Array) -> jax.Array:
  """x2 bilinear upsampling with a fixed stencil.

  Exactly `torch.nn.Upsample(scale_factor=2, mode='bilinear',
  align_corners=False)`: output pixel i samples the input at (i + 0.5) / 2 - 0.5,
  clamped to the image, so every output is 0.75 * nearest + 0.25 * next-nearest
  input along each axis, and border pixels repeat the edge. Built from slices,
  no resize matrices; keeps the dtype of `x` (bf16 stays bf16).

  Args:
    x: (N, H, W, C) tensor.

  Returns:
    (N, 2H, 2W, C) tensor.
  """
  chex.assert_rank(x, 4)
  chex.assert_type(x, float)
  return _upsample_axis_x2(_upsample_axis_x2(x, 1), 2)


def _upsample_fwd(x: jax.Array):
  return upsample_bilinear_x2(x), None


def _upsample_bwd(_, g: jax.Array):
  # Written out, the gradient is one stencil per axis; autodiff's (transposed
  # concatenations, padded slices) took 30% longer on XLA:CPU.
  g = jnp.asarray(g)
  return (_upsample_axis_x2_transpose(_upsample_axis_x2_transpose(g, 2), 1),)


upsample_bilinear_x2.defvjp(_upsample_fwd, _upsample_bwd)

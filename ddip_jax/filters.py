"""Image filters: box, guided and minimum filters, fixed x2 bilinear upsampling, reflection padding.

The box and guided filters refine results once, at the photo's full size, in
numpy with OpenCV's box filter (nothing to compile, fast on any size); the
minimum filter works on one image, (H, W) or (H, W, C), float32, in JAX (use
`jax.vmap` for a batch). `upsample_bilinear_x2` works on an NHWC batch because
the generators call it inside their networks.

Borders: the box filter (and so the guided filter) clips its window at the image
border and averages the pixels that remain, like He et al.'s reference code
(`boxfilter.m`: the mean is normalised by the box sum of an all-ones image).
`border='reflect'` instead pads by symmetric reflection and always divides by
(2r + 1)^2, which is OpenCV's normalised `boxFilter(..., BORDER_REFLECT)` as used
by `cv2.ximgproc.guidedFilter`.
"""

from collections.abc import Callable
import functools

import chex
import cv2
import jax
import jax.numpy as jnp
import numpy as np

_BORDERS = ('clip', 'reflect')


def _check_box_args(x: np.ndarray, radius: int, border: str) -> None:
  chex.assert_rank(x, {2, 3, 4})
  chex.assert_type(x, float)
  if radius < 0:
    raise ValueError(f'radius must be >= 0, got {radius}.')
  if border not in _BORDERS:
    raise ValueError(f'border must be one of {_BORDERS}, got {border!r}.')


def _box(x: np.ndarray, radius: int, border: str, normalize: bool) -> np.ndarray:
  """OpenCV's box filter over the first two axes of x (float32), every trailing channel on its own."""
  x = np.ascontiguousarray(x, np.float32)
  flat = x.reshape(x.shape[0], x.shape[1], -1)
  size = (2 * radius + 1, 2 * radius + 1)
  border_type = cv2.BORDER_REFLECT if border == 'reflect' else cv2.BORDER_CONSTANT
  if flat.shape[-1] <= 512:  # CV_CN_MAX channels a call; OpenCV drops a single channel's axis (reshape).
    return cv2.boxFilter(flat, -1, size, normalize=normalize, borderType=border_type).reshape(x.shape)
  return np.concatenate(
      [_box(flat[..., i : i + 512], radius, border, normalize) for i in range(0, flat.shape[-1], 512)], axis=-1
  ).reshape(x.shape)


def box_sum(x: np.ndarray, radius: int, *, border: str = 'clip') -> np.ndarray:
  """Sum over the (2r+1) x (2r+1) window around every pixel, O(1) per pixel.

  OpenCV's `cv2.boxFilter` (running sums, double precision accumulators for
  float input), as He et al.'s `boxfilter.m` computes it with cumulative sums.

  Args:
    x: (H, W) or (H, W, ...) float image; trailing axes are filtered independently.
    radius: window radius r >= 0; may exceed the image size.
    border: 'clip' sums only the pixels inside the image; 'reflect' sums over
      the image padded by symmetric reflection (OpenCV's BORDER_REFLECT).

  Returns:
    Window sums, float32 numpy array of the shape of `x`.
  """
  _check_box_args(x, radius, border)
  return _box(x, radius, border, normalize=False)


def box_mean(x: np.ndarray, radius: int, *, border: str = 'clip') -> np.ndarray:
  """Mean over the (2r+1) x (2r+1) window around every pixel.

  Args:
    x: (H, W) or (H, W, ...) float image; trailing axes are filtered independently.
    radius: window radius r >= 0; may exceed the image size.
    border: 'clip' (default) averages the pixels of the window that lie inside
      the image (He et al.'s reference); 'reflect' averages (2r + 1)^2 values
      of the symmetrically padded image (OpenCV's normalised box filter with
      BORDER_REFLECT).

  Returns:
    Window means, float32 numpy array of the shape of `x`.
  """
  _check_box_args(x, radius, border)
  if border == 'reflect':
    return _box(x, radius, border, normalize=True)
  h, w = x.shape[:2]
  count_h = np.minimum(np.arange(h) + radius, h - 1) - np.maximum(np.arange(h) - radius, 0) + 1
  count_w = np.minimum(np.arange(w) + radius, w - 1) - np.maximum(np.arange(w) - radius, 0) + 1
  sums = _box(x, radius, border, normalize=False)
  # Divided in place, by rows then by columns (the count is their product): on a
  # large photo a second image-sized array, or numpy broadcasting over a few
  # channels, costs more than the filter itself.
  sums /= count_h.astype(np.float32).reshape((h,) + (1,) * (x.ndim - 1))
  by_row = sums.reshape(h, -1)
  by_row /= np.repeat(count_w.astype(np.float32), by_row.shape[1] // w)
  return sums


def _adjugate_and_det(sigma: list[list[np.ndarray]]) -> tuple[list[list[np.ndarray]], np.ndarray]:
  """Adjugate and determinant of symmetric G x G matrices (G <= 3) given as a G x G list of per-pixel planes."""
  g = len(sigma)
  if g == 1:
    return [[np.ones_like(sigma[0][0])]], sigma[0][0]
  if g == 2:
    (a, b), (_, d) = sigma
    return [[d, -b], [-b, a]], a * d - b * b
  (s00, s01, s02), (_, s11, s12), (_, _, s22) = sigma
  c01, c02, c12 = s02 * s12 - s01 * s22, s01 * s12 - s02 * s11, s01 * s02 - s00 * s12
  adj = [[s11 * s22 - s12 * s12, c01, c02], [c01, s00 * s22 - s02 * s02, c12], [c02, c12, s00 * s11 - s01 * s01]]
  return adj, s00 * adj[0][0] + s01 * adj[0][1] + s02 * adj[0][2]


def radius_px(fraction: float, shape: tuple[int, ...]) -> int:
  """A filter radius given as a fraction of the longer side of an (H, W, ...) image, in pixels."""
  return int(round(fraction * max(shape[:2])))


def guided_filter(
    guide: np.ndarray,
    src: np.ndarray,
    *,
    radius: int,
    eps: float,
    opencv_compat: bool = False,
) -> np.ndarray:
  """Guided filter of He et al. (ECCV 2010 / TPAMI 2013), colour or grey guide, in numpy.

  In every (2r+1)^2 window the output is a linear function of the guide,
  q = a^T I + b, fitted to `src` by ridge regression: with Sigma the window
  covariance of the guide channels and cov_Ip their covariance with `src`,
  a = (Sigma + eps * Id)^-1 cov_Ip and b = mean(p) - a^T mean(I). The per-pixel
  coefficients are averaged over the windows covering the pixel. Matrices are
  inverted in closed form (adjugate / determinant).

  It refines a result once, outside any traced loss, at the photo's full size:
  numpy and OpenCV's box filter do that with nothing to compile, and a
  12-megapixel photo takes seconds (XLA:CPU took 23 s, most of it in
  `cumsum`).

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
    Filtered image, float32 numpy array of the shape of `src`.
  """
  guide = np.asarray(guide)
  src = np.asarray(src)
  chex.assert_rank(guide, 3)
  chex.assert_rank(src, {2, 3})
  chex.assert_type([guide, src], float)
  chex.assert_equal_shape_prefix([guide, src], 2)
  g = guide.shape[-1]
  if not 1 <= g <= 3:
    raise ValueError(f'guide must have 1, 2 or 3 channels, got {guide.shape}.')
  border = 'reflect' if opencv_compat else 'clip'

  def mean(x: np.ndarray) -> np.ndarray:
    return box_mean(x, radius, border=border)

  p = (src[..., None] if src.ndim == 2 else src).astype(np.float32)
  h, w, k = p.shape
  # q - mean(src) does not change when constants are subtracted from guide and
  # src; centring both stops E[I I^T] - E[I] E[I]^T cancelling in float32.
  src_offset = p.mean(axis=(0, 1), dtype=np.float64).astype(np.float32)
  guide_offset = guide.mean(axis=(0, 1), dtype=np.float64).astype(np.float32)
  pairs = [(c, d) for c in range(g) for d in range(c, g)]

  def moments_of(guide_rows, p_rows):  # The first and second moments to average over the windows.
    i = [guide_rows[..., c] - guide_offset[c] for c in range(g)]
    v = [p_rows[..., j] - src_offset[j] for j in range(k)]
    return i + v + [i[c] * i[d] for c, d in pairs] + [i[c] * v[j] for c in range(g) for j in range(k)]

  def coefficients_of(moment_rows):  # a (g x k planes), then b (k planes) of every window.
    planes = [moment_rows[..., n] for n in range(moment_rows.shape[-1])]
    mean_i, mean_p, rest = planes[:g], planes[g : g + k], planes[g + k :]
    second = dict(zip(pairs, rest[: len(pairs)]))
    sigma = [[None] * g for _ in range(g)]
    for c, d in pairs:
      sigma[c][d] = sigma[d][c] = second[c, d] - mean_i[c] * mean_i[d] + (np.float32(eps) if c == d else 0)
    cov_ip = [[rest[len(pairs) + c * k + j] - mean_i[c] * mean_p[j] for j in range(k)] for c in range(g)]
    adj, det = _adjugate_and_det(sigma)
    if opencv_compat and g == 3 and eps < 1e-2:
      det = np.where(np.abs(det) < 1e-6, np.float32(1.0), det)
    inverse_det = 1 / det
    a = [[sum(adj[c][d] * cov_ip[d][j] for d in range(g)) * inverse_det for j in range(k)] for c in range(g)]
    b = [mean_p[j] - sum(a[c][j] * mean_i[c] for c in range(g)) for j in range(k)]
    return [a[c][j] for c in range(g) for j in range(k)] + b

  def output_of(guide_rows, coefficient_rows):  # q = mean(a)^T I + mean(b).
    i = [guide_rows[..., c] - guide_offset[c] for c in range(g)]
    return [
        sum(coefficient_rows[..., c * k + j] * i[c] for c in range(g))
        + coefficient_rows[..., g * k + j]
        + src_offset[j]
        for j in range(k)
    ]

  # The box filters run on whole images (OpenCV); the per-pixel algebra runs on
  # bands of rows, whose temporaries stay small (on a 12-megapixel photo,
  # whole-image temporaries made it several times slower).
  moments = mean(_by_rows(moments_of, (h, w, g + k + len(pairs) + g * k), guide, p))
  coefficients = mean(_by_rows(coefficients_of, (h, w, (g + 1) * k), moments))
  return _by_rows(output_of, (h, w, k), guide, coefficients).reshape(src.shape)


def _by_rows(
    fn: Callable[..., list[np.ndarray]], shape: tuple[int, int, int], *images: np.ndarray, rows: int = 64
) -> np.ndarray:
  """fn applied to bands of `rows` rows of `images`: a (H, W, C) float32 array whose band's channels are fn's planes."""
  out = np.empty(shape, np.float32)
  for top in range(0, shape[0], rows):
    for channel, plane in enumerate(fn(*(image[top : top + rows] for image in images))):
      out[top : top + rows, :, channel] = plane
  return out


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
  gw = g[:, :, pad : pad + w]
  gw = gw.at[:, :, 1 : pad + 1].add(jnp.flip(g[:, :, :pad], 2))
  gw = gw.at[:, :, w - 1 - pad : w - 1].add(jnp.flip(g[:, :, w + pad :], 2))
  gh = gw[:, pad : pad + h]  # The same for rows.
  gh = gh.at[:, 1 : pad + 1].add(jnp.flip(gw[:, :pad], 1))
  gh = gh.at[:, h - 1 - pad : h - 1].add(jnp.flip(gw[:, h + pad :], 1))
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
  return out.reshape(x.shape[:axis] + (2 * n,) + x.shape[axis + 1 :])


def _upsample_axis_x2_transpose(g: jax.Array, axis: int) -> jax.Array:
  """The gradient of `_upsample_axis_x2` (linear): g (2n along `axis`) -> (n along `axis`)."""
  n = g.shape[axis] // 2
  pairs = g.reshape(g.shape[:axis] + (n, 2) + g.shape[axis + 1 :])
  even = jax.lax.index_in_dim(pairs, 0, axis + 1, keepdims=False)
  odd = jax.lax.index_in_dim(pairs, 1, axis + 1, keepdims=False)
  if n == 1:
    return even + odd
  piece = functools.partial(jax.lax.slice_in_dim, axis=axis)
  zero = jnp.zeros_like(piece(even, 0, 1))
  # Input k is `before` of output 2k + 2 (and of output 0 for k = 0), `after` of
  # output 2k - 1 (and of output 2n - 1 for k = n - 1).
  from_before = jnp.concatenate([piece(even, 0, 1) + piece(even, 1, 2), piece(even, 2, n), zero], axis)
  from_after = jnp.concatenate([zero, piece(odd, 0, n - 2), piece(odd, n - 2, n - 1) + piece(odd, n - 1, n)], axis)
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

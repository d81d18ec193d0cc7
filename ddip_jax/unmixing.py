"""Exact unmixing of two mixtures I_k = a_k R + (1 - a_k) T with scalar alphas, and the alpha searches.

With one scalar weight per mixture the model is linear and invertible: once
a_1 != a_2 are known, `unmix` solves the two mixtures for R and T. The alphas
are searched (`refine_alphas` near a start, `search_alphas` over the whole
range, `refine_from_both` both) to minimise the edge overlap
(`losses.gradient_correlation`) of the unmixed layers; `out_of_range_fraction`
says whether the model fits (`choose_finalisation`). No ground truth is used.
The task (`tasks/transparency.py`) puts these together with its generators.
"""

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ddip_jax import filters
from ddip_jax import image_io
from ddip_jax import losses

# unmix_select='fit': the one-alpha-per-mixture model is taken to fit when at
# most FIT_TOLERANCE of the unmixed layers' values leave [0, 1] by more than
# FIT_MARGIN plus the 8-bit rounding that the unmixing amplifies. Chosen on
# the evaluation in docs/transparency.md: uniform mixtures left 0 values out,
# mixtures with spatially varying alphas 0.05-10% (the generators' layers were
# better where more than 1% were out).
FIT_MARGIN = 0.05
FIT_TOLERANCE = 1e-2


def alpha_from_unit(a: jax.Array) -> jax.Array:
  """The official mapping of a value in [0, 1] to a mixing weight in [0.05, 0.95]."""
  return a * 0.9 + 0.05


def unmix(mixtures: jax.Array, alphas: jax.Array) -> tuple[jax.Array, jax.Array]:
  """R and T solved exactly from I_k = a_k R + (1 - a_k) T, k = 1, 2 (a_1 != a_2).

  Args:
    mixtures: (2, H, W, C) the two mixtures.
    alphas: (2,) the mixing weights a_1, a_2 of R.

  Returns:
    (R, T), each (H, W, C), not clipped.
  """
  chex.assert_rank(mixtures, 4)
  chex.assert_shape(alphas, (2,))
  (i1, i2), (a1, a2) = mixtures, alphas
  return ((1 - a2) * i1 - (1 - a1) * i2) / (a1 - a2), (a1 * i2 - a2 * i1) / (a1 - a2)


def refine_alphas(mixtures: jax.Array, alphas: jax.Array, *, radius: float, min_gap: float,
                  grid: int = 21, rounds: int = 3) -> jax.Array:
  """Alphas near `alphas` whose exact unmixing gives layers with the least shared edges.

  A coarse-to-fine grid search of `losses.gradient_correlation(R, T)` over
  (a_1, a_2), (R, T) = `unmix(mixtures, (a_1, a_2))` (not clipped: clipping
  would hide the other layer's edges where they overshoot): round 1
  covers +-`radius` around `alphas` with `grid` x `grid` points, each later
  round +-2 grid steps around the best so far. Alphas stay in [0.05, 0.95]
  (the official range) and at least `min_gap` apart, on the side of a_1 - a_2
  they start on (so R stays the layer weighted by a_k).

  Args:
    mixtures: (2, H, W, C) the two mixtures, H, W >= 8.
    alphas: (2,) start, e.g. the generators' estimate.
    radius: half-width of the first round's search box.
    min_gap: smallest |a_1 - a_2| tried (the unmixing divides by it).
    grid: points per axis and round.
    rounds: number of rounds.

  Returns:
    (2,) the refined alphas.
  """
  chex.assert_rank(mixtures, 4)
  chex.assert_shape(alphas, (2,))
  sign = jnp.where(alphas[0] >= alphas[1], 1.0, -1.0)
  low, high = alpha_from_unit(0.0), alpha_from_unit(1.0)

  def score(pair):
    r, t = unmix(mixtures, pair)
    value = losses.gradient_correlation(r[None], t[None])
    feasible = sign * (pair[0] - pair[1]) >= min_gap
    return jnp.where(feasible, value, jnp.inf)

  best, half = jnp.asarray(alphas, jnp.float32), radius
  offsets = jnp.linspace(-1.0, 1.0, grid)
  for _ in range(rounds):
    a1, a2 = jnp.meshgrid(best[0] + half * offsets, best[1] + half * offsets, indexing='ij')
    pairs = jnp.clip(jnp.stack([a1.ravel(), a2.ravel()], axis=1), low, high)
    scores = jax.lax.map(score, pairs)
    best = jnp.where(jnp.isfinite(jnp.min(scores)), pairs[jnp.argmin(scores)], best)
    half = 4 * half / (grid - 1)
  return best


def search_alphas(mixtures: jax.Array, *, min_gap: float, grid: int = 31, rounds: int = 3) -> jax.Array:
  """`refine_alphas` over the whole official range: needs no start, so no generator.

  Starts at (0.5, 0.5) with radius 0.45, i.e. every (a_1, a_2) in [0.05, 0.95]^2
  with a_1 - a_2 >= `min_gap`; (a_1, a_2) and (1 - a_1, 1 - a_2) give the same
  two layers with R and T swapped, so this side covers every unmixing.

  Args:
    mixtures: (2, H, W, C) the two mixtures, H, W >= 8.
    min_gap: smallest |a_1 - a_2| tried.
    grid: points per axis and round (the first round's step is 0.9 / (grid - 1)).
    rounds: number of rounds.

  Returns:
    (2,) the alphas, a_1 > a_2.
  """
  return refine_alphas(mixtures, jnp.asarray([0.5, 0.5], jnp.float32), radius=0.45, min_gap=min_gap, grid=grid,
                       rounds=rounds)


def choose_finalisation(report: dict[str, dict[str, Any]], mode: str, select: str) -> str:
  """Candidate `mode` of `finalise_by_unmixing`'s report, or 'generators'.

  `select` 'loss': `mode` only if its objective is lower; 'always': whenever
  it was tried (the scalar-alpha model taken as exact: the unmixing then
  reproduces both mixtures, which the generators' layers do not); 'fit':
  whenever its `out_of_range_fraction` is at most `FIT_TOLERANCE` (the model
  fits these mixtures; spatially varying alphas leave the other layer in
  each unmixed one, beyond [0, 1] in places), or, where the report says,
  whenever its 'model_fits' (one additive mixture: `colour_plane_fits`).
  """
  if mode not in report:
    return 'generators'
  keep = {'always': True, 'loss': report[mode]['objective'] < report['generators']['objective'],
          'fit': report[mode].get('model_fits', report[mode].get('out_of_range', 1.0) <= FIT_TOLERANCE)}[select]
  return mode if keep else 'generators'


def out_of_range_fraction(layers: tuple[np.ndarray, np.ndarray], alphas: jax.Array) -> float:
  """The share of the unmixed layers' values beyond [0, 1] by more than the model allows.

  The allowance is `FIT_MARGIN` plus one 8-bit level times the unmixing's
  gain on rounding errors, max(|1 - a_1| + |1 - a_2|, |a_1| + |a_2|) / |a_1 - a_2|.

  Args:
    layers: (R, T) of `unmix`, not clipped, (H, W, C) each.
    alphas: (2,) the alphas they were unmixed with.

  Returns:
    A fraction in [0, 1].
  """
  a1, a2 = (float(a) for a in alphas)
  gain = max(abs(1 - a1) + abs(1 - a2), abs(a1) + abs(a2)) / abs(a1 - a2)
  margin = FIT_MARGIN + gain / 255
  values = np.stack(layers)
  return float(np.mean((values < -margin) | (values > 1 + margin)))


_refine_jit = jax.jit(refine_alphas, static_argnames=('radius', 'min_gap', 'grid', 'rounds'))
_search_jit = jax.jit(search_alphas, static_argnames=('min_gap', 'grid', 'rounds'))
_edge_overlap_jit = jax.jit(lambda mixtures, pair: losses.gradient_correlation(*(x[None] for x in unmix(mixtures,
                                                                                                             pair))))
# The alpha searches run on the mixtures shrunk to at most this side: scalar
# alphas need no more pixels, and the search's cost grows with them.
SEARCH_SIDE = 256


def refine_from_both(full: np.ndarray, learned: jax.Array, *, radius: float, min_gap: float
                     ) -> tuple[jax.Array, dict[str, Any]]:
  """The alphas of least edge overlap from two searches: near the learned ones and over the whole range.

  `refine_alphas` started at the generators' alphas can stay in a wrong
  basin when they are far off; `search_alphas` needs no start. Both minimise
  `losses.gradient_correlation` of the unmixed layers, on the mixtures shrunk
  to at most `SEARCH_SIDE`; the lower value wins (no ground truth). The whole
  range search's alphas are turned to the learned ones' side (a -> 1 - a),
  so that layer 1 stays the generators' R.

  Args:
    full: (2, H, W, 3) the mixtures at full size.
    learned: (2,) the generators' alphas.
    radius: `refine_alphas`' search box around `learned`.
    min_gap: smallest |a_1 - a_2| tried.

  Returns:
    ((2,) the alphas, {'edge_overlap': {'near_learned', 'whole_range'}: the two
    searches' values, 'refined_from': the winner}).
  """
  mixtures = jnp.asarray(np.stack([image_io.working_image(m, SEARCH_SIDE)[0] for m in full]))
  found = {'near_learned': _refine_jit(mixtures, learned, radius=radius, min_gap=min_gap),
           'whole_range': _search_jit(mixtures, min_gap=min_gap)}
  if float(learned[0]) < float(learned[1]):
    found['whole_range'] = 1.0 - found['whole_range']
  overlap = {name: float(_edge_overlap_jit(mixtures, pair)) for name, pair in found.items()}
  best = min(overlap, key=overlap.get)
  return found[best], {'edge_overlap': overlap, 'refined_from': best}


# One additive mixture I = R + T whose layers each have one colour (a grey
# level times an RGB vector, like tinted textures): the pixels lie on a plane
# through black, and R and T are the image's coordinates along the two colours.
# The plane fits when the image's RMS distance from it is at most
# COLOUR_PLANE_RMS (a few 8-bit levels: a photo's third colour dimension is far
# above it), and the two colours are taken to differ when the plane's second
# singular value is at least COLOUR_PLANE_MIN_SPREAD of the first (one colour
# for both layers gives 0.002 from 8-bit rounding).
COLOUR_PLANE_RMS = 2.0 / 255
COLOUR_PLANE_MIN_SPREAD = 0.01
# E[log cosh(s)] of a unit-variance Gaussian: the negentropy contrast's reference.
_LOGCOSH_GAUSS = 0.374567


def _whitened(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """x (N, 2) centred and whitened: (z, W) with z = (x - mean) W^T of unit covariance."""
  x = x - x.mean(axis=0)
  values, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
  whitening = (vectors / np.sqrt(np.maximum(values, 1e-20))).T
  return x @ whitening.T, whitening


def independent_directions(data: np.ndarray, *, angles: int = 360) -> np.ndarray:
  """The 2 x 2 unmixing matrix of two-component ICA: the rotation of the whitened data of most negentropy.

  After whitening, the independent components are an orthogonal pair of
  directions; each angle in [0, pi/2) is scored by the sum over both
  components of (E[log cosh s] - E_gauss)^2 (FastICA's contrast), the best on
  a grid of `angles`, refined by a finer grid around it. Deterministic.

  Args:
    data: (N, 2) samples of two mixtures of two independent, non-Gaussian
      sources (e.g. the finite differences of two images).
    angles: grid points in [0, pi/2).

  Returns:
    (2, 2) W with sources = data W^T (up to scale, sign and order).
  """
  chex.assert_rank(data, 2)
  z, whitening = _whitened(np.asarray(data, np.float64))

  def contrast(theta: np.ndarray) -> np.ndarray:
    directions = np.stack([np.cos(theta), np.sin(theta)], axis=0)  # (2, A)
    total = 0.0
    for rotated in (directions, np.stack([-directions[1], directions[0]])):
      s = z @ rotated
      total = total + (np.mean(np.log(np.cosh(np.clip(s, -30, 30))), axis=0) - _LOGCOSH_GAUSS)**2
    return total

  step = (np.pi / 2) / angles
  thetas = np.arange(angles) * step
  best = thetas[np.argmax(contrast(thetas))]
  fine = best + np.linspace(-step, step, 41)
  theta = fine[np.argmax(contrast(fine))]
  rotation = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
  return rotation @ whitening


def colour_plane_unmix(image: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], dict[str, Any]]:
  """R and T of one additive mixture I = R + T where each layer has one colour.

  The plane through black that holds the pixels is the span of the image's two
  first right singular vectors (not centred: the plane holds black); on it each
  pixel is g_R c_R + g_T c_T. The colours c_R, c_T are the mixing directions of
  `independent_directions` fitted to the plane coordinates' finite
  differences (two unrelated layers' edges are independent and sparse); the
  layers are each colour's share of the pixels, so R + T is the image's
  projection on the plane. No ground truth; nothing to train.

  Args:
    image: (H, W, 3) in [0, 1], H, W >= 2.

  Returns:
    ((R, T) float32 (H, W, 3), not clipped, {'off_plane_rms': the image's RMS
    distance from the plane, 'spread': second over first singular value,
    'colours': [c_R, c_T] (RGB, largest component 1)}).
  """
  chex.assert_rank(image, 3)
  x = np.asarray(image, np.float64).reshape(-1, 3)
  _, singular, vt = np.linalg.svd(x, full_matrices=False)
  basis = vt[:2]
  plane = (x @ basis.T).reshape(image.shape[:2] + (2,))
  edges = np.concatenate([np.diff(plane, axis=axis).reshape(-1, 2) for axis in (0, 1)])
  unmixing = independent_directions(edges)
  mixing = np.linalg.inv(unmixing)
  sources = plane.reshape(-1, 2) @ unmixing.T  # (N, 2) grey levels (arbitrary scale)
  layers, colours = [], []
  for k in range(2):
    colour = mixing[:, k] @ basis
    layers.append(np.outer(sources[:, k], colour).reshape(image.shape).astype(np.float32))
    colours.append([float(c) for c in colour / np.max(np.abs(colour))])
  info = {'off_plane_rms': float(singular[2] / np.sqrt(len(x) * 3)), 'spread': float(singular[1] / singular[0]),
          'colours': colours}
  return (layers[0], layers[1]), info


def colour_plane_fits(info: dict[str, Any], layers: tuple[np.ndarray, np.ndarray]) -> tuple[bool, float]:
  """Whether `colour_plane_unmix`'s model fits: on the plane, two distinct colours, layers in [0, 1].

  Returns:
    (fits, the share of the layers' values beyond [0, 1] by more than FIT_MARGIN).
  """
  values = np.stack(layers)
  out = float(np.mean((values < -FIT_MARGIN) | (values > 1 + FIT_MARGIN)))
  fits = (info['off_plane_rms'] <= COLOUR_PLANE_RMS and info['spread'] >= COLOUR_PLANE_MIN_SPREAD
          and out <= FIT_TOLERANCE)
  return fits, out


# A photo over a one-colour texture, I = R + g c: in a small window a photo's
# colours lie near a line (the colour-line prior), so the window's colours
# span a plane that holds c. c is the direction closest to every window's
# plane; the model fits when the windows' planes agree on it
# (`texture_colour`'s disagreement at most TEXTURE_COLOUR_DISAGREEMENT; photos
# over tinted textures gave 0.0007-0.0022 in docs/transparency.md, two photos
# 0.0030-0.0052) and the texture layer stays >= 0.
TEXTURE_COLOUR_DISAGREEMENT = 0.0025
TEXTURE_WINDOW = 3  # Radius of the windows whose planes find c.
PHOTO_GUIDE_RADIUS = 8  # The guided filter that predicts the photo's c-component from its other two.
PHOTO_GUIDE_EPS = 1e-4
DARK_PERCENTILE = 0.5  # The photo layer's darkest pixels (this percentile) are taken as black.


def _window_covariances(image: np.ndarray, radius: int) -> np.ndarray:
  """(H * W, 3, 3) the colour covariance of each pixel's (2r+1)^2 window."""
  means = [filters.box_mean(image[..., i], radius) for i in range(3)]
  cov = np.empty(image.shape[:2] + (3, 3))
  for i in range(3):
    for j in range(i, 3):
      cov[..., i, j] = cov[..., j, i] = filters.box_mean(image[..., i] * image[..., j], radius) - means[i] * means[j]
  return cov.reshape(-1, 3, 3)


def texture_colour(image: np.ndarray, *, radius: int = TEXTURE_WINDOW) -> tuple[np.ndarray, float]:
  """The one colour added to a photo everywhere: the direction nearest to every window's colour plane.

  Each window's plane is given by its normal, the least eigenvector of its
  colour covariance, weighted by how flat the window's colours are (second
  over least eigenvalue, at most 1000); c minimises the weighted sum of
  (n . c)^2.

  Args:
    image: (H, W, 3).
    radius: the windows' radius.

  Returns:
    (c, unit (3,) with a positive sum; the disagreement: the least eigenvalue
    of the weighted normals' scatter over its trace, 0 when every plane holds c).
  """
  values, vectors = np.linalg.eigh(_window_covariances(np.asarray(image, np.float64), radius))
  normals = vectors[:, :, 0]
  weights = np.minimum(values[:, 1] / (values[:, 0] + 1e-8), 1e3)
  scatter = np.einsum('n,ni,nj->ij', weights, normals, normals)
  spread, directions = np.linalg.eigh(scatter)
  colour = directions[:, 0]
  return colour * np.sign(colour.sum()), float(spread[0] / spread.sum())


def photo_texture_unmix(image: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], dict[str, Any]]:
  """R (a photo) and T = g c (a texture of one colour) of one additive mixture I = R + T.

  c is `texture_colour`. The image's two components across c are the
  photo's alone; its component along c is the photo's plus the texture. The
  photo's part of it is predicted from the other two by a guided filter
  (locally linear, as the colour-line prior says), the texture g is the rest,
  up to a constant: the one that makes the photo layer's darkest pixels
  (`DARK_PERCENTILE`) black. No ground truth; nothing to train.

  Args:
    image: (H, W, 3) in [0, 1].

  Returns:
    ((R, T) float32 (H, W, 3), not clipped, {'texture_colour': c,
    'disagreement': `texture_colour`'s}).
  """
  chex.assert_rank(image, 3)
  x = np.asarray(image, np.float64)
  colour, disagreement = texture_colour(x)
  across = np.linalg.svd(np.eye(3) - np.outer(colour, colour))[0][:, :2]
  along = x @ colour
  photo_along = filters.guided_filter((x @ across).astype(np.float32), along[..., None].astype(np.float32),
                                      radius=PHOTO_GUIDE_RADIUS, eps=PHOTO_GUIDE_EPS)[..., 0]
  texture = along - photo_along
  # The photo R = I - (texture + k) c is >= 0 where k <= min_i I_i / c_i - texture.
  headroom = np.min(x / np.maximum(colour, 1e-3), axis=-1) - texture
  texture = texture + np.percentile(headroom, DARK_PERCENTILE)
  t = (texture[..., None] * colour).astype(np.float32)
  info = {'texture_colour': [float(c) for c in colour / np.max(np.abs(colour))], 'disagreement': disagreement}
  return ((x - t).astype(np.float32), t), info


def photo_texture_fits(info: dict[str, Any], layers: tuple[np.ndarray, np.ndarray]) -> tuple[bool, float]:
  """Whether `photo_texture_unmix`'s model fits: one texture colour for every window, layers in [0, 1].

  Returns:
    (fits, the share of the layers' values beyond [0, 1] by more than FIT_MARGIN).
  """
  values = np.stack(layers)
  out = float(np.mean((values < -FIT_MARGIN) | (values > 1 + FIT_MARGIN)))
  return info['disagreement'] <= TEXTURE_COLOUR_DISAGREEMENT and out <= FIT_TOLERANCE, out


def additive_unmixings(image: np.ndarray
                       ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, dict[str, Any]], str]:
  """The unmixings of one additive mixture, in turn until one's model fits: colour plane, then photo + texture.

  Returns:
    ({name: (R, T) clipped to [0, 1]}, {name: the model's entries, 'out_of_range', 'model_fits'}, the last one's name).
  """
  layers, report = {}, {}
  for name, unmix_fn, fits_fn in (('colour', colour_plane_unmix, colour_plane_fits),
                                  ('photo_texture', photo_texture_unmix, photo_texture_fits)):
    unmixed, info = unmix_fn(image)
    fits, out = fits_fn(info, unmixed)
    layers[name] = tuple(np.clip(x, 0.0, 1.0) for x in unmixed)
    report[name] = dict(info, out_of_range=out, model_fits=fits)
    if fits:
      break
  return layers, report, name

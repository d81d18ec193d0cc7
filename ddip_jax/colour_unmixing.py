"""One additive mixture I = R + T unmixed without training: by colour, where the layers' colours allow it.

`colour_plane_unmix`: each layer is one colour times a grey level (tinted
textures); `photo_texture_unmix`: a photo over a texture of one colour. Each
has a test of whether its model fits (`colour_plane_fits`,
`photo_texture_fits`); `additive_unmixings` tries them in turn and
`finalise_additive` chooses between them and the generators' layers
(`tasks/transparency.py`, `transparency.unmix='colour'`). No ground truth is
used by any of them.
"""

from typing import Any

import chex
import jax.numpy as jnp
import numpy as np

from ddip_jax import filters
from ddip_jax import losses
from ddip_jax import metrics as metrics_lib
from ddip_jax import unmixing
from ddip_jax.unmixing import FIT_MARGIN
from ddip_jax.unmixing import FIT_TOLERANCE

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
      total = total + (np.mean(np.log(np.cosh(np.clip(s, -30, 30))), axis=0) - _LOGCOSH_GAUSS) ** 2
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
  info = {
      'off_plane_rms': float(singular[2] / np.sqrt(len(x) * 3)),
      'spread': float(singular[1] / singular[0]),
      'colours': colours,
  }
  return (layers[0], layers[1]), info


def colour_plane_fits(info: dict[str, Any], layers: tuple[np.ndarray, np.ndarray]) -> tuple[bool, float]:
  """Whether `colour_plane_unmix`'s model fits: on the plane, two distinct colours, layers in [0, 1].

  Returns:
    (fits, the share of the layers' values beyond [0, 1] by more than FIT_MARGIN).
  """
  values = np.stack(layers)
  out = float(np.mean((values < -FIT_MARGIN) | (values > 1 + FIT_MARGIN)))
  fits = (
      info['off_plane_rms'] <= COLOUR_PLANE_RMS and info['spread'] >= COLOUR_PLANE_MIN_SPREAD and out <= FIT_TOLERANCE
  )
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
  photo_along = filters.guided_filter(
      (x @ across).astype(np.float32),
      along[..., None].astype(np.float32),
      radius=PHOTO_GUIDE_RADIUS,
      eps=PHOTO_GUIDE_EPS,
  )[..., 0]
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


def additive_unmixings(
    image: np.ndarray,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, dict[str, Any]], str]:
  """The unmixings of one additive mixture, in turn until one's model fits: colour plane, then photo + texture.

  Returns:
    ({name: (R, T) clipped to [0, 1]}, {name: the model's entries, 'out_of_range', 'model_fits'}, the last one's name).
  """
  layers, report = {}, {}
  for name, unmix_fn, fits_fn in (
      ('colour', colour_plane_unmix, colour_plane_fits),
      ('photo_texture', photo_texture_unmix, photo_texture_fits),
  ):
    unmixed, info = unmix_fn(image)
    fits, out = fits_fn(info, unmixed)
    layers[name] = tuple(np.clip(x, 0.0, 1.0) for x in unmixed)
    report[name] = dict(info, out_of_range=out, model_fits=fits)
    if fits:
      break
  return layers, report, name


def finalise_additive(
    image: np.ndarray,
    layers: tuple[np.ndarray, np.ndarray] | None,
    truths: list[np.ndarray] | None,
    *,
    exclusion_weight: float,
    select: str,
    layer_scale: float,
) -> tuple[tuple[np.ndarray, np.ndarray], dict[str, Any], str]:
  """The generators' layers of one additive mixture, or an unmixing of it where its model fits.

  Unmixings, of the full-size image, clipped to [0, 1]: 'colour'
  (`colour_plane_unmix`: each layer one colour) and, where that model does not
  fit, 'photo_texture' (`photo_texture_unmix`: a photo and a texture of one
  colour) (`additive_unmixings`). Each candidate is scored by the training
  loss (L1(R + T, I) + exclusion_weight * Exclusion(R, T)); the unmixing
  replaces the generators' layers as `unmixing.choose_finalisation` says
  (`select`; 'fit': its model fits, `colour_plane_fits` / `photo_texture_fits`).

  Args:
    image: (H, W, 3) the mixture at full size.
    layers: (R, T) of the generators, (H, W, 3) each, or None: none were run (the
      last unmixing is then chosen whatever `select`).
    truths: the true layers, for the report only (never for the choice), or None.
    exclusion_weight: the training loss's exclusion weight.
    select: `transparency.unmix_select`.
    layer_scale: the layers' estimates are layer_scale * R, layer_scale * T (scored against `truths`).

  Returns:
    ((R, T), {candidate: {'objective'[, 'ground_truth'][, unmixings: 'out_of_range',
    'model_fits' and the model's own entries]}}, the chosen candidate's name).
  """
  unmixed, models_info, name = additive_unmixings(image)
  candidates = {'generators': layers, **unmixed} if layers is not None else unmixed
  report = {}
  target = jnp.asarray(image)[None]
  for candidate, (r, t) in candidates.items():
    r, t = jnp.asarray(r)[None], jnp.asarray(t)[None]
    objective = losses.l1(r + t, target) + exclusion_weight * losses.exclusion_loss(r, t)
    report[candidate] = {'objective': float(objective), **models_info.get(candidate, {})}
    if truths is not None:
      report[candidate]['ground_truth'] = metrics_lib.layer_pair_scores(
          tuple(layer_scale * x for x in candidates[candidate]), tuple(truths)
      )
  chosen = unmixing.choose_finalisation(report, name, select) if layers is not None else name
  return candidates[chosen], report, chosen

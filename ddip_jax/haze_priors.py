"""Classic single-image dehazing priors, in numpy: airlight estimates and the colour attenuation prior.

The dark channel prior itself (He et al. 2009) lives with the dehazing task
(`tasks/dehaze.py`: `dark_channel`, `estimate_airlight`,
`dark_channel_transmission`), which uses it as the transmission prior of its
optimisation. This module adds what the task and its evaluation need besides:

  quadtree_airlight: Kim et al. 2013 ("Optimized contrast enhancement for
      real-time image and video dehazing", JVCIR): the airlight is searched in
      the quadrant of largest mean minus standard deviation, recursively, then
      the pixel nearest to white; a bright object is textured or small, so it
      does not capture the search as it captures He et al.'s brightest
      dark-channel pixels.
  colour attenuation prior (Zhu, Mai & Shao 2015, IEEE TIP): scene depth is
      linear in brightness minus saturation, d = 0.121779 + 0.959710 v
      - 0.780245 s, min-filtered and refined by a guided filter; t = exp(-d)
      (beta = 1), A from the farthest 0.1% of the pixels.
  dark channel prior (He, Sun & Tang 2009): `dark_channel`, `estimate_airlight`,
      `dark_channel_transmission`, its guided-filter refinement and the recovery
      J = (I - (1 - t) A) / t (`refine_transmission`, `recover`).
  radiance_bound_transmission: the upper half of Meng et al.'s boundary
      constraint (ICCV 2013) with the radiance's own bound J <= 1: where a
      patch is brighter than A, t >= (I - A) / (1 - A). The lower half (J >= 0)
      is what He et al.'s dark channel bounds already; the upper half lifts t
      where the dark channel does not hold: bright sky and white objects.
"""

import functools

import chex
import cv2
import jax
import jax.numpy as jnp
import numpy as np

from ddip_jax import filters

# Zhu et al.'s linear model of depth in value and saturation (their learned coefficients).
CAP_THETA = (0.121779, 0.959710, -0.780245)


AIRLIGHT_FLOOR = 1 / 255  # The lowest airlight of a channel: I / A must stay finite.


def min_filter(x: np.ndarray, patch: int) -> np.ndarray:
  """Min over a patch x patch window (replicated borders, i.e. windows clipped at the border).

  Args:
    x: (H, W) float.
    patch: odd window side.
  """
  kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (patch, patch))
  return cv2.erode(np.asarray(x, np.float32), kernel, borderType=cv2.BORDER_REPLICATE)


def quadtree_airlight(image: np.ndarray, *, min_side: int = 8) -> np.ndarray:
  """Kim et al.'s hierarchical airlight search.

  Args:
    image: (H, W, 3) float in [0, 1].
    min_side: the search stops when a quadrant's shorter side is below this.

  Returns:
    (3,) float32 airlight, each channel at least 1/255.
  """
  region = np.asarray(image, np.float32)
  while min(region.shape[:2]) >= 2 * min_side:
    h, w = region.shape[0] // 2, region.shape[1] // 2
    quadrants = (region[:h, :w], region[:h, w:], region[h:, :w], region[h:, w:])
    region = max(quadrants, key=lambda q: float(q.mean() - q.std()))
  pixels = region.reshape(-1, 3)
  best = pixels[np.argmin(np.linalg.norm(pixels - 1.0, axis=1))]
  return np.maximum(best, 1 / 255).astype(np.float32)


def cap_depth(image: np.ndarray, *, patch: int = 15) -> np.ndarray:
  """Zhu et al.'s raw depth, min-filtered over patch x patch windows (not yet refined).

  Args:
    image: (H, W, 3) float in [0, 1].

  Returns:
    (H, W) float32 relative depth (larger: farther).
  """
  value = image.max(axis=-1)
  saturation = np.where(value > 0, (value - image.min(axis=-1)) / np.maximum(value, 1e-6), 0.0)
  theta0, theta1, theta2 = CAP_THETA
  return min_filter(theta0 + theta1 * value + theta2 * saturation, patch)


def colour_attenuation_dehaze(
    image: np.ndarray,
    *,
    radius: int,
    eps: float = 1e-3,
    patch: int = 15,
    beta: float = 1.0,
    t_range: tuple[float, float] = (0.1, 0.9),
    top_fraction: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The colour attenuation prior dehazer (Zhu et al. 2015).

  Args:
    image: (H, W, 3) float in [0, 1].
    radius, eps: the guided filter refining the depth (guide: the image).
    patch: min-filter window side.
    beta: scattering coefficient, t = exp(-beta d) (Zhu et al.: 1).
    t_range: t is clipped to it (Zhu et al.: [0.1, 0.9]).
    top_fraction: A is the brightest pixel among this fraction of the farthest.

  Returns:
    (J (H, W, 3), t (H, W), A (3,)), float32.
  """
  image = np.asarray(image, np.float32)
  depth = filters.guided_filter(image, cap_depth(image, patch=patch), radius=radius, eps=eps)
  flat = depth.reshape(-1)
  far = np.argsort(flat)[-max(1, int(flat.size * top_fraction)) :]
  candidates = image.reshape(-1, 3)[far]
  airlight = np.maximum(candidates[np.argmax(candidates.sum(axis=1))], 1 / 255)
  t = np.clip(np.exp(-beta * depth), *t_range)
  dehazed = np.clip((image - airlight) / t[..., None] + airlight, 0.0, 1.0)
  return dehazed.astype(np.float32), t.astype(np.float32), airlight.astype(np.float32)


def dark_channel(image: jax.Array, *, patch: int) -> jax.Array:
  """The dark channel of He et al.: min over RGB and a patch x patch window.

  Args:
    image: (H, W, 3) float in [0, 1].
    patch: odd window side (windows are clipped at the border, which is the
      official code's edge padding).

  Returns:
    (H, W) dark channel.
  """
  chex.assert_rank(image, 3)
  return filters.min_filter(jnp.min(image, axis=-1), patch // 2)


@functools.partial(jax.jit, static_argnames=('patch', 'top_fraction'))
def estimate_airlight(image: jax.Array, *, patch: int = 15, top_fraction: float = 1e-4) -> jax.Array:
  """Dark-channel-prior airlight (He et al. 2009, as in the official code).

  Takes the int(H * W * top_fraction) pixels (at least one) with the brightest
  dark channel; the airlight is, per channel, the image's maximum among them.

  Args:
    image: (H, W, 3) float in [0, 1].
    patch: dark-channel window side (odd).
    top_fraction: fraction of the pixels searched.

  Returns:
    (3,) airlight, each channel at least `AIRLIGHT_FLOOR` (I / A must stay
    finite: a black image, or one with an empty channel, has a zero there).
  """
  chex.assert_rank(image, 3)
  h, w, c = image.shape
  count = max(1, int(h * w * top_fraction))
  _, index = jax.lax.top_k(dark_channel(image, patch=patch).reshape(-1), count)
  return jnp.maximum(jnp.max(image.reshape(-1, c)[index], axis=0), AIRLIGHT_FLOOR)


def dark_channel_transmission(image: jax.Array, airlight: jax.Array, *, patch: int, omega: float) -> jax.Array:
  """He et al.'s raw transmission estimate t = 1 - omega * dark_channel(I / A).

  Args:
    image: (H, W, 3) float in [0, 1].
    airlight: (3,) or (H, W, 3), positive.
    patch: dark-channel window side (odd).
    omega: fraction of the haze removed (He et al.: 0.95, keeps some haze for depth perception).

  Returns:
    (H, W) unrefined transmission.
  """
  chex.assert_rank(image, 3)
  return 1.0 - omega * dark_channel(image / airlight, patch=patch)


def radiance_bound_transmission(image: np.ndarray, airlight: np.ndarray, *, patch: int) -> np.ndarray:
  """The least t that keeps J = (I - A) / t + A at or below 1, closed over patch x patch windows.

  Per pixel, b = max_c (I_c - A_c) / (1 - A_c) (zero where I <= A); as in Meng
  et al. 2013 the bound is then closed (max, then min filter over the patch):
  gaps narrower than a patch between bounded pixels take the bound too.

  Args:
    image: (H, W, 3) float in [0, 1].
    airlight: (3,) airlight; a channel at 1 bounds nothing.
    patch: odd window side.

  Returns:
    (H, W) float32 in [0, 1].
  """
  image = np.asarray(image, np.float32)
  airlight = np.asarray(airlight, np.float32)
  bound = np.max((image - airlight) / np.maximum(1.0 - airlight, AIRLIGHT_FLOOR), axis=-1)
  bound = np.clip(bound, 0.0, 1.0).astype(np.float32)
  kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (patch, patch))
  return cv2.morphologyEx(bound, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)


def recover(hazy: np.ndarray, transmission: np.ndarray, airlight: np.ndarray) -> np.ndarray:
  """J = clip((I - (1 - t) A) / t, 0, 1).

  Args:
    hazy: (H, W, 3) image I.
    transmission: (H, W) t, > 0 (clip it first).
    airlight: (3,) or (H, W, 3) A.

  Returns:
    (H, W, 3) float32 haze-free image.
  """
  t = transmission[..., None]
  return np.clip((hazy - (1.0 - t) * airlight) / t, 0.0, 1.0).astype(np.float32)


def refine_transmission(
    transmission: np.ndarray, guide: np.ndarray, *, radius: int, eps: float, t_min: float, opencv_compat: bool = True
) -> np.ndarray:
  """Guided-filter refinement of a transmission map, then clipping to [t_min, 1].

  Args:
    transmission: (H, W) t.
    guide: (H, W, 3) hazy image, same size.
    radius: guided-filter radius in pixels (0: no filtering).
    eps: guided-filter regulariser.
    t_min: lower clip, keeps J's division bounded.
    opencv_compat: OpenCV's border handling and determinant guard (official).

  Returns:
    (H, W) float32 in [t_min, 1].
  """
  if radius > 0:
    transmission = filters.guided_filter(
        np.asarray(guide, np.float32),
        np.asarray(transmission, np.float32),
        radius=radius,
        eps=eps,
        opencv_compat=opencv_compat,
    )
  return np.clip(transmission, t_min, 1.0).astype(np.float32)


def prior_transmission(
    image: np.ndarray, airlight: np.ndarray, *, patch: int, omega: float, radiance_bound: bool
) -> np.ndarray:
  """The unrefined prior t: He et al.'s 1 - omega dark(I / A), raised to the bound J <= 1 with `radiance_bound`.

  Args:
    image: (H, W, 3) hazy input.
    airlight: (3,) or (H, W, 3) A (the bound needs one colour; a map gets none).
    patch, omega: the dark channel's window side and the haze kept (1 - omega).
    radiance_bound: raise t to `radiance_bound_transmission`.

  Returns:
    (H, W) float32.
  """
  t = np.asarray(dark_channel_transmission(jnp.asarray(image), jnp.asarray(airlight), patch=patch, omega=omega))
  if radiance_bound and np.ndim(airlight) == 1:
    t = np.maximum(t, radiance_bound_transmission(image, airlight, patch=patch))
  return t

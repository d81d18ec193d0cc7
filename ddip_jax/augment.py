"""The 8 flip/rotation (dihedral) augmentations of Double-DIP, as pure functions.

The official code trains some tasks (texture separation, watermark removal) on
augmented copies of the image and of every generator's noise: at augmented
steps each network maps T(noise) to T(image). Here a task applies `transform`
to the noise and `inverse` to the generators' outputs, then computes its losses
in the original frame; for pixelwise losses this is the same objective, and the
outputs (and the best result the engine tracks) are always upright.

Index k follows the official `create_augmentations` order on the spatial axes
(H, W): k = 0..3 is rot90 by k quarter turns (from H towards W, as
`np.rot90(x, k, axes=(1, 2))`), k = 4..7 is a flip along H followed by k - 4
quarter turns. Every k is a static branch of `lax.switch`, so k may be traced
and a jitted loss compiles once for all 8.
"""

import chex
import jax
import jax.numpy as jnp

NUM_TRANSFORMS = 8
# INVERSE[k] undoes transform k: quarter turns by their opposite, and every
# flip-then-rotate is a reflection, hence its own inverse.
INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)


def _dihedral(k: int):
  """The static transform number k on the spatial axes of an NHWC array."""

  def apply(x: jax.Array) -> jax.Array:
    if k >= 4:
      x = jnp.flip(x, axis=1)
    return jnp.rot90(x, k % 4, axes=(1, 2))

  return apply


_BRANCHES = tuple(_dihedral(k) for k in range(NUM_TRANSFORMS))
_INVERSE_BRANCHES = tuple(_dihedral(INVERSE[k]) for k in range(NUM_TRANSFORMS))


def _check(x: jax.Array) -> None:
  chex.assert_rank(x, 4)
  if x.shape[1] != x.shape[2]:
    raise ValueError(
        'dihedral augmentation needs square spatial dims (quarter turns swap H and W), '
        f'got shape {x.shape}; run the generators on a square canvas.'
    )


def transform(x: jax.Array, index: jax.Array | int) -> jax.Array:
  """Applies dihedral transform `index` to an NHWC batch.

  Args:
    x: (N, S, S, C) array, square spatial dims.
    index: int or int32 scalar (traced is fine) in [0, 8); see the module
      docstring for the order. Out-of-range values are clamped by `lax.switch`.

  Returns:
    (N, S, S, C) array, the transformed batch.
  """
  _check(x)
  return jax.lax.switch(index, _BRANCHES, x)


def inverse(x: jax.Array, index: jax.Array | int) -> jax.Array:
  """Undoes `transform(., index)`: inverse(transform(x, k), k) == x.

  Args:
    x: (N, S, S, C) array, square spatial dims.
    index: int or int32 scalar in [0, 8), as given to `transform`.

  Returns:
    (N, S, S, C) array.
  """
  _check(x)
  return jax.lax.switch(index, _INVERSE_BRANCHES, x)


def official_schedule(step: jax.Array, num_steps: int, *, period: int = 2) -> jax.Array:
  """The official augmentation index of an iteration.

  Iterations that are not multiples of `period`, and the last one, use the
  identity; iteration `it` otherwise uses (it // 2) % 8. With the default
  period 2 (texture separation) every transform recurs every 16 iterations;
  with period 4 (watermark removal) only the even indices 0, 2, 4, 6 occur
  (identity, half turn, flip along H, flip along W), every 16 iterations.

  Args:
    step: int32 scalar iteration (traced is fine).
    num_steps: the stage's number of iterations.
    period: augment only iterations that are multiples of this (>= 1).

  Returns:
    int32 scalar in [0, 8).
  """
  step = jnp.asarray(step, jnp.int32)
  index = jnp.where(step % period != 0, 0, (step // 2) % NUM_TRANSFORMS)
  return jnp.where(step == num_steps - 1, 0, index).astype(jnp.int32)

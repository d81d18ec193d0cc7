"""The two-mixture transparency task's loss and its finalisation: the generators' layers or an exact unmixing.

`reconstruction_exclusion` is the loss the generators are trained on (without
the alpha prior) and the objective every candidate finalisation is scored by;
`finalise_by_unmixing` replaces the generators' layers by the mixtures solved
exactly for R and T where `transparency.unmix` and `unmix_select` say so
(tasks/transparency.py's docstring).
"""

from typing import Any

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ddip_jax import losses
from ddip_jax import metrics as metrics_lib
from ddip_jax import unmixing


def reconstruction_exclusion(
    r: jax.Array, t: jax.Array, alphas: list[jax.Array], images: jax.Array, exclusion_weight: float
) -> tuple[jax.Array, list[jax.Array]]:
  """The two-mixture loss without the alpha prior, and the recompositions.

  Args:
    r, t: (N, H, W, 3) the layers.
    alphas: two weights of R, each broadcastable to r: (N, 1, 1, 1) or (N, H, W, 1).
    images: (2, N, H, W, 3) the mixtures.
    exclusion_weight: weight of `losses.exclusion_loss(r, t)`.

  Returns:
    (sum_k MSE(a_k R + (1 - a_k) T, I_k) + exclusion_weight * Exclusion(R, T),
    [the two recompositions]).
  """
  recons = [losses.blend(a, r, t) for a in alphas]
  loss = sum(losses.mse(recon, img) for recon, img in zip(recons, images))
  return loss + exclusion_weight * losses.exclusion_loss(r, t), recons


def finalise_by_unmixing(
    config: ml_collections.ConfigDict,
    full: np.ndarray,
    layers: tuple[np.ndarray, np.ndarray],
    alphas: list[np.ndarray],
    truths: list[np.ndarray] | None,
) -> tuple[tuple[np.ndarray, np.ndarray], list[np.ndarray], dict[str, Any], str]:
  """The generators' layers, or the exact unmixing of the mixtures if it lowers the loss.

  Candidates: 'generators' (the optimised layers), 'learned' (`unmix` with the
  learned alphas) and, with `transparency.unmix='refined'`, 'refined' (`unmix`
  with the alphas of `unmixing.refine_from_both`: searched near the learned ones and
  over the whole range, the lower edge overlap wins); unmixed layers are
  clipped to [0, 1]. Each is scored at full size by
  `reconstruction_exclusion` (the training loss without the alpha prior) and
  `unmixing.out_of_range_fraction`; the configured candidate replaces the generators'
  as `unmixing.choose_finalisation` says (`unmix_select`).
  Unmixings with |a_1 - a_2| < `unmix_min_gap` are not tried.

  Args:
    config: full config (`transparency` section).
    full: (2, H, W, 3) the mixtures at full size.
    layers: (R, T) of the generators, (H, W, 3) each.
    alphas: the learned a_1, a_2, (1, 1, 1) each.
    truths: the true layers, for the report only (never for the choice), or None.

  Returns:
    ((R, T), [a_1, a_2], {candidate: {'alphas', 'objective'[, 'ground_truth':
    `metrics.layer_pair_scores`][, unmixed: 'out_of_range'][, 'refined': 'edge_overlap',
    'refined_from']}},
    the chosen candidate's name).
  """
  chex.assert_rank(full, 4)
  tr = config.transparency
  learned = jnp.asarray([float(a.item()) for a in alphas], jnp.float32)
  tried = {'learned': learned}
  extra = {}
  if tr.unmix == 'refined':
    tried['refined'], extra = unmixing.refine_from_both(
        np.asarray(full), learned, radius=tr.refine_radius, min_gap=tr.unmix_min_gap
    )
  candidates = {'generators': (learned, layers)}
  out_of_range = {}
  for name, pair in tried.items():
    if abs(float(pair[0] - pair[1])) >= tr.unmix_min_gap:
      unmixed = tuple(np.asarray(x) for x in unmixing.unmix(jnp.asarray(full), pair))
      out_of_range[name] = unmixing.out_of_range_fraction(unmixed, pair)
      candidates[name] = (pair, tuple(np.clip(x, 0.0, 1.0) for x in unmixed))
  report = {}
  images = jnp.asarray(full)[:, None]
  for name, (pair, (r, t)) in candidates.items():
    objective, _ = reconstruction_exclusion(
        jnp.asarray(r)[None],
        jnp.asarray(t)[None],
        [jnp.reshape(a, (1, 1, 1, 1)) for a in pair],
        images,
        tr.exclusion_weight,
    )
    report[name] = {'alphas': [float(a) for a in pair], 'objective': float(objective)}
    if name in out_of_range:
      report[name]['out_of_range'] = out_of_range[name]
    if name == 'refined':
      report[name].update(extra)
    if truths is not None:
      report[name]['ground_truth'] = metrics_lib.layer_pair_scores((r, t), tuple(truths))
  chosen = unmixing.choose_finalisation(report, tr.unmix, tr.unmix_select)
  pair, chosen_layers = candidates[chosen]
  return chosen_layers, [np.reshape(float(a), (1, 1, 1)) for a in pair], report, chosen

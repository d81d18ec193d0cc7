"""The watermark tasks' generators and their noise: C (one per image), W and M, from the config.

Every run of a task draws each generator's noise from its own key
(`run_noise`); `tasks/watermark.py` builds the problem from them.
"""

import jax
import jax.numpy as jnp
import flax.linen as nn
import ml_collections

from ddip_jax import models
from ddip_jax import watermark_layers


def make_generators(config: ml_collections.ConfigDict, num_images: int) -> dict[str, nn.Module]:
  """C (one per image), W and M from the `generator` and `watermark` sections."""
  wm = config.watermark
  clean = models.generator_from_config(config.generator, out_channels=3)
  generators = {name: clean for name in watermark_layers.clean_names(num_images)}
  if wm.watermark_model == 'colour':
    generators['watermark'] = models.ConstantColour()
  else:
    generators['watermark'] = models.generator_from_config(
        config.generator, out_channels=3, kernel_down=wm.watermark_kernel, kernel_up=wm.watermark_kernel
    )
  mask_channels = tuple(wm.mask_channels)
  generators['mask'] = models.generator_from_config(
      config.generator,
      out_channels=1,
      channels_down=mask_channels,
      channels_up=mask_channels,
      channels_skip=tuple(wm.mask_skip),
      kernel_down=wm.mask_kernel,
      kernel_up=wm.mask_kernel,
  )
  return generators


def run_noise(
    config: ml_collections.ConfigDict, canvas: tuple[int, int], names: tuple[str, ...], run_keys: list[jax.Array]
) -> dict[str, jax.Array]:
  """Every generator's noise for the given runs: (1, S, S, D), or (R, 1, S, S, D) for R > 1 runs.

  Generator `names[i]` of the run with key k gets the noise of fold_in(k, i).
  """
  noise = {}
  for i, name in enumerate(names):
    per_run = [models.noise_from_config(config.generator, jax.random.fold_in(k, i), canvas) for k in run_keys]
    noise[name] = jnp.stack(per_run) if len(per_run) > 1 else per_run[0]
  return noise

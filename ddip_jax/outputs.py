"""What every task shares around its optimisation: working resolution, loop
options from the config, and writing layers, the summary picture and metrics."""

import os
import platform
from typing import Any

import jax
import ml_collections
import numpy as np

from ddip_jax import engine
from ddip_jax import image_io


def working_image(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
  """Downscales an image so that its longer side is at most `max_side`.

  Args:
    image: (H, W, C) float in [0, 1].
    max_side: the working resolution's longest side (<= 0: no limit).

  Returns:
    (working image, scale) with scale = working side / original side (<= 1).
  """
  longest = max(image.shape[:2])
  if max_side <= 0 or longest <= max_side:
    return image, 1.0
  scale = max_side / longest
  shape = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)))
  return image_io.resize_image(image, shape), scale


def loop_options(config: ml_collections.ConfigDict) -> engine.LoopOptions:
  """The engine's loop options from `config.loop` and `config.progress`."""
  return engine.LoopOptions(
      strategy=config.loop.strategy,
      steps_per_call=config.loop.steps_per_call,
      check_every=config.loop.check_every,
      num_perturbations=config.loop.num_perturbations,
      progress=config.progress,
  )


def environment() -> dict[str, Any]:
  """Versions and backend, recorded in every metrics file."""
  import flax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top

  return {
      'python': platform.python_version(),
      'jax': jax.__version__,
      'flax': flax.__version__,
      'optax': optax.__version__,
      'numpy': np.__version__,
      'backend': jax.default_backend(),
      'devices': [str(d) for d in jax.devices()],
  }


def write_outputs(
    workdir: str,
    config: ml_collections.ConfigDict,
    *,
    images: dict[str, np.ndarray],
    metrics: dict[str, Any],
    summary: list[tuple[str, np.ndarray]],
) -> None:
  """Writes `<name>.png` for every image, `summary.png` and `metrics.json`.

  Every file is written atomically, so an interrupted run never leaves a
  half-written output; metrics also record the config, seed and environment.
  """
  os.makedirs(workdir, exist_ok=True)
  for name, img in images.items():
    image_io.save_image(os.path.join(workdir, f'{name}.png'), img)
  image_io.save_image(os.path.join(workdir, 'summary.png'), image_io.make_summary(summary))
  record = {
      **metrics,
      'seed': config.seed,
      'config': config.to_dict(),
      'environment': environment(),
  }
  image_io.write_json(os.path.join(workdir, 'metrics.json'), record)

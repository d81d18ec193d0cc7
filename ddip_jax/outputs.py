"""A run's results as files: the layers, the summary picture and metrics.json (with the config, the
input files' SHA-256 and the environment), written as one set."""

import dataclasses
import importlib.metadata
import os
import platform
from typing import Any

import jax
import ml_collections
import numpy as np

from ddip_jax import runner
from ddip_jax import summary_picture
from ddip_jax import writing

# Metrics that measure wall-clock time (everything else is reproducible).
_TIMINGS = ('seconds', 'steps_per_second', 'hint_seconds', 'frames_per_second')


def without_timings(metrics: Any) -> Any:
  """`metrics` less its wall-clock entries: what must match between two runs of one config."""
  if isinstance(metrics, dict):
    return {k: without_timings(v) for k, v in metrics.items() if k not in _TIMINGS}
  return metrics


def environment() -> dict[str, Any]:
  """Versions and backend, recorded in every metrics file."""
  import flax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top

  return {
      'python': platform.python_version(),
      'jax': jax.__version__,
      'jaxlib': importlib.metadata.version('jaxlib'),
      'flax': flax.__version__,
      'optax': optax.__version__,
      'numpy': np.__version__,
      'backend': jax.default_backend(),
      'devices': [str(d) for d in jax.devices()],
  }


@dataclasses.dataclass(frozen=True)
class Decomposition:
  """A task's result, in memory (its `decompose`): what `write` puts in a workdir.

  Attributes:
    images: name -> full-size array (a name may hold a folder: 'fg/00003').
    metrics: what metrics.json holds, less the run record `write_outputs` adds.
    summary: the summary picture's (title, image) panels, or the finished picture.
  """

  images: dict[str, np.ndarray]
  metrics: dict[str, Any]
  summary: list[tuple[str, np.ndarray]] | np.ndarray

  def frames(self, name: str) -> np.ndarray:
    """A clip's layer: the images of folder `name` ('fg' for 'fg/0000', 'fg/0001', ...) stacked in order."""
    return np.stack([image for key, image in sorted(self.images.items()) if key.startswith(f'{name}/')])


def write(decomposition: Decomposition, config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes a decomposition's images, summary picture and metrics.json to `workdir` (`write_outputs`)."""
  write_outputs(
      workdir, config, images=decomposition.images, metrics=decomposition.metrics, summary=decomposition.summary
  )


def write_outputs(
    workdir: str,
    config: ml_collections.ConfigDict,
    *,
    images: dict[str, np.ndarray],
    metrics: dict[str, Any],
    summary: list[tuple[str, np.ndarray]] | np.ndarray,
) -> None:
  """Writes `<name>.png` for every image, `summary.png` and `metrics.json`.

  `summary` is a list of (title, image) panels for `summary_picture.make_summary`, or
  the finished (H, W, 3) picture. A name may hold a folder ('fg/0003').

  The files are written as a set (`writing.write_files`): an interrupted run
  or a full disk never leaves a half-written output, nor a mix of new and old
  ones. Metrics also record the config, seed, the SHA-256 of every input file
  (`input_sha256`) and the environment.

  Raises:
    writing.OutputError: a file cannot be written (the earlier ones are intact).
  """
  files = {os.path.join(workdir, f'{name}.png'): writing.encode_png(img) for name, img in images.items()}
  picture = summary if isinstance(summary, np.ndarray) else summary_picture.make_summary(summary)
  files[os.path.join(workdir, 'summary.png')] = writing.encode_png(picture)
  record = {**metrics, **runner.run_record(config), 'environment': environment()}
  files[os.path.join(workdir, runner.METRICS)] = writing.json_bytes(record)
  writing.write_files(files)

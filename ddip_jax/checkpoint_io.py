"""The checkpoint format: one msgpack file of `flax.serialization` state dicts, written atomically.

It holds the current stage's whole `TrainState` (all parameters, batch_stats,
Adam state, step, best result so far), the finished stages' metrics and best
outputs, and the root key's data, with `VERSION` and the run's tag. Because
per-step keys are `fold_in(key, step)` and a resumed stage runs the same
compiled chunks from the same chunk boundary, a resumed run ends bit-identical
to an uninterrupted one (`engine.optimize` writes and reads them).
"""

import dataclasses
from typing import Any

from flax import serialization
import jax
import numpy as np

from ddip_jax import errors
from ddip_jax import writing

VERSION = 1
PyTree = Any


CheckpointError = errors.CheckpointError


@dataclasses.dataclass(frozen=True)
class Checkpointing:
  """Where and how often `engine.optimize` saves its state.

  Attributes:
    path: the checkpoint file; if it exists, `optimize` resumes from it.
    every: steps between periodic saves, made at the first chunk boundary at or
      after each multiple. The end of every stage is saved too, and so is the
      step at which a stop was requested.
    tag: identifies the run (e.g. its config as JSON); a checkpoint with another
      tag is refused.
  """

  path: str
  every: int = 500
  tag: str = ''


def load_checkpoint(path: str) -> dict[str, Any]:
  """Reads a checkpoint written by `engine.optimize` (host arrays, not yet validated).

  Raises:
    CheckpointError: the file cannot be read or is not such a checkpoint.
  """
  try:
    with open(path, 'rb') as f:
      payload = serialization.msgpack_restore(f.read())
  except OSError as err:
    raise CheckpointError(f'cannot read checkpoint {path!r}: {err.strerror or err}') from err
  except Exception as err:  # msgpack raises many kinds of errors on bad data.
    raise CheckpointError(
        f'checkpoint {path!r} is corrupt ({type(err).__name__}); ' 'delete it to start the run over'
    ) from err
  if not isinstance(payload, dict) or payload.get('version') != VERSION:
    raise CheckpointError(
        f'{path!r} is not a checkpoint of this version of ddip_jax; ' 'delete it to start the run over'
    )
  return payload


def restore_like(template: PyTree, saved: Any, path: str) -> PyTree:
  """`saved` (a state dict) restored into the structure of `template`, shapes and dtypes checked."""
  try:
    restored = serialization.from_state_dict(template, saved)
  except (ValueError, KeyError, TypeError) as err:
    raise CheckpointError(f'checkpoint {path!r} does not fit this problem ({err})') from err
  for (where, want), got in zip(jax.tree_util.tree_leaves_with_path(template), jax.tree.leaves(restored)):
    got = np.asarray(got)
    if got.shape != want.shape or got.dtype != want.dtype:
      raise CheckpointError(
          f'checkpoint {path!r} does not fit this problem: {jax.tree_util.keystr(where)} is '
          f'{got.dtype}{list(got.shape)}, expected {want.dtype}{list(want.shape)}'
      )
  return jax.device_put(restored)


def save(path: str, payload: dict[str, Any]) -> None:
  """Writes `payload` (host arrays and plain data) with this format's `VERSION`, atomically.

  Raises:
    writing.OutputError: the file cannot be written.
  """
  writing.write_bytes(path, serialization.msgpack_serialize({'version': VERSION, **payload}))

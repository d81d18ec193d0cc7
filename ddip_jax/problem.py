"""What a task hands to the engine: its problem as data, and the state the engine steps.

A task describes its problem as generators (flax modules), their fixed noise
inputs and a list of stages, each with a pure loss function of all the
generators' parameters (`Problem`, `Stage`); `LoopOptions` say how the engine
drives the steps, `TrainState` is what one compiled step maps to the next.
`engine` re-exports these names (tasks write `engine.Stage`).
"""

from collections.abc import Callable, Mapping, Sequence
import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import jax

PyTree = Any
Outputs = dict[str, jax.Array]
# loss_fn(params, batch_stats, step, key[, data]) -> (loss, (batch_stats, outputs, psnr)).
# `params`/`batch_stats` map generator names to their collections, `step` is the
# int32 step within the stage, `outputs` are the layers worth keeping and `psnr`
# is the reconstruction PSNR used to select the best result; `data` is the
# stage's `data`, for a stage that has some.
LossFn = Callable[..., tuple[jax.Array, tuple[PyTree, Outputs, jax.Array]]]


@dataclasses.dataclass(frozen=True)
class Stage:
  """One optimisation stage (a fresh Adam over `trainable` generators).

  Attributes:
    name: shown in progress lines and metrics.
    num_steps: number of iterations.
    loss_fn: see `LossFn`.
    learning_rate: Adam learning rate.
    trainable: generator names optimised in this stage (None: all).
    track_best: keep the outputs with the best PSNR seen in this stage.
    early_stop_psnr: stop once the PSNR exceeds this (None: never).
    data: arrays the loss takes as its last argument (None: it takes four).
      Stages of one loss function on other data run one compiled program,
      found without tracing the loss again (e.g. segmentation's two steps, and
      an interactive correction's new hints).
  """

  name: str
  num_steps: int
  loss_fn: LossFn
  learning_rate: float = 1e-3
  trainable: tuple[str, ...] | None = None
  track_best: bool = True
  early_stop_psnr: float | None = None
  data: PyTree = None


@dataclasses.dataclass(frozen=True)
class Problem:
  """What a task hands to the engine."""

  generators: Mapping[str, nn.Module]
  inputs: Mapping[str, jax.Array]
  stages: Sequence[Stage]


@dataclasses.dataclass(frozen=True)
class LoopOptions:
  """How the engine drives the steps (numerics do not depend on these).

  Attributes:
    strategy: 'auto', 'step' (one jitted step per call), 'unroll' (a jit of
      `steps_per_call` Python-unrolled steps) or 'scan' (lax.scan over them).
    steps_per_call: steps per compiled call for 'unroll' / 'scan'.
    check_every: steps between early-stopping / NaN checks (host syncs); a
      multiple of steps_per_call keeps the stopping step independent of it.
    num_perturbations: noise perturbations per step, batched with `jax.vmap`
      (the loss is their mean).
    progress: show a progress bar.
    cpu_convolutions: on XLA:CPU, who runs the step's convolutions: 'eigen'
      (XLA's own Eigen kernels; faster for these networks, see
      `compiler_options`) or 'xla_default' (XLA's choice: YNNPACK in jax 0.10).
      The two round differently; other backends ignore it.
  """

  strategy: str = 'auto'
  steps_per_call: int = 1
  check_every: int = 10
  num_perturbations: int = 1
  progress: bool = True
  cpu_convolutions: str = 'eigen'


class TrainState(NamedTuple):
  """A stage's state between compiled steps: its step, variables, Adam state, last loss and PSNR, and best outputs."""

  step: jax.Array
  params: PyTree
  batch_stats: PyTree
  opt_state: PyTree
  loss: jax.Array
  psnr: jax.Array
  best_psnr: jax.Array
  best_step: jax.Array
  best: Outputs

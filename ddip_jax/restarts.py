"""Restarts: run a task with several seeds and keep the best result.

Double-DIP's decompositions vary with the random initialisation. With
`config.restarts = R` (> 1), the task runs R times, with seeds `seed`,
`seed + 1`, ..., `seed + R - 1`, each in `<workdir>/restart_<r>/`; the run whose
metrics score best by the task's selection metric (the reconstruction PSNR of
its kept result, `best_recon_psnr`, unless the task module names another in
`SELECTION_METRIC`; higher is better) is copied to the workdir, whose
metrics.json also lists every restart's seed, status and score.

Restarts run one after the other: on XLA:CPU a `vmap` over R sets of
parameters turns every convolution into a grouped one and was slower per
restart than running them in turn (docs/speed.md). This works for every task,
whatever its stages or passes, because it wraps the task's `run`.

A restart that finished (its metrics.json says 'ok' for the same config) is
not run again, so an interrupted run resumes: finished restarts are kept, the
interrupted one resumes from its checkpoint. A restart stopped by NaN/Inf is
recorded as failed and the others go on; if all fail, the last error is raised.
"""

from collections.abc import Callable
import dataclasses
import math
import os
from types import ModuleType
from typing import Any, TypeVar

from absl import logging
import ml_collections

from ddip_jax import engine
from ddip_jax import hooks
from ddip_jax import runner
from ddip_jax import writing

DEFAULT_SELECTION_METRIC = 'best_recon_psnr'
T = TypeVar('T')


def selection_metric(task: ModuleType) -> str:
  """The metrics key that ranks a task's runs (higher is better)."""
  return getattr(task, 'SELECTION_METRIC', DEFAULT_SELECTION_METRIC)


def restart_config(config: ml_collections.ConfigDict, index: int) -> ml_collections.ConfigDict:
  """The config of restart `index`: seed + index, one restart."""
  restart = ml_collections.ConfigDict(config.to_dict())
  restart.seed = config.seed + index
  restart.restarts = 1
  return restart


def _score(metrics: dict[str, Any] | None, metric: str) -> float:
  value = (metrics or {}).get(metric)
  return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else -math.inf


def pick_best(scores: list[float]) -> int:
  """Index of the highest score; the first one on ties (so the lowest seed)."""
  return max(range(len(scores)), key=lambda i: (scores[i], -i))


def _record(
    index: int, seed: int, metrics: dict[str, Any] | None, error: Exception | None, metric: str
) -> dict[str, Any]:
  """A restart's entry in the chosen run's `restarts`: index, seed, status, score."""
  score = _score(metrics, metric)
  return {
      'restart': index,
      'seed': seed,
      'status': metrics['status'] if metrics else f'failed: {error}',
      metric: score if math.isfinite(score) else None,
  }


def best_of(
    decompose: Callable[[ml_collections.ConfigDict], T],
    config: ml_collections.ConfigDict,
    metric: str = DEFAULT_SELECTION_METRIC,
) -> T:
  """`run`'s restarts in memory: decompose(config of restart r) for each, the best by `metric`.

  Args:
    decompose: a task's decomposition of one config, returning a result with `metrics`
      (a frozen dataclass, e.g. `tasks.segmentation.Decomposition`).
    config: the full config (`config.restarts` seeds).
    metric: the metrics key that ranks the results (higher is better).

  Returns:
    The best result, its metrics with `restarts`, `restart_chosen`, `selection_metric`, `chosen_seed` (as `run`).

  Raises:
    engine.Interrupted: a restart was stopped.
    engine.NumericalError: every restart stopped on NaN/Inf.
  """
  if config.restarts <= 1:
    return decompose(config)
  results, records, error = [], [], None
  for index in range(config.restarts):
    sub_config = restart_config(config, index)
    try:
      with hooks.part(f'restart {index + 1} of {config.restarts}'):
        result = decompose(sub_config)
    except engine.NumericalError as err:
      logging.warning('restart %d (seed %d) failed: %s', index, sub_config.seed, err)
      error, result = err, None
    results.append(result)
    records.append(_record(index, sub_config.seed, result.metrics if result else None, error, metric))
  if all(r is None for r in results):
    raise error
  best = pick_best([_score(r.metrics if r else None, metric) for r in results])
  return dataclasses.replace(
      results[best],
      metrics={
          **results[best].metrics,
          'restarts': records,
          'restart_chosen': best,
          'selection_metric': metric,
          'chosen_seed': config.seed + best,
      },
  )


def run(task: ModuleType, config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs `task.run` with `config.restarts` seeds and keeps the best (see module docstring).

  Args:
    task: a module of `ddip_jax.tasks` (with `run(config, workdir) -> metrics`).
    config: the full config.
    workdir: the output folder.

  Returns:
    The best restart's metrics, with `restarts` (one entry per restart:
    index, seed, status, score), `restart_chosen`, `selection_metric`, and the
    config and seed of the whole run.

  Raises:
    engine.Interrupted: a restart was stopped (finished ones are kept).
    engine.NumericalError: every restart stopped on NaN/Inf.
    Whatever `task.run` raises for bad input.
  """
  if config.restarts <= 1:
    return task.run(config, workdir)
  metric = selection_metric(task)
  records, results, error = [], [], None
  for index in range(config.restarts):
    sub_config = restart_config(config, index)
    sub_workdir = os.path.join(workdir, f'restart_{index}')
    metrics = runner.finished_metrics(sub_workdir, sub_config)
    if metrics is None:
      logging.info('restart %d of %d (seed %d) in %s', index + 1, config.restarts, sub_config.seed, sub_workdir)
      try:
        with hooks.part(f'restart {index + 1} of {config.restarts}'):
          metrics = task.run(sub_config, sub_workdir)
      except engine.NumericalError as err:
        logging.warning('restart %d (seed %d) failed: %s', index, sub_config.seed, err)
        error, metrics = err, None
    results.append(metrics)
    records.append(_record(index, sub_config.seed, metrics, error, metric))
  if all(m is None for m in results):
    raise error
  best = pick_best([_score(m, metric) for m in results])
  best_workdir = os.path.join(workdir, f'restart_{best}')
  files = {}
  for name in sorted(os.listdir(best_workdir)):
    source = os.path.join(best_workdir, name)
    if os.path.isfile(source) and name != runner.METRICS and not name.startswith('.'):
      with open(source, 'rb') as f:
        files[os.path.join(workdir, name)] = f.read()
  metrics = {
      **results[best],
      'restarts': records,
      'restart_chosen': best,
      'selection_metric': metric,
      'chosen_seed': config.seed + best,
      **runner.run_record(config),
  }
  files[os.path.join(workdir, runner.METRICS)] = writing.json_bytes(metrics)
  writing.write_files(files)  # As a set: a failed write replaces nothing.
  logging.info(
      'restart %d (seed %d) has the best %s: %.4g', best, config.seed + best, metric, _score(results[best], metric)
  )
  return metrics

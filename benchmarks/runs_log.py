"""The benchmarks' resumable log: one JSON record per finished run in `runs.jsonl`.

A benchmark appends each run as soon as it finishes and skips runs already in
the file, so a long evaluation can be interrupted, resumed or split over
processes; its tables are printed from the file.
"""

import ast
from collections.abc import Callable, Hashable, Iterable, Sequence
import json
import os
from typing import Any

import numpy as np


def load_runs(path: str) -> list[dict[str, Any]]:
  """The records in `path`, oldest first ([] if there is no such file)."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def append_run(path: str, record: dict[str, Any]) -> None:
  """Appends one record as a line of JSON."""
  with open(path, 'a') as f:
    f.write(json.dumps(record) + '\n')


def apply_overrides(config: Any, overrides: Sequence[str]) -> None:
  """Applies `--set`-style overrides ('section.field=value', value a Python literal or a string) to a config."""
  for override in overrides:
    key, value = override.split('=', 1)
    try:
      value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      pass  # A string, e.g. dehaze.transmission_prior=none.
    config.update_from_flattened_dict({key: value})


def run_missing(
    path: str,
    jobs: Iterable[tuple[Hashable, Callable[[], dict[str, Any]]]],
    key: Callable[[dict[str, Any]], Hashable],
    describe: Callable[[dict[str, Any]], str],
) -> None:
  """Runs the jobs not yet in `path`, appending each record as soon as it is done.

  Args:
    path: the runs.jsonl file.
    jobs: (the key the job's record will have, a function running it).
    key: the key of a record in the file.
    describe: a one-line report of a finished record, printed.
  """
  done = {key(r) for r in load_runs(path)}
  for job_key, run in jobs:
    if job_key in done:
      continue
    record = run()
    print(describe(record), flush=True)
    append_run(path, record)


def mean_table(
    runs: list[dict[str, Any]],
    *,
    group: Callable[[dict[str, Any]], str],
    title: str,
    columns: Sequence[tuple[str, Callable[[dict[str, Any]], float], str]],
) -> list[str]:
  """A Markdown table with one row per group of runs: its size and the mean of each column.

  Args:
    runs: the records.
    group: a record's group, shown in the first column (groups keep their first appearance order).
    title: the first column's title.
    columns: (title, value of a record, format spec) per column.

  Returns:
    The table's lines.
  """
  groups: dict[str, list[dict[str, Any]]] = {}
  for r in runs:
    groups.setdefault(group(r), []).append(r)
  lines = ['| ' + ' | '.join([title, 'runs'] + [c[0] for c in columns]) + ' |', '|' + '---|' * (len(columns) + 2)]
  for name, rs in groups.items():
    means = [format(float(np.mean([value(r) for r in rs])), spec) for _, value, spec in columns]
    lines.append('| ' + ' | '.join([name, str(len(rs))] + means) + ' |')
  return lines

"""The benchmarks' resumable log: one JSON record per finished run in `runs.jsonl`.

A benchmark appends each run as soon as it finishes and skips runs already in
the file, so a long evaluation can be interrupted, resumed or split over
processes; its tables are printed from the file.
"""

import json
import os
from typing import Any


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

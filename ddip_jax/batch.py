"""Many images: one run per image, spread over local devices and over processes.

`--config.inputs` lists the images (comma-separated paths or glob patterns, or
'@file' with one path a line; see `input_paths`).
Each image runs as its own task run (`restarts.run`, so with `config.restarts`
seeds) with `config.image` set to it, in `<workdir>/<name>_<hash>/` (`output_name`:
the file name and a digest of the absolute path, so the folder of an image
does not depend on the list); at the end
`<workdir>/results.csv` has one row per image: its status and the scalar
metrics of its run. An image that fails (unreadable, too small, NaN/Inf, ...)
is reported on one line and skipped; the others go on.

Devices: images are independent, so each local device runs its own images
(one thread per device, each taking the next image from a shared queue, its
computations placed with `jax.default_device`). Processes (hosts): with
`jax.distributed` initialised, process p of P takes inputs[p::P]; each sends its
rows to process 0 through the distributed runtime's key-value store, and
process 0 writes the complete results.csv.

Each image runs through `runner.run`: its folder is owned (locked) by one run
at a time, so several processes can share a batch; an image whose folder
already holds a finished run of the same config and inputs is not run again,
so rerunning an interrupted batch resumes it. results.csv is written also when
the batch is interrupted or fails, for the images finished so far.
"""

import collections
from collections.abc import Sequence
import contextlib
import csv
import dataclasses
import glob
import hashlib
import io
import json
import math
import os
import queue
import sys
import threading
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections

from ddip_jax import api
from ddip_jax import config_check
from ddip_jax import engine
from ddip_jax import image_io
from ddip_jax import resume
from ddip_jax import runner
from ddip_jax import writing

RESULTS = 'results.csv'
MAX_LIST_BYTES = 64 << 20  # An `@list` file of paths larger than this is refused.
_FIXED_COLUMNS = ('image', 'output', 'status', 'process', 'device', 'seconds')
_KV_TIMEOUT_MS = 7 * 24 * 3600 * 1000  # Process 0 waits this long for another process's rows.
# Errors that concern one image: reported, and the batch goes on.
IMAGE_ERRORS = runner.RUN_ERRORS
_STATUS_WORDS = {'error': 'failed', 'busy': 'running in another process'}


def is_batch_output(path: str, workdir: str) -> bool:
  """Whether `path` is an output of the batch in `workdir`: its results.csv, or a file in an image's folder.

  An image's folder is a subfolder of `workdir` holding a run (a metrics.json,
  a checkpoint or a lock), at any depth below it: restarts, frames.
  """
  folder, path = os.path.abspath(workdir), os.path.abspath(path)
  if path == os.path.join(folder, RESULTS):
    return True
  parent = os.path.dirname(path)
  if os.path.commonpath([parent, folder]) != folder:
    return False
  while parent != folder:
    if (
        os.path.exists(os.path.join(parent, runner.METRICS))
        or os.path.exists(os.path.join(parent, runner.LOCK))
        or runner.checkpoint_files(parent)
    ):
      return True
    parent = os.path.dirname(parent)
  return False


def input_paths(spec: str, workdir: str | None = None) -> list[str]:
  """The images of `--config.inputs`, in order.

  `spec` is comma-separated paths or glob patterns; a path of an existing file
  is taken literally (commas and glob characters included: 'shot[1].png',
  'a,b.png'). '@list.txt' reads one path per line from that file instead
  (each taken literally; blank lines and lines starting with '#' skipped;
  names need not be UTF-8). A glob's matches are sorted; a path listed twice
  runs once. A plain path is kept even if it does not exist (that image then
  fails with its own message). With the batch's `workdir`, the glob matches
  that are its outputs (`is_batch_output`) are left out: a batch never feeds
  its results back in.

  Raises:
    image_io.InputError: a pattern matches nothing, the list file cannot be
      read, no image is listed, or a path listed is an output of the batch.
  """
  if spec.startswith('@'):
    paths = _list_file(spec[1:])
  else:
    paths = []
    pieces = spec.split(',')
    while pieces:
      # The longest run of pieces that joined by commas names an existing file, else one piece.
      size = next((n for n in range(len(pieces), 1, -1) if os.path.isfile(','.join(pieces[:n]).strip())), 1)
      item, pieces = ','.join(pieces[:size]).strip(), pieces[size:]
      if item and not os.path.isfile(item) and glob.has_magic(item):
        matches = sorted(p for p in glob.glob(item) if not os.path.isdir(p))
        ours = [p for p in matches if workdir is not None and is_batch_output(p, workdir)]
        if ours:
          logging.info('config.inputs: %d files matching %r are outputs of this batch: left out', len(ours), item)
        if len(ours) == len(matches):
          raise image_io.InputError(
              f'config.inputs: no file matches {item!r}'
              + (f' but the outputs in --workdir {workdir!r}' if ours else '')
          )
        paths += [p for p in matches if p not in ours]
      elif item:
        paths.append(item)
  paths = list(dict.fromkeys(paths))
  if not paths:
    raise image_io.InputError(f'config.inputs = {spec!r} lists no image')
  for path in paths:
    if workdir is not None and is_batch_output(path, workdir):
      raise image_io.InputError(
          f'config.inputs: {path!r} is an output of this batch (in --workdir {workdir!r}); '
          'list the images, not the results'
      )
  return paths


def _list_file(path: str) -> list[str]:
  """The paths listed in a file, one a line (decoded like file names, so any bytes are kept).

  Only a regular file of at most `MAX_LIST_BYTES` is read: a device (/dev/zero)
  or a FIFO would never end.
  """
  try:
    kind = image_io.file_kind(os.stat(path).st_mode)
    if kind:  # Before opening: a FIFO would block until a writer comes.
      raise image_io.InputError(f'config.inputs: cannot read the list {path!r}: {kind}, not a list of paths')
    with open(path, 'rb') as f:
      info = os.fstat(f.fileno())
      if info.st_size > MAX_LIST_BYTES:
        raise image_io.InputError(
            f'config.inputs: the list {path!r} is {info.st_size} bytes: more than '
            f'{MAX_LIST_BYTES}, too large for a list of paths'
        )
      lines = f.read(MAX_LIST_BYTES + 1).splitlines()
  except OSError as err:
    raise image_io.InputError(f'config.inputs: cannot read the list {path!r}: {err.strerror or err}') from err
  names = (os.fsdecode(line.strip()) for line in lines)
  return [n for n in names if n and not n.startswith('#')]


def output_name(path: str) -> str:
  """An image's folder name: its file name without extension and 8 hex digits of its absolute path's SHA-256.

  The same image always gets the same folder, wherever it is in the list and
  whatever else the list holds; two images of the same name get two.
  """
  stem = os.path.splitext(os.path.basename(path))[0] or 'image'
  return f'{stem}_{hashlib.sha256(os.fsencode(os.path.abspath(path))).hexdigest()[:8]}'


def image_config(config: ml_collections.ConfigDict, path: str) -> ml_collections.ConfigDict:
  """The config of one image's run: `image` set to it, no `inputs`."""
  single = ml_collections.ConfigDict(config.to_dict())
  single.image = path
  single.inputs = None
  return single


@dataclasses.dataclass
class Row:
  """One image's line of results.csv."""

  image: str
  output: str
  status: str = 'not run'
  process: int = 0
  device: str = ''
  seconds: float = 0.0
  metrics: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def failed(self) -> bool:
    return self.status.startswith('error')

  def to_dict(self) -> dict[str, Any]:
    return {**{k: getattr(self, k) for k in _FIXED_COLUMNS}, **self.metrics}


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
  """The top-level numbers of a run's metrics (the columns of results.csv)."""
  return {
      k: v
      for k, v in metrics.items()
      if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and k not in _FIXED_COLUMNS
  }


def run_image(config: ml_collections.ConfigDict, path: str, workdir: str, row: Row, *, overwrite: bool = False) -> Row:
  """Runs one image into `workdir` (its own folder, locked while it runs), filling `row`.

  Errors of the image are recorded, not raised; an image whose folder another
  process owns is left to it (status 'busy: ...').
  """
  single = image_config(config, path)
  row.device = str(next(iter(jnp.zeros(()).devices())))  # Where this thread's computations go.
  start = time.perf_counter()
  try:
    metrics, done = api.run_config(single, workdir, overwrite=overwrite)
    if done:
      logging.info('%s: already done in %s', path, workdir)
    row.status, row.metrics = 'ok', _scalars(metrics)
  except runner.WorkdirBusy as err:
    row.status = f'busy: {err}'
    logging.info('%s: left to the run that owns its folder: %s', path, err)
  except IMAGE_ERRORS as err:
    row.status = f'error: {err}'
    print(f'error: {path}: {err}', file=sys.stderr, flush=True)
    if os.path.isdir(workdir) and not os.listdir(workdir):
      os.rmdir(workdir)  # No empty folder for an image that never started.
  except engine.Stopped as err:  # Interrupted (NumericalError is an image error above).
    row.status = f'stopped: {err}'
    raise
  finally:
    row.seconds = round(time.perf_counter() - start, 3)
  return row


def _run_on_devices(
    config: ml_collections.ConfigDict, rows: list[Row], workdir: str, devices: Sequence[jax.Device], overwrite: bool
) -> None:
  """Runs every row's image, each device taking the next one from a shared queue."""
  if len(devices) <= 1 or len(rows) <= 1:
    for row in rows:
      run_image(config, row.image, os.path.join(workdir, row.output), row, overwrite=overwrite)
    return
  todo = queue.Queue()
  for row in rows:
    todo.put(row)
  errors = []

  def work(device):
    with jax.default_device(device):
      while not errors:
        try:
          row = todo.get_nowait()
        except queue.Empty:
          return
        try:
          run_image(config, row.image, os.path.join(workdir, row.output), row, overwrite=overwrite)
        except BaseException as err:  # pylint: disable=broad-except  # Re-raised by the main thread.
          errors.append(err)

  # Daemon threads: a second Ctrl-C quits at once instead of waiting for them.
  threads = [threading.Thread(target=work, args=(d,), daemon=True, name=f'ddip-{d}') for d in devices]
  with resume.stop_on_signals():  # Shared with the threads' runs: Ctrl-C stops them all cleanly.
    for t in threads:
      t.start()
    for t in threads:
      while t.is_alive():
        t.join(timeout=0.5)
    if errors:  # Inside: the stop the signal asked for is this error, not a signal to deliver again.
      stopped = [e for e in errors if isinstance(e, engine.Stopped)]
      if len(stopped) > 1:  # Several images were in progress: name every folder to resume.
        stopped[0].workdir = ', '.join(f'{e.workdir}/' for e in stopped).rstrip('/')
      raise errors[0]


def _csv_text(rows: Sequence[dict[str, Any]]) -> str:
  columns = list(_FIXED_COLUMNS)
  for row in rows:
    columns += [k for k in row if k not in columns]
  out = io.StringIO()
  writer = csv.DictWriter(out, columns, restval='', lineterminator='\n')
  writer.writeheader()
  writer.writerows(rows)
  return out.getvalue()


def _gather_rows(rows: list[Row], process_index: int, process_count: int) -> list[dict[str, Any]] | None:
  """All processes' rows on process 0 (None elsewhere), through the distributed key-value store."""
  mine = [r.to_dict() for r in rows]
  if process_count == 1:
    return mine
  from jax._src import distributed  # pylint: disable=g-import-not-at-top  # The runtime's key-value store.

  client = distributed.global_state.client
  if process_index != 0:
    client.key_value_set(f'ddip_jax/batch_rows/{process_index}', json.dumps(mine))
    return None
  gathered = {0: mine}
  for p in range(1, process_count):
    gathered[p] = json.loads(client.blocking_key_value_get(f'ddip_jax/batch_rows/{p}', _KV_TIMEOUT_MS))
  return [row for p in range(process_count) for row in gathered[p]]


def initialize_distributed(
    coordinator_address: str | None,
    num_processes: int | None,
    process_id: int | None,
    *,
    force: bool = False,
    bind_address: str | None = None,
    timeout_s: int = 300,
) -> None:
  """Starts `jax.distributed` when a multi-process run is asked for.

  Each argument falls back to an environment variable (JAX_COORDINATOR_ADDRESS,
  JAX_NUM_PROCESSES, JAX_PROCESS_ID); with none of them set nothing happens,
  unless `force`, where `jax.distributed.initialize` detects a cluster manager
  (SLURM, Open MPI, ...). Process 0's coordinator listens on `bind_address`,
  by default the coordinator address itself (not every interface). It says on
  stderr that it waits for the other processes: JAX waits up to `timeout_s`,
  then aborts the process.
  """
  coordinator_address = coordinator_address or os.environ.get('JAX_COORDINATOR_ADDRESS') or None
  if num_processes is None and os.environ.get('JAX_NUM_PROCESSES'):
    num_processes = int(os.environ['JAX_NUM_PROCESSES'])
  if process_id is None and os.environ.get('JAX_PROCESS_ID'):
    process_id = int(os.environ['JAX_PROCESS_ID'])
  if not force and coordinator_address is None and num_processes is None and process_id is None:
    return
  bind_address = bind_address or coordinator_address
  if coordinator_address:
    print(
        f'process {process_id} of {num_processes}: waiting up to {timeout_s} s for every process to reach the '
        f'coordinator {coordinator_address}' + (f' (listening on {bind_address})' if process_id == 0 else ''),
        file=sys.stderr,
        flush=True,
    )
  try:
    jax.distributed.initialize(
        coordinator_address,
        num_processes,
        process_id,
        initialization_timeout=timeout_s,
        coordinator_bind_address=bind_address,
    )
  except (ValueError, TypeError, RuntimeError) as err:  # Bad or missing settings, coordinator unreachable.
    raise config_check.ConfigError(f'cannot start the multi-process run: {err}') from err
  logging.info('process %d of %d', jax.process_index(), jax.process_count())


def _results(
    config: ml_collections.ConfigDict,
    workdir: str,
    paths: Sequence[str],
    names: Sequence[str],
    known: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
  """One row per image, in input order: the rows run here (or gathered), and for the others (not run
  here, or left to another process) what their folders hold now."""
  by_image = {r['image']: r for r in known}
  rows = []
  for path, name in zip(paths, names):
    row = by_image.get(path)
    if row is None or row['status'].startswith('busy'):
      metrics = runner.finished_metrics(os.path.join(workdir, name), image_config(config, path))
      if metrics is not None:
        row = Row(image=path, output=name, status='ok', metrics=_scalars(metrics)).to_dict()
    rows.append(row or Row(image=path, output=name).to_dict())
  return rows


def _write_results(workdir: str, rows: Sequence[dict[str, Any]]) -> None:
  # UTF-8 text whatever the names' bytes: a byte of a name that is not UTF-8 (which os.fsdecode keeps
  # as a surrogate) is written as \xNN.
  text = _csv_text(rows).encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')
  writing.write_bytes(os.path.join(workdir, RESULTS), text.encode('utf-8'))


def run(config: ml_collections.ConfigDict, workdir: str, *, overwrite: bool = False) -> list[Row]:
  """Runs every image of `config.inputs` (this process's share) and writes results.csv.

  Several processes may run the same batch into the same workdir: each image's
  folder is owned by one run at a time (`runner.run`), so a process leaves an
  image another one is running to it and takes the next; results.csv lists
  what every folder holds when it is written.

  Args:
    config: the full config; `inputs` set.
    workdir: the batch folder: one subfolder per image, and results.csv.
    overwrite: redo images already done (`runner.run`).

  Returns:
    This process's rows, in input order.

  Raises:
    image_io.InputError: `inputs` names no image.
    engine.Interrupted: a run was stopped (Ctrl-C, SIGTERM); finished images
      are kept and written to results.csv, the interrupted ones resume when
      the command runs again (`err.workdir` names their folders).
  """
  paths = input_paths(config.inputs, workdir)
  names = [output_name(p) for p in paths]
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as err:
    raise image_io.InputError(f'cannot use --workdir {workdir!r}: {err.strerror or err}') from err
  process_index, process_count = jax.process_index(), jax.process_count()
  rows = [
      Row(image=p, output=n, process=process_index) for p, n in list(zip(paths, names))[process_index::process_count]
  ]
  devices = jax.local_devices()
  logging.info(
      'process %d of %d: %d of %d images on %d device(s)',
      process_index,
      process_count,
      len(rows),
      len(paths),
      len(devices),
  )
  try:
    _run_on_devices(config, rows, workdir, devices, overwrite)
  except BaseException:
    if process_index == 0:  # Stopped or failed: results.csv still lists what is finished.
      with contextlib.suppress(Exception):
        _write_results(workdir, _results(config, workdir, paths, names, [r.to_dict() for r in rows]))
    raise
  gathered = _gather_rows(rows, process_index, process_count)
  if gathered is not None:
    results = _results(config, workdir, paths, names, gathered)
    _write_results(workdir, results)
    counts = collections.Counter(r['status'].split(':')[0] for r in results)
    others = ''.join(
        f'; {n} {_STATUS_WORDS.get(status, status)}' for status, n in sorted(counts.items()) if status != 'ok'
    )
    print(
        f'done: {counts["ok"]} of {len(results)} images, results in {os.path.join(workdir, RESULTS)}{others}',
        flush=True,
    )
  return rows

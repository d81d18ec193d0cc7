r"""Milliseconds per optimisation step: our engine against the PyTorch reference.

  PYTHONPATH=. python benchmarks/step_time.py [--tasks=segmentation,transparency]
      [--sizes=64,128,256,512] [--repeats=5] [--repeat_seconds=1.5] [--zebra]

For each architecture and image size, two worker processes are started, one
running our engine's compiled step (`ddip_jax/engine.py`, built from the task's
own `build_problem` and run with the loop strategy the engine picks for the
backend) and one running `benchmarks/torch_reference.py`'s step of the same
problem with `torch.set_num_threads` = the cores this process may use (which
is what XLA:CPU uses). After warm-up (compilation, first steps), the parent
alternates timed repeats between the two workers, so that a change of load on
a shared machine hits both alike, and reports the median ms/step of each, the
ratio (PyTorch / ours: > 1 means ours is faster), the CPU time per step (all
threads; much less sensitive to other processes than wall time) and each
worker's peak RSS (the whole process: framework, compilation and buffers).

PyTorch's OpenMP threads degrade badly when the cores are shared with other
processes (on a loaded 2-core machine, 2 threads measured 5-100x slower than
1), so a second PyTorch worker runs with 1 thread (`--torch_threads`) and the
ratio is taken against the faster of the two: the comparison never rests on a
PyTorch configuration that load has crippled.
Ratios measured in one run are what to compare; absolute times depend on the
machine's load.

'segmentation' is step 2 of the segmentation task (fg, bg and mask generators,
scales [8, 16, 32], kernel 3); 'transparency' the two-mixtures task (R, T and
two alpha generators, scales [8..128], skip [0, 0, 0, 4, 4], kernel 5). The
5-scale kernel-5 network cannot run in PyTorch below 96x96 (its deepest map is
2x2 at 64x64, smaller than the reflection padding), so that row has no ratio.
512x512 is measured for the segmentation generators only (`--large_tasks`).

`--zebra` also times the default zebra run end to end (`main.py
--config=configs/zebra.py`, a few minutes) and reports its wall time and peak RSS.
"""

import os
import resource
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

from ddip_jax import compile_cache

_TASKS = flags.DEFINE_list('tasks', ['segmentation', 'transparency'], 'Architectures to time.')
_SIZES = flags.DEFINE_list('sizes', ['64', '128', '256', '512'], 'Square image sides.')
_LARGE = flags.DEFINE_list('large_tasks', ['segmentation'], 'Tasks also timed at sides above 256.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed repeats per worker (median reported).')
_REPEAT_SECONDS = flags.DEFINE_float('repeat_seconds', 1.5, 'Approximate duration of one timed repeat.')
_ZEBRA = flags.DEFINE_bool('zebra', False, 'Also time the default zebra run end to end.')
_WORKER = flags.DEFINE_enum('worker', None, ['jax', 'torch'], 'Internal: run as a timing worker.')
_TASK = flags.DEFINE_string('task', 'segmentation', "Internal: the worker's task.")
_SIZE = flags.DEFINE_integer('size', 64, "Internal: the worker's image side.")
_TORCH_THREADS = flags.DEFINE_list('torch_threads', None, 'PyTorch thread counts to time (default: all cores, and 1).')
_THREADS = flags.DEFINE_integer('threads', 0, "Internal: the torch worker's threads (0: all cores).")
_CPU_CONVOLUTIONS = flags.DEFINE_enum(
    'cpu_convolutions', 'eigen', ['eigen', 'xla_default'], "Internal: the jax worker's config.loop.cpu_convolutions."
)
_XLA_DEFAULT_TOO = flags.DEFINE_bool(
    'xla_default_too', False, 'Also time our step with loop.cpu_convolutions=xla_default (XLA:CPU).'
)

TORCH_MIN_SIDE = {'segmentation': 16, 'transparency': 96}


def threads() -> int:
  return len(os.sched_getaffinity(0))


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
  """CPU time of this process (all threads): far less sensitive to other processes' load than wall time."""
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def jax_stepper(task: str, size: int, cpu_convolutions: str = 'eigen'):
  """(run(n) -> None running n engine steps, steps per compiled call)."""
  import jax  # pylint: disable=g-import-not-at-top
  from configs import transparency as transparency_config  # pylint: disable=g-import-not-at-top
  from configs import zebra  # pylint: disable=g-import-not-at-top
  from ddip_jax import engine  # pylint: disable=g-import-not-at-top
  from ddip_jax import resume  # pylint: disable=g-import-not-at-top
  from ddip_jax.tasks import segmentation  # pylint: disable=g-import-not-at-top
  from ddip_jax.tasks import transparency  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  if task == 'segmentation':
    config = zebra.get_config()
    image = rng.random((size, size, 3), np.float32)
    fg, bg = np.zeros((size, size), np.float32), np.zeros((size, size), np.float32)
    fg[size // 3 : 2 * size // 3, size // 3 : 2 * size // 3] = 1
    bg[: size // 8] = 1
    problem = segmentation.build_problem(config, image, fg, bg, jax.random.key(0))
  else:
    config = transparency_config.get_config()
    problem = transparency.build_problem(config, rng.random((2, size, size, 3), np.float32), jax.random.key(0))
  stage = problem.stages[-1]  # The main stage.
  config.loop.cpu_convolutions = cpu_convolutions
  options = resume.loop_options(config)
  strategy, per_call = engine.resolve_strategy(options)
  state, step_fn = engine.initial_state(
      problem, stage, key=jax.random.key(1), num_perturbations=options.num_perturbations
  )
  chunk = compile_cache.make_chunk(step_fn, strategy, per_call, compile_cache.compiler_options(options))
  key = jax.random.key(2)
  holder = [state]

  def run(n: int) -> None:
    state = holder[0]
    for _ in range(max(1, n // per_call)):
      state = chunk(state, key)
    holder[0] = jax.block_until_ready(state)

  return run, per_call


def torch_stepper(task: str, size: int):
  import torch  # pylint: disable=g-import-not-at-top
  from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(_THREADS.value or threads())
  problem = torch_reference.StepProblem(task, size)

  def run(n: int) -> None:
    for _ in range(n):
      value = problem.step()
    float(value)  # Waits for the last step (a no-op on CPU, where torch is synchronous).

  return run, 1


def worker(kind: str, task: str, size: int) -> None:
  """Answers 'run N' with the wall and CPU seconds N steps took, 'quit' with the peak RSS in MB."""
  start = time.perf_counter()
  run, per_call = jax_stepper(task, size, _CPU_CONVOLUTIONS.value) if kind == 'jax' else torch_stepper(task, size)
  run(per_call)
  run(per_call)  # Warm-up: compilation and the first steps.
  print(f'ready {time.perf_counter() - start:.2f} {per_call}', flush=True)
  for line in sys.stdin:
    command = line.split()
    if command[0] == 'run':
      start, cpu = time.perf_counter(), cpu_seconds()
      run(int(command[1]))
      print(f'{time.perf_counter() - start:.6f} {cpu_seconds() - cpu:.6f}', flush=True)
    else:
      print(f'{peak_rss_mb():.0f}', flush=True)
      return


class Worker:
  """A worker subprocess (see `worker`)."""

  def __init__(
      self,
      kind: str,
      task: str,
      size: int,
      num_threads: int = 0,
      env: dict[str, str] | None = None,
      cpu_convolutions: str = 'eigen',
  ):
    self.kind = kind
    self.proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            f'--worker={kind}',
            f'--task={task}',
            f'--size={size}',
            f'--threads={num_threads}',
            f'--cpu_convolutions={cpu_convolutions}',
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )

  def ready(self) -> tuple[float, int]:
    line = self.proc.stdout.readline().split()
    if not line or line[0] != 'ready':
      self.proc.wait()
      raise RuntimeError(f'{self.kind} worker failed (exit {self.proc.returncode})')
    return float(line[1]), int(line[2])

  def ask(self, command: str) -> list[float]:
    self.proc.stdin.write(command + '\n')
    self.proc.stdin.flush()
    return [float(x) for x in self.proc.stdout.readline().split()]

  def close(self) -> float:
    (rss,) = self.ask('quit')
    self.proc.wait()
    return rss


def torch_thread_counts() -> list[int]:
  if _TORCH_THREADS.value:
    return [int(n) for n in _TORCH_THREADS.value]
  return sorted({threads(), 1}, reverse=True)


def measure(task: str, size: int) -> dict[str, float]:
  """One row: per worker ('jax', 'torch<threads>') median ms/step, CPU ms/step, setup s, peak RSS MB."""
  workers = {'jax': Worker('jax', task, size)}
  if _XLA_DEFAULT_TOO.value:
    workers['jax_xla_default'] = Worker('jax', task, size, cpu_convolutions='xla_default')
  if size >= TORCH_MIN_SIDE[task]:
    workers.update({f'torch{n}': Worker('torch', task, size, num_threads=n) for n in torch_thread_counts()})
  kinds = list(workers)
  row = {}
  try:
    setup = {k: w.ready() for k, w in workers.items()}
    steps = {}
    for k, w in workers.items():  # Calibration: steps per repeat of about repeat_seconds.
      per_call = setup[k][1]
      seconds = w.ask(f'run {2 * per_call}')[0] / (2 * per_call)
      n = max(per_call, int(_REPEAT_SECONDS.value / max(seconds, 1e-6)))
      steps[k] = n // per_call * per_call
    wall, cpu = {k: [] for k in workers}, {k: [] for k in workers}
    for r in range(_REPEATS.value):
      for k in (kinds if r % 2 == 0 else kinds[::-1]):
        wall_s, cpu_s = workers[k].ask(f'run {steps[k]}')
        wall[k].append(wall_s / steps[k])
        cpu[k].append(cpu_s / steps[k])
    for k, w in workers.items():
      row[f'{k}_ms'] = 1000 * float(np.median(wall[k]))
      row[f'{k}_cpu_ms'] = 1000 * float(np.median(cpu[k]))
      row[f'{k}_setup_s'] = setup[k][0]
      row[f'{k}_rss_mb'] = w.close()
    torch_kinds = [k for k in kinds if k.startswith('torch')]
    if torch_kinds:
      faster = min(torch_kinds, key=lambda k: row[f'{k}_ms'])
      row.update(
          torch_ms=row[f'{faster}_ms'], torch_cpu_ms=row[f'{faster}_cpu_ms'], torch_rss_mb=row[f'{faster}_rss_mb']
      )
  finally:
    for w in workers.values():
      if w.proc.poll() is None:
        w.proc.kill()
  return row


def zebra_run() -> tuple[float, float]:
  """(wall seconds, peak RSS in MB) of `main.py --config=configs/zebra.py` in a fresh workdir."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with tempfile.TemporaryDirectory() as workdir:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            os.path.join(root, 'main.py'),
            '--config=configs/zebra.py',
            f'--workdir={workdir}',
            '--config.progress=False',
        ],
        cwd=root,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
  if status:
    raise RuntimeError(f'the zebra run failed (status {status})')
  return seconds, usage.ru_maxrss / 1024


def main(argv):
  del argv
  if _WORKER.value:
    worker(_WORKER.value, _TASK.value, _SIZE.value)
    return
  import jax  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top

  print(
      f'backend {jax.default_backend()}, jax {jax.__version__}, torch {torch.__version__}, '
      f'{threads()} cores, median of {_REPEATS.value} interleaved repeats'
  )
  counts = torch_thread_counts()
  print(
      '| generators | size | ours ms/step | '
      + ' | '.join(f'PyTorch ms/step, {n} thread{"s" * (n > 1)}' for n in counts)
      + ' | faster PyTorch / ours | CPU ms/step: ours, PyTorch (ratio) | peak RSS MB: ours, PyTorch '
      '| ours warm-up s |' + ' ours, XLA default convolutions |' * _XLA_DEFAULT_TOO.value
  )
  if _XLA_DEFAULT_TOO.value:
    print("(last column: ours with loop.cpu_convolutions=xla_default, ms/step and its time / the default's)")
  print('|---' * (7 + len(counts) + _XLA_DEFAULT_TOO.value) + '|')
  for task in _TASKS.value:
    for size in map(int, _SIZES.value):
      if size > 256 and task not in _LARGE.value:
        continue
      row = measure(task, size)
      torch_cells = [f'{row[f"torch{n}_ms"]:.1f}' if f'torch{n}_ms' in row else 'n/a' for n in counts]
      if 'torch_ms' in row:
        ratio = f'**{row["torch_ms"] / row["jax_ms"]:.2f}x**'
        cpu = f'{row["jax_cpu_ms"]:.0f}, {row["torch_cpu_ms"]:.0f} ({row["torch_cpu_ms"] / row["jax_cpu_ms"]:.2f}x)'
        rss = f'{row["jax_rss_mb"]:.0f}, {row["torch_rss_mb"]:.0f}'
      else:
        ratio, cpu, rss = '-', f'{row["jax_cpu_ms"]:.0f}, n/a', f'{row["jax_rss_mb"]:.0f}, n/a'
      cells = [
          task,
          f'{size}x{size}',
          f'{row["jax_ms"]:.1f}',
          *torch_cells,
          ratio,
          cpu,
          rss,
          f'{row["jax_setup_s"]:.0f}',
      ]
      if _XLA_DEFAULT_TOO.value:
        cells.append(f'{row["jax_xla_default_ms"]:.1f} ({row["jax_xla_default_ms"] / row["jax_ms"]:.2f}x)')
      print('| ' + ' | '.join(cells) + ' |', flush=True)
  if _ZEBRA.value:
    seconds, rss = zebra_run()
    print(f'zebra end to end (configs/zebra.py): {seconds:.1f} s wall, peak RSS {rss:.0f} MB')


if __name__ == '__main__':
  app.run(main)

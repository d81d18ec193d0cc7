r"""Time to result: the wall time of whole `main.py` runs, cold and warm, with their quality.

  PYTHONPATH=. python benchmarks/time_to_result.py [--items=zebra,photo128,photo512]
      [--baseline=781e8db] [--fractions=0.25,0.5,1] [--cold_only] [--workdir=results/time_to_result]

What a user waits for is the whole command: Python and JAX start-up, loading,
hints, compiling, the steps, refinement and writing. Each run here is the
README's command in a subprocess, timed from outside:

* cold: a fresh compilation cache (`XDG_CACHE_HOME` pointed at an empty
  folder), as on a user's first run;
* warm: the same command again with that cache (another workdir).

The start-up overhead of a cold run is its wall time less its steps at the warm
run's time per step (the stages' seconds over their steps), i.e. everything
that is not an optimisation step: imports, compiling, hints, outputs.

Items (`--items`):
  zebra     `configs/zebra.py` (256x192, automatic hints), IoU against data/zebra_mask.png;
  photo128  `configs/default.py` on a 128x96 photo of data/segbench (automatic hints), IoU;
  photo512  `configs/default.py` on the zebra enlarged to 512x384 (a 512-px photo), IoU;
  photo12mp the same on the zebra enlarged to 4000x3000 (a phone camera's photo), IoU;
  dehaze, transparency, watermark, watermark_many, video: the other demos
            (`configs/<item>.py`), with their README metric: dehazed PSNR, mean
            layer PSNR, PSNR in the box, mean IoU over the frames.

`--baseline=REV` also runs the same commands with the code of git revision REV
(exported to a temporary folder with `git archive`), in the same session, so
the two versions are compared on the same machine under the same load.
`--fractions` adds warm runs of the current code at those fractions of each
item's schedule (hint and main steps scaled), for the quality-versus-time plot
`<workdir>/quality_vs_time.png` (quality of the kept result against the wall
time of the run stopped there). Records are appended to `<workdir>/runs.jsonl`
(a rerun skips those done; delete the file after changing the code).
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
from PIL import Image
from PIL import ImageDraw

from benchmarks import runs_log

_ITEMS = flags.DEFINE_list('items', ['zebra', 'photo128', 'photo512'], 'What to run (module docstring).')
_BASELINE = flags.DEFINE_string('baseline', '', 'A git revision to compare with (empty: none).')
_FRACTIONS = flags.DEFINE_list('fractions', [], 'Schedule fractions for the quality-versus-time curve.')
_WORKDIR = flags.DEFINE_string('workdir', 'results/time_to_result', 'Where runs and records go.')
_COLD_ONLY = flags.DEFINE_bool('cold_only', False, 'Skip the warm runs (for the long demos; no ms/step then).')
_PHOTO128 = flags.DEFINE_string('photo128', 'data/segbench/crow_sky', 'The 128x96 case of the photo128 item.')

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The other demos: a config each, their quality read from metrics.json.
_DEMOS = ('dehaze', 'transparency', 'watermark', 'watermark_many', 'video')


# The quality of a run: the first of these its metrics.json has (IoU, mean over frames for video;
# transparency's mean layer PSNR; watermark's PSNR in the box; dehazing's PSNR).
_QUALITY_KEYS = ('iou', 'mean_layer_psnr', 'psnr_box', 'psnr')


def _enlarged_zebra(workdir: str, size: tuple[int, int]) -> tuple[str, str]:
  """The zebra and its mask enlarged to `size` (width, height): a photo of that size with a known answer."""
  image = os.path.join(workdir, f'zebra{size[0]}.png')
  mask = os.path.join(workdir, f'zebra{size[0]}_mask.png')
  if not os.path.exists(mask):
    with Image.open(os.path.join(REPO, 'data/zebra.png')) as im:
      im.convert('RGB').resize(size, Image.BICUBIC).save(image)
    with Image.open(os.path.join(REPO, 'data/zebra_mask.png')) as im:
      im.convert('L').resize(size, Image.NEAREST).save(mask)
  return image, mask


# The enlarged zebras: a 512-px photo, and a phone camera's 12 megapixels.
_ENLARGED = {'photo512': (512, 384), 'photo12mp': (4000, 3000)}


def item_flags(item: str, workdir: str) -> list[str]:
  """The README command's flags for an item."""
  if item == 'zebra':
    return ['--config=configs/zebra.py']
  if item == 'photo128':
    case = os.path.join(REPO, _PHOTO128.value)
    return ['--config=configs/default.py', f'--config.image={case}/image.png', f'--config.gt_mask={case}/mask.png']
  if item in _ENLARGED:
    image, mask = _enlarged_zebra(workdir, _ENLARGED[item])
    return ['--config=configs/default.py', f'--config.image={image}', f'--config.gt_mask={mask}']
  if item in _DEMOS:
    return [f'--config=configs/{item}.py']
  raise app.UsageError(f'unknown item {item!r}')


def quality(metrics: dict) -> tuple[str | None, float | None]:
  """(name, value) of a run's quality metric, or (None, None) without a ground truth."""
  for key in _QUALITY_KEYS:
    if metrics.get(key) is not None:
      return key, float(metrics[key])
  return None, None


def _schedule_flags(code: str, item: str, fraction: float) -> list[str]:
  """Flags running `fraction` of the item's default schedule (read from the code's own config)."""
  if fraction == 1.0:
    return []
  if item in _DEMOS:
    raise app.UsageError(f'--fractions is for the segmentation items, not {item!r}')
  script = (
      'import sys; sys.path.insert(0, "."); from configs import default; c = default.get_config(); '
      'print(c.segmentation.hint_steps, c.num_steps)'
  )
  hint, main = map(
      int,
      subprocess.run(
          [sys.executable, '-c', script], cwd=code, check=True, capture_output=True, text=True
      ).stdout.split(),
  )
  del item
  return [
      f'--config.segmentation.hint_steps={max(1, round(hint * fraction))}',
      f'--config.num_steps={max(1, round(main * fraction))}',
  ]


def run_once(code: str, flags_: list[str], cache: str, workdir: str) -> dict:
  """One `main.py` run of the code in `code`; its wall time and metrics."""
  shutil.rmtree(workdir, ignore_errors=True)
  env = {**os.environ, 'XDG_CACHE_HOME': cache, 'PYTHONPATH': code}
  start = time.perf_counter()
  proc = subprocess.run(
      [sys.executable, 'main.py', *flags_, f'--workdir={workdir}'], cwd=code, env=env, capture_output=True, text=True
  )
  wall = time.perf_counter() - start
  if proc.returncode != 0:
    raise RuntimeError(f'{flags_} failed:\n{proc.stderr[-3000:]}')
  with open(os.path.join(workdir, 'metrics.json')) as f:
    metrics = json.load(f)
  stages = metrics.get('stages', {})
  name, value = quality(metrics)
  return {
      'wall': round(wall, 2),
      'iou': metrics.get('iou'),
      'quality': value,
      'quality_metric': name,
      'steps': sum(s['steps'] for s in stages.values()),
      'stage_seconds': round(sum(s['seconds'] for s in stages.values()), 2),
  }


def _export(rev: str, into: str) -> str:
  """The tree of git revision `rev`, exported into a folder (data and configs included)."""
  os.makedirs(into, exist_ok=True)
  archive = subprocess.run(['git', 'archive', rev], cwd=REPO, check=True, capture_output=True).stdout
  subprocess.run(['tar', '-x', '-C', into], input=archive, check=True)
  return into


def _plot(path: str, curves: dict[str, list[tuple[float, float]]]) -> None:
  """A small line plot (PIL): quality (IoU) against wall seconds, one line per item."""
  w, h, m = 640, 400, 50
  img = Image.new('RGB', (w, h), 'white')
  draw = ImageDraw.Draw(img)
  xs = [x for pts in curves.values() for x, _ in pts] or [1.0]
  xmax = max(xs) * 1.05
  draw.rectangle([m, m // 2, w - m // 2, h - m], outline='black')
  for t in np.linspace(0, xmax, 6):
    x = m + (w - 1.5 * m) * t / xmax
    draw.text((x - 10, h - m + 5), f'{t:.0f}', fill='black')
  for q in np.linspace(0, 1, 6):
    y = h - m - (h - 1.5 * m) * q
    draw.text((5, y - 5), f'{q:.1f}', fill='black')
  draw.text((w // 2 - 60, h - 18), 'wall seconds (warm cache)', fill='black')
  draw.text((5, 5), 'IoU of the kept result', fill='black')
  colours = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e']
  for i, (name, pts) in enumerate(sorted(curves.items())):
    pts = sorted(pts)
    xy = [(m + (w - 1.5 * m) * x / xmax, h - m - (h - 1.5 * m) * max(0.0, q)) for x, q in pts]
    if len(xy) > 1:
      draw.line(xy, fill=colours[i % len(colours)], width=2)
    for x, y in xy:
      draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colours[i % len(colours)])
    draw.text((m + 10, m // 2 + 5 + 14 * i), name, fill=colours[i % len(colours)])
  img.save(path)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}')
  workdir = os.path.abspath(_WORKDIR.value)
  os.makedirs(workdir, exist_ok=True)
  log = os.path.join(workdir, 'runs.jsonl')
  scratch = tempfile.mkdtemp(prefix='time_to_result_')
  versions = {'current': REPO}
  if _BASELINE.value:
    versions[f'baseline {_BASELINE.value}'] = _export(_BASELINE.value, os.path.join(scratch, 'baseline'))
  fractions = [float(f) for f in _FRACTIONS.value]

  def job(version: str, item: str, fraction: float):
    code = versions[version]
    cache = os.path.join(scratch, f'cache-{len(os.listdir(scratch))}')
    flags_ = item_flags(item, workdir) + _schedule_flags(code, item, fraction)
    record = {'version': version, 'item': item, 'fraction': fraction}
    if fraction == 1.0:
      record['cold'] = run_once(code, flags_, cache, os.path.join(scratch, 'run'))
    else:  # Only the warm time matters for the curve; the cold run fills the cache.
      run_once(code, flags_, cache, os.path.join(scratch, 'run'))
    if not (_COLD_ONLY.value and fraction == 1.0):
      record['warm'] = run_once(code, flags_, cache, os.path.join(scratch, 'run'))
    record['machine'] = f'{platform.machine()}, {os.cpu_count()} cores'
    shutil.rmtree(cache, ignore_errors=True)
    return record

  jobs = []
  for item in _ITEMS.value:
    for version in versions:
      jobs.append(((version, item, 1.0), lambda v=version, i=item: job(v, i, 1.0)))
    for fraction in fractions:
      if fraction != 1.0:
        jobs.append((('current', item, fraction), lambda i=item, f=fraction: job('current', i, f)))
  runs_log.run_missing(
      log,
      jobs,
      key=lambda r: (r['version'], r['item'], r['fraction']),
      describe=lambda r: f"{r['version']} {r['item']} x{r['fraction']}: {json.dumps(r.get('cold') or r['warm'])}",
  )
  shutil.rmtree(scratch, ignore_errors=True)

  runs = runs_log.load_runs(log)
  print('| item | version | cold wall s | warm wall s | steps | warm ms/step | cold start-up overhead s | quality |')
  print('|---|---|---|---|---|---|---|---|')
  for r in runs:
    if r['fraction'] != 1.0:
      continue
    cold, warm = r['cold'], r.get('warm')
    per_step = warm['stage_seconds'] / max(warm['steps'], 1) if warm else None
    overhead = cold['wall'] - cold['steps'] * per_step if warm else None
    name, value = cold.get('quality_metric', 'iou'), cold.get('quality', cold.get('iou'))
    shown = '-' if value is None else (f'IoU {value:.3f}' if name == 'iou' else f'{name} {value:.2f} dB')
    if cold['steps'] and warm:
      step_cells = f"{cold['steps']} | {1000 * per_step:.1f} | {overhead:.1f}"
    else:  # Tasks whose metrics.json has no per-stage record (passes, runs, windows).
      step_cells = '- | - | -'
    warm_wall = f"{warm['wall']:.1f}" if warm else '-'
    print(f"| {r['item']} | {r['version']} | {cold['wall']:.1f} | {warm_wall} | {step_cells} | {shown} |")
  curves: dict[str, list[tuple[float, float]]] = {}
  for r in runs:
    if r['version'] == 'current' and r.get('warm') and r['warm'].get('iou') is not None:
      curves.setdefault(r['item'], []).append((r['warm']['wall'], r['warm']['iou']))
  if curves:
    _plot(os.path.join(workdir, 'quality_vs_time.png'), curves)
    print(f'wrote {os.path.join(workdir, "quality_vs_time.png")}')


if __name__ == '__main__':
  app.run(main)

r"""Interactive segmentation: IoU after each corrective click, ours (`ddip_jax.Cutout`) against GrabCut.

  PYTHONPATH=. python benchmarks/eval_interactive.py [--clicks=10] [--seeds=0] [--cases=crow_sky,...]

The protocol of interactive-segmentation benchmarks (the NoC metric of the
GrabCut and Berkeley sets), on data/segbench (scripts/make_segbench.py): click 0
is the case's simulated strokes (a stroke inside the object, a band along the
border); after each result one corrective click, a dab of radius 3 px at the
pixel deepest inside the largest error region, added to the fg strokes where the
object was missed and to the bg strokes where background was taken. Each method
places its clicks against its own errors.

  ours     `Cutout(photo).add(fg=stroke, bg=band)`, then `add(fg=dab)` / `add(bg=dab)`
           per click: the correction continues the previous result in memory.
  grabcut  OpenCV's GrabCut (5 iterations): the strokes and clicks as hard labels,
           the rest probable background at click 0 (the better start on this
           set, docs/segmentation.md), then the previous result's labels.

Prints one table (mean IoU after each click, NoC@85 and NoC@90 with unreached
cases counted as --clicks, cases reaching 0.90, seconds of the first result, of
a correction and of a preview), per-case IoUs, and writes <workdir>/rows.jsonl
and <workdir>/iou_vs_clicks.png. A rerun skips the (method, case, seed) rows
already in rows.jsonl.
"""

import json
import os
import time

from absl import app
from absl import flags
import cv2
import numpy as np
from PIL import Image
from PIL import ImageDraw
from scipy import ndimage

from ddip_jax import cutout as cutout_lib
from ddip_jax import grow
from ddip_jax import image_io

_DATA = flags.DEFINE_string('data', 'data/segbench', 'The evaluation set (scripts/make_segbench.py).')
_CASES = flags.DEFINE_list('cases', [], 'Cases to run (default: all).')
_METHODS = flags.DEFINE_list('methods', ['ours', 'grabcut'], 'Methods (module docstring).')
_SEEDS = flags.DEFINE_list('seeds', ['0'], 'Seeds of ours (GrabCut is deterministic).')
_CLICKS = flags.DEFINE_integer('clicks', 10, 'Corrective clicks after the strokes.')
_CORRECTION_STEPS = flags.DEFINE_integer('correction_steps', 60, 'Steps of each correction (ours).')
_WORKDIR = flags.DEFINE_string('workdir', 'results/eval_interactive', 'Where rows and the plot are written.')
_DAB = 3  # The click's radius (px).


def _mask(path: str) -> np.ndarray:
  with Image.open(path) as im:
    return np.asarray(im.convert('L')) > 127


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
  union = (mask | truth).sum()
  return float((mask & truth).sum() / union) if union else 1.0


def next_click(mask: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, bool] | None:
  """The protocol's click: (a dab of radius 3 px, True for a fg click) at the pixel deepest in the largest error
  region; None when there is no error."""
  regions = []
  for missed, error in ((True, truth & ~mask), (False, mask & ~truth)):
    labels, count = ndimage.label(error)
    if count:
      sizes = ndimage.sum(error, labels, np.arange(1, count + 1))
      regions.append((sizes.max(), missed, labels == 1 + int(np.argmax(sizes))))
  if not regions:
    return None
  _, missed, region = max(regions, key=lambda r: r[0])
  depth = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]  # The photo's edge bounds a region too.
  y, x = np.unravel_index(np.argmax(depth), depth.shape)
  yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
  return (yy - y) ** 2 + (xx - x) ** 2 <= _DAB**2, missed


def run_ours(image, truth, fg, bg, seed: int, clicks: int) -> dict:
  cut = cutout_lib.Cutout(image, seed=seed, correction_steps=_CORRECTION_STEPS.value)
  start = time.perf_counter()
  mask = cut.add(fg=fg, bg=bg).mask > 0.5
  first = time.perf_counter() - start
  ious, corrections, previews = [iou(mask, truth)], [], []
  for _ in range(clicks):
    click = next_click(mask, truth)
    if click is None:
      ious.append(ious[-1])
      continue
    dab, is_fg = click
    strokes = {'fg': dab} if is_fg else {'bg': dab}
    start = time.perf_counter()
    cut.preview(**strokes)
    previews.append(time.perf_counter() - start)
    start = time.perf_counter()
    mask = cut.add(**strokes).mask > 0.5
    corrections.append(time.perf_counter() - start)
    ious.append(iou(mask, truth))
  return {'ious': ious, 'first_s': first, 'correction_s': corrections, 'preview_s': previews}


def run_grabcut(image, truth, fg, bg, clicks: int) -> dict:
  hard_fg, hard_bg = fg.copy(), bg.copy()
  labels = np.full(truth.shape, cv2.GC_PR_BGD, np.uint8)
  ious, corrections = [], []
  for click_index in range(clicks + 1):
    if click_index:
      click = next_click(mask, truth)
      if click is None:
        ious.append(ious[-1])
        continue
      dab, is_fg = click
      if is_fg:
        hard_fg, hard_bg = hard_fg | dab, hard_bg & ~dab
      else:
        hard_bg, hard_fg = hard_bg | dab, hard_fg & ~dab
      labels = np.where(mask, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    labels[hard_bg], labels[hard_fg] = cv2.GC_BGD, cv2.GC_FGD
    start = time.perf_counter()
    mask = grow.grabcut(image, labels)
    if click_index:
      corrections.append(time.perf_counter() - start)
    ious.append(iou(mask, truth))
  return {'ious': ious, 'first_s': 0.0, 'correction_s': corrections, 'preview_s': []}


def noc(ious: list[float], level: float, clicks: int) -> int:
  """Clicks needed to reach `level` (0: the strokes did), `clicks` when never."""
  return next((i for i, v in enumerate(ious) if v >= level), clicks)


def _plot(path: str, curves: dict[str, list[float]], clicks: int) -> None:
  """IoU (mean over cases) against clicks, one line per method: a small PNG drawn with Pillow."""
  w, h, pad = 560, 360, 50
  im = Image.new('RGB', (w, h), 'white')
  draw = ImageDraw.Draw(im)
  low = min(0.7, min(min(c) for c in curves.values()))
  to_xy = lambda i, v: (pad + i * (w - 2 * pad) / max(clicks, 1), h - pad - (v - low) / (1 - low) * (h - 2 * pad))
  draw.rectangle([pad, pad, w - pad, h - pad], outline='black')
  for level in np.arange(np.ceil(low * 20) / 20, 1.0001, 0.05):
    y = to_xy(0, level)[1]
    draw.line([pad, y, w - pad, y], fill=(220, 220, 220))
    draw.text((8, y - 6), f'{level:.2f}', fill='black')
  for i in range(clicks + 1):
    draw.text((to_xy(i, low)[0] - 3, h - pad + 6), str(i), fill='black')
  draw.text((w // 2 - 40, h - 22), 'corrective clicks', fill='black')
  draw.text((pad, 15), 'mean IoU on data/segbench', fill='black')
  colours = {'ours': (200, 30, 30), 'grabcut': (30, 60, 200)}
  for row, (name, curve) in enumerate(curves.items()):
    colour = colours.get(name, (0, 0, 0))
    draw.line([to_xy(i, v) for i, v in enumerate(curve)], fill=colour, width=3)
    draw.text((w - pad - 90, pad + 10 + 15 * row), name, fill=colour)
  im.save(path)


def main(argv):
  del argv
  os.makedirs(_WORKDIR.value, exist_ok=True)
  rows_path = os.path.join(_WORKDIR.value, 'rows.jsonl')
  rows = []
  if os.path.exists(rows_path):
    with open(rows_path) as f:
      rows = [json.loads(line) for line in f if line.strip()]
  done = {(r['method'], r['case'], r['seed']) for r in rows}
  cases = _CASES.value or sorted(os.listdir(_DATA.value))
  clicks = _CLICKS.value
  for case in cases:
    folder = os.path.join(_DATA.value, case)
    image = image_io.load_image(os.path.join(folder, 'image.png'))
    truth, fg, bg = (_mask(os.path.join(folder, f'{n}.png')) for n in ('mask', 'stroke_fg', 'stroke_bg'))
    for method in _METHODS.value:
      for seed in ([int(s) for s in _SEEDS.value] if method == 'ours' else [0]):
        if (method, case, seed) in done:
          continue
        out = (
            run_ours(image, truth, fg, bg, seed, clicks)
            if method == 'ours'
            else run_grabcut(image, truth, fg, bg, clicks)
        )
        row = {'method': method, 'case': case, 'seed': seed, 'clicks': clicks, **out}
        rows.append(row)
        with open(rows_path, 'a') as f:
          f.write(json.dumps(row) + '\n')
        print(f'{method:8s} {case:20s} seed {seed}: ' + ' '.join(f'{v:.3f}' for v in out['ious']), flush=True)

  curves = {}
  print(
      f'\n| method | click 0 | after 5 clicks | after {clicks} | NoC@85 | NoC@90 | cases reaching 0.90 (of {len(cases)}) '
      '| first result (s) | correction (s) | preview (s) |'
  )
  print('|---|---|---|---|---|---|---|---|---|---|')
  for method in _METHODS.value:
    mine = [r for r in rows if r['method'] == method and r['case'] in cases and r['clicks'] == clicks]
    if not mine:
      continue
    ious = np.array([r['ious'] for r in mine])
    curves[method] = list(ious.mean(0))
    mean = lambda key: np.mean([v for r in mine for v in (r[key] if isinstance(r[key], list) else [r[key]])] or [0])
    print(
        f'| {method} | {ious[:, 0].mean():.3f} | {ious[:, min(5, clicks)].mean():.3f} | {ious[:, -1].mean():.3f} '
        f'| {np.mean([noc(list(i), 0.85, clicks) for i in ious]):.2f} '
        f'| {np.mean([noc(list(i), 0.90, clicks) for i in ious]):.2f} '
        f'| {np.mean([(i >= 0.90).any() for i in ious]) * len(cases):.1f} '
        f'| {mean("first_s"):.1f} | {mean("correction_s"):.2f} | {mean("preview_s"):.3f} |'
    )
  print('\nper case (mean over seeds), IoU at click 0 / 5 /', clicks)
  for case in cases:
    line = []
    for method in curves:
      ious = np.array(
          [r['ious'] for r in rows if r['method'] == method and r['case'] == case and r['clicks'] == clicks]
      )
      line.append(f'{method} {ious[:, 0].mean():.3f} / {ious[:, min(5, clicks)].mean():.3f} / {ious[:, -1].mean():.3f}')
    print(f'  {case:20s} ' + '   '.join(line))
  if curves:
    _plot(os.path.join(_WORKDIR.value, 'iou_vs_clicks.png'), curves, clicks)


if __name__ == '__main__':
  app.run(main)

r"""Segmentation quality on the evaluation set (data/segbench), against GrabCut.

  PYTHONPATH=. python benchmarks/eval_segmentation.py --seeds=0,1,2 \
      --methods=auto,stroke,box,grabcut [--cases=crow_sky,hen_forest] [--config.num_steps=...]

Methods (each case of data/segbench, made by scripts/make_segbench.py):
  auto      ours, automatic hints (no user input);
  stroke    ours, the simulated user hints: a stroke inside, a border band outside;
  box       ours, a rough box around the object (its outside is the bg hint);
  faithful  the official algorithm: automatic hints, official schedule
            (2000 + 4000 its), no hint growth, mask kept whole
            (`configs/zebra_faithful.py`'s settings);
  grabcut   OpenCV's GrabCut (5 iterations) from a border rectangle ('gc_rect'),
            from the strokes with the rest probable background ('gc_stroke') or
            probable foreground ('gc_stroke_fg'), and from the box ('gc_box').
The Double-DIP methods run with `--config` (default: configs/default.py, the
configuration a user's own photo gets) and its overrides, once per seed; rows are
appended to <workdir>/rows.jsonl as they finish, and a rerun skips the rows there
(delete the file, or use another --workdir, after changing the config). Prints
one table (IoU per case, mean over seeds; mean over cases; seconds per run) and
writes <workdir>/contact_sheet.png (input, hints, each method's mask, GT).
"""

import collections
import json
import os
import time

from absl import app
from absl import flags
import cv2
import numpy as np
from ml_collections import config_flags
from PIL import Image
from PIL import ImageDraw

from configs import zebra_faithful
from ddip_jax import config_check
from ddip_jax import grow
from ddip_jax import image_io
from ddip_jax import metrics as metrics_lib
from ddip_jax import writing
from ddip_jax.tasks import segmentation

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/default.py', 'Config of the Double-DIP methods.')
_DATA = flags.DEFINE_string('data', 'data/segbench', 'The evaluation set (scripts/make_segbench.py).')
_CASES = flags.DEFINE_list('cases', [], 'Cases to run (default: all).')
_METHODS = flags.DEFINE_list('methods', ['auto', 'stroke', 'box', 'grabcut'], 'Methods (module docstring).')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds of the Double-DIP methods.')
_FAITHFUL_SEEDS = flags.DEFINE_list('faithful_seeds', ['0'], 'Seeds of the faithful method (it is slow).')
_WORKDIR = flags.DEFINE_string('workdir', 'results/eval_segmentation', 'Where runs and rows are written.')

GRABCUT = ('gc_rect', 'gc_stroke', 'gc_stroke_fg', 'gc_box')


def _read_mask(path: str) -> np.ndarray:
  with Image.open(path) as im:
    return np.asarray(im.convert('L'), np.float32) / 255.0


def _load(case_dir: str, name: str) -> np.ndarray:
  return _read_mask(os.path.join(case_dir, f'{name}.png')) > 0.5


def grabcut_masks(case_dir: str) -> dict[str, np.ndarray]:
  """The four GrabCut baselines' masks (module docstring), (H, W) bool each."""
  image = image_io.load_image(os.path.join(case_dir, 'image.png'))
  stroke_fg, stroke_bg, box_bg = (_load(case_dir, n) for n in ('stroke_fg', 'stroke_bg', 'box_bg'))
  h, w = stroke_fg.shape
  inset = max(2, round(0.02 * min(h, w)))
  rect = np.ones((h, w), bool)
  rect[inset:-inset, inset:-inset] = False
  starts = {
      'gc_rect': (None, rect, cv2.GC_PR_FGD),
      'gc_stroke': (stroke_fg, stroke_bg, cv2.GC_PR_BGD),
      'gc_stroke_fg': (stroke_fg, stroke_bg, cv2.GC_PR_FGD),
      'gc_box': (None, box_bg, cv2.GC_PR_FGD),
  }
  masks = {}
  for name, (fg, bg, rest) in starts.items():
    labels = np.full((h, w), rest, np.uint8)
    labels[bg] = cv2.GC_BGD
    if fg is not None:
      labels[fg] = cv2.GC_FGD
    masks[name] = grow.grabcut(image, labels)
  return masks


def _dip_config(base, case_dir: str, method: str, seed: int):
  config = base.copy_and_resolve_references()
  config.image = os.path.join(case_dir, 'image.png')
  config.gt_mask = os.path.join(case_dir, 'mask.png')
  config.seed = seed
  config.progress = False
  if method == 'stroke':
    config.fg_hint = os.path.join(case_dir, 'stroke_fg.png')
    config.bg_hint = os.path.join(case_dir, 'stroke_bg.png')
  elif method == 'box':
    config.bg_hint = os.path.join(case_dir, 'box_bg.png')
  elif method == 'faithful':  # configs/zebra_faithful.py's settings.
    faithful = zebra_faithful.get_config()
    config.segmentation = faithful.segmentation
    config.num_steps = faithful.num_steps
  return config


def _read_rows(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _contact_sheet(path: str, data: str, cases: list[str], methods: list[str], workdir: str) -> None:
  """One row per case: input, hints (stroke red/blue), each method's seed-0 mask, GT."""
  tile = 128
  cols = ['input', 'hints'] + methods + ['GT']
  sheet = Image.new('RGB', (tile * len(cols), (tile * 3 // 4 + 14) * len(cases) + 14), 'white')
  draw = ImageDraw.Draw(sheet)
  for j, name in enumerate(cols):
    draw.text((j * tile + 2, 1), name, fill='black')
  for i, case in enumerate(cases):
    case_dir = os.path.join(data, case)
    image = image_io.load_image(os.path.join(case_dir, 'image.png'))
    hints = image.copy()
    hints[_load(case_dir, 'stroke_bg')] = (0, 0, 1)
    hints[_load(case_dir, 'stroke_fg')] = (1, 0, 0)
    panels = [image, hints]
    for method in methods:
      mask_path = os.path.join(workdir, method, case, 'seed0', 'mask_binary.png')
      if method in GRABCUT:
        mask_path = os.path.join(workdir, 'grabcut', case, f'{method}.png')
      if not os.path.exists(mask_path):
        mask_path = mask_path.replace('seed0', f'seed{_FAITHFUL_SEEDS.value[0]}')
      panels.append(_read_mask(mask_path) if os.path.exists(mask_path) else np.zeros(image.shape[:2]))
    panels.append(_load(case_dir, 'mask').astype(np.float32))
    y = 14 + i * (tile * 3 // 4 + 14)
    for j, panel in enumerate(panels):
      pic = image_io.to_uint8(image_io.resize_image(panel, (tile * 3 // 4, tile)))
      sheet.paste(Image.fromarray(pic if pic.ndim == 3 else np.repeat(pic[..., None], 3, -1)), (j * tile, y))
    draw.text((2, y + tile * 3 // 4), case, fill='black')
  sheet.save(path)


def main(argv):
  del argv
  base = _CONFIG.value
  data = _DATA.value
  cases = _CASES.value or sorted(d for d in os.listdir(data) if os.path.isdir(os.path.join(data, d)))
  workdir = _WORKDIR.value
  os.makedirs(workdir, exist_ok=True)
  rows_path = os.path.join(workdir, 'rows.jsonl')
  done = {(r['case'], r['method'], r['seed']) for r in _read_rows(rows_path)}
  methods = _METHODS.value
  columns = []
  for method in methods:
    columns += list(GRABCUT) if method == 'grabcut' else [method]
  # Seed-major, so that an interrupted evaluation has whole seeds.
  seeds = sorted(set(map(int, _SEEDS.value)) | set(map(int, _FAITHFUL_SEEDS.value)))
  for seed in seeds:
    for case in cases:
      case_dir = os.path.join(data, case)
      gt = _load(case_dir, 'mask')
      for method in methods:
        new = []
        if method == 'grabcut':
          if seed != seeds[0] or (case, 'gc_rect', 0) in done:
            continue
          t0 = time.perf_counter()
          masks = grabcut_masks(case_dir)
          seconds = (time.perf_counter() - t0) / len(masks)
          new = [
              {'case': case, 'method': n, 'seed': 0, 'iou': metrics_lib.iou(m, gt), 'seconds': seconds}
              for n, m in masks.items()
          ]
          os.makedirs(os.path.join(workdir, 'grabcut', case), exist_ok=True)
          for n, m in masks.items():
            writing.save_image(os.path.join(workdir, 'grabcut', case, f'{n}.png'), m.astype(np.float32))
        else:
          method_seeds = _FAITHFUL_SEEDS.value if method == 'faithful' else _SEEDS.value
          if seed not in map(int, method_seeds) or (case, method, seed) in done:
            continue
          config = _dip_config(base, case_dir, method, seed)
          config_check.validate(config)
          t0 = time.perf_counter()
          m = segmentation.run(config, os.path.join(workdir, method, case, f'seed{seed}'))
          new.append(
              {
                  'case': case,
                  'method': method,
                  'seed': seed,
                  'iou': m['iou'],
                  'iou_raw': m['iou_raw_mask'],
                  'seconds': time.perf_counter() - t0,
              }
          )
          print(f'{case:20s} {method:9s} seed {seed}: IoU {m["iou"]:.3f}', flush=True)
        with open(rows_path, 'a') as f:
          for row in new:
            f.write(json.dumps(row) + '\n')
  rows = _read_rows(rows_path)
  table = collections.defaultdict(list)
  seconds = collections.defaultdict(list)
  for r in rows:
    if r['case'] in cases:
      table[(r['case'], r['method'])].append(r['iou'])
      seconds[r['method']].append(r['seconds'])
  print(f'{"case":20s}' + ''.join(f'{c:>13s}' for c in columns))
  means = collections.defaultdict(list)
  for case in cases:
    cells = []
    for c in columns:
      values = table.get((case, c))
      if values:
        means[c].append(np.mean(values))
      cells.append(f'{np.mean(values):13.3f}' if values else f'{"-":>13s}')
    print(f'{case:20s}' + ''.join(cells))
  print(
      f'{"mean":20s}'
      + ''.join(f'{np.mean(means[c]):13.3f}' if len(means[c]) == len(cases) else f'{"(partial)":>13s}' for c in columns)
  )
  print(f'{">= 0.85":20s}' + ''.join(f'{sum(v >= 0.85 for v in means[c]):13d}' for c in columns))
  print(f'{"seconds/run":20s}' + ''.join(f'{np.mean(seconds[c]) if seconds[c] else 0:13.1f}' for c in columns))
  _contact_sheet(os.path.join(workdir, 'contact_sheet.png'), data, cases, columns, workdir)
  print(f'wrote {os.path.join(workdir, "contact_sheet.png")}')


if __name__ == '__main__':
  app.run(main)

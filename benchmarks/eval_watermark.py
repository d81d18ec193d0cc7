r"""PSNR/SSIM of watermark removal with a hint box: Double-DIP vs OpenCV inpainting of the same box.

  PYTHONPATH=. python benchmarks/eval_watermark.py [--cases=chelsea_white50,...] \
      [--methods=input,telea,ddip] [--hint_steps=N] [--num_steps=N] [--runs=N] \
      [--stroke_polarity=auto] [--many_sets=white50,...] [--heldout=31,32] \
      [--results_dir=results/eval_watermark] [--table_only]

Cases: by default `CASES_4x3`, 12 scikit-image photos at 128x96
(`make_watermark.PHOTOS_4x3`) under marks of `make_watermark.mark_coverage`
(light, dark and coloured text, small, thin and rotated text, ring, disc and
badge logos, opacity 0.3-0.6), the hint the mark's box grown by 4 px; and
`CASES` (the evaluation before 2026-12-06); with --heldout, `HELDOUT` (16 cases a seed, 31 and
32: photos the set does not use and marks drawn at random, see `heldout_cases`); `CASES`: a scikit-image photo
(`scripts/make_transparency.py`'s crops, --size px square) under the demo's
text-and-ring watermark (`scripts/make_watermark.py`) in a colour and opacity;
the hint is the demo's box around it. The watermarked image is rounded to 8
bits as a PNG, like the demo (chelsea_white50 is the demo image itself at the
default size).

Methods, every result scored against the clean photo with dm-pix PSNR/SSIM,
overall and inside the box (`metrics.box_scores`):
  input: the watermarked image itself (what doing nothing scores);
  telea: `cv2.inpaint(..., cv2.INPAINT_TELEA)` of the whole box (radius 3),
         which discards what shows through the watermark;
  ns:    the same with `cv2.INPAINT_NS` (Navier-Stokes), not run by default;
  telea_strokes: Telea inpainting of only the strokes `watermark_strokes.stroke_hint` finds
         in the box (--stroke_polarity, 'auto' for 'none'; --stroke_width), the
         hint of `watermark.stroke_polarity` with OpenCV in place of Double-DIP;
  ddip:  configs/watermark.py (mode 'hint', ours; configs/watermark_faithful.py is
         --stroke_polarity=none --clean_from=generator --hint_steps=4000
         --num_steps=7000 --set=watermark.step2_trains_clean=True), with
         --hint_steps / --num_steps / --runs overriding its schedule
         and --mask_weight its `watermark.mask_weight` (official: 0); the
         de-blending variants (docs/watermark.md) by --watermark_model, --exclusion_weight
         and --clean_from (official: generator, 0, generator).

Mode 'many' (--many_sets=white50,...; `MANY_SETS`): three photos under the
same watermark, run together by configs/watermark_many.py (--num_steps,
--runs override its schedule); each image's result is scored inside the box
next to that image's input and Telea inpainting (case many_<set>/<photo>).

Each finished run is appended to `<results_dir>/runs.jsonl` right away and runs
already there (same case, method, schedule and size) are skipped, so the
evaluation can be interrupted and resumed or split over processes; Double-DIP
runs also resume inside a case from their finished runs and checkpoints in
`<results_dir>/<case>/ddip_<schedule>/`. The tables are printed from runs.jsonl
(`--table_only` prints them without running). Needs scikit-image (the photos)
and opencv-python-headless (the baselines): optional benchmark dependencies
(requirements-bench.txt).
"""

import os
import time
from typing import Any

from absl import app
from absl import flags
import numpy as np

from benchmarks import runs_log
from configs import watermark as watermark_config
from configs import watermark_many as watermark_many_config
from ddip_jax import image_io
from ddip_jax import metrics as metrics_lib
from ddip_jax import watermark_strokes
from ddip_jax import writing
from ddip_jax.tasks import watermark
from scripts import make_transparency
from scripts import make_watermark
from scripts import sources

# name -> (photo, watermark colour, opacity).
CASES = {
    'chelsea_white50': ('chelsea', (1.0, 1.0, 1.0), 0.5),
    'coffee_black40': ('coffee', (0.0, 0.0, 0.0), 0.4),
    'astronaut_white60': ('astronaut', (1.0, 1.0, 1.0), 0.6),
    'rocket_yellow50': ('rocket', (1.0, 0.85, 0.2), 0.5),
}
# The evaluation set of 2026-12-06 (the default --cases): 128x96 photos (`make_watermark.PHOTOS_4x3`: smooth,
# detailed and textured) under light, dark and coloured text, thin, small and rotated text and logos (filled
# ones too), opacity 0.3-0.6. name -> (photo, colour, opacity, `make_watermark.mark_coverage` arguments).
CASES_4x3 = {
    'chelsea_text_white50': (
        'chelsea',
        (1.0, 1.0, 1.0),
        0.5,
        dict(text='\u00a9 DDIP', font_size=20, logo='ring', logo_size=20),
    ),
    'astronaut_smalltext_white45': (
        'astronaut',
        (1.0, 1.0, 1.0),
        0.45,
        dict(text='stock photo', font_size=12, centre=(0.5, 0.7)),
    ),
    'coffee_text_black50': ('coffee', (0.0, 0.0, 0.0), 0.5, dict(text='SAMPLE', font_size=20, centre=(0.5, 0.45))),
    'rocket_text_red55': ('rocket', (0.9, 0.1, 0.1), 0.55, dict(text='PROOF', font_size=18, centre=(0.45, 0.5))),
    'motorcycle_text_blue40': (
        'motorcycle',
        (0.15, 0.3, 0.95),
        0.4,
        dict(text='\u00a9 2026', font_size=16, centre=(0.5, 0.6)),
    ),
    'brick_thintext_white35': (
        'brick',
        (1.0, 1.0, 1.0),
        0.35,
        dict(text='preview copy', font_size=10, centre=(0.5, 0.5)),
    ),
    'gravel_rottext_black45': ('gravel', (0.0, 0.0, 0.0), 0.45, dict(text='DRAFT', font_size=20, angle=30)),
    'rocket_rottext_yellow50': (
        'rocket',
        (1.0, 0.85, 0.2),
        0.5,
        dict(text='demo', font_size=18, angle=-20, centre=(0.55, 0.4)),
    ),
    'chelsea_logo_blue40': ('chelsea', (0.2, 0.4, 1.0), 0.4, dict(logo='badge', logo_size=26, centre=(0.7, 0.6))),
    'camera_logo_white30': (
        'camera',
        (1.0, 1.0, 1.0),
        0.3,
        dict(text='LOGO', font_size=16, logo='disc', logo_size=16, centre=(0.5, 0.3)),
    ),
    'astronaut_logo_black60': (
        'astronaut',
        (0.0, 0.0, 0.0),
        0.6,
        dict(text='ddip', font_size=16, logo='ring', logo_size=18, centre=(0.5, 0.5), bold=1),
    ),
    'coffee_rotlogo_green40': (
        'coffee',
        (0.1, 0.8, 0.2),
        0.4,
        dict(text='Studio', font_size=14, logo='badge', logo_size=18, angle=15, centre=(0.5, 0.75)),
    ),
}
# --heldout: photos the set does not use and marks drawn at random from ranges wider than the set's, fixed
# (seed 31) after every choice of the method had been made, so no default was tuned on them.
# name -> (file in skimage/data, crop box (left, top, right, bottom), tint or None).
HELDOUT_PHOTOS = {
    'coins': ('coins.png', (0, 7, 384, 295), None),
    'hubble': ('hubble_deep_field.jpg', (0, 61, 1000, 811), None),
    'ihc': ('ihc.png', (0, 64, 512, 448), None),
    'retina': ('retina.jpg', (0, 176, 1411, 1234), None),
    'grass': ('grass.png', (0, 64, 512, 448), (0.55, 0.8, 0.4)),
    'moon': ('moon.png', (0, 64, 512, 448), None),
    'colour_chart': ('color.png', (0, 46, 371, 324), None),
    'cell': ('cell.png', (0, 0, 660, 495), None),
}
HELDOUT_TEXTS = ('DRAFT', 'www.photo.net', '\u00a9 Studio 7', 'CONFIDENTIAL', 'sample', 'iStock', 'PREVIEW', '2024')
HELDOUT_COLOURS = {
    'white': (1.0, 1.0, 1.0),
    'black': (0.0, 0.0, 0.0),
    'grey': (0.5, 0.5, 0.5),
    'silver': (0.8, 0.8, 0.8),
    'red': (0.85, 0.1, 0.1),
    'yellow': (1.0, 0.9, 0.1),
    'blue': (0.1, 0.3, 0.9),
    'green': (0.1, 0.7, 0.2),
    'orange': (1.0, 0.55, 0.0),
    'magenta': (0.9, 0.1, 0.8),
}


def heldout_cases(count: int = 16, seed: int = 31) -> dict[str, tuple[str, tuple[float, ...], float, dict[str, Any]]]:
  """`count` held-out cases, name -> (photo, colour, opacity, `make_watermark.mark_coverage` arguments).

  Photos alternate between `HELDOUT_PHOTOS` and the set's (`make_watermark.PHOTOS_4x3`); text, size,
  boldness, angle, logo, place, colour and opacity (0.25-0.65) are drawn at random.
  """
  rng = np.random.default_rng(seed)
  photos = list(HELDOUT_PHOTOS)
  cases = {}
  for k in range(count):
    photo = photos[k // 2 % len(photos)] if k % 2 == 0 else str(rng.choice(sorted(make_watermark.PHOTOS_4x3)))
    colour = str(rng.choice(sorted(HELDOUT_COLOURS)))
    opacity = float(np.round(rng.uniform(0.25, 0.65) / 0.05) * 0.05)
    logo = str(rng.choice(['', '', 'ring', 'disc', 'badge']))
    text = '' if logo and rng.uniform() < 0.25 else str(rng.choice(HELDOUT_TEXTS))
    mark = dict(
        text=text,
        font_size=float(rng.integers(10, 25)),
        bold=int(rng.choice([0, 0, 1])),
        centre=(float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.3, 0.7))),
        angle=float(rng.choice([0, 0, -30, -15, 15, 30, 45])),
        logo=logo,
        logo_size=float(rng.integers(12, 29)) if logo else 0.0,
    )
    prefix = 'held' if seed == 31 else f'held{seed}_'  # Seed 31, the first batch, keeps its names.
    cases[f'{prefix}{k:02d}_{photo}_{colour}{round(opacity * 100)}'] = (photo, HELDOUT_COLOURS[colour], opacity, mark)
  return cases


HELDOUT = {**heldout_cases(seed=31), **heldout_cases(seed=32)}
# Mode 'many': name -> (photos sharing the watermark, colour, opacity); white50 is configs/watermark_many.py's demo.
MANY_SETS = {
    'white50': (('chelsea', 'coffee', 'astronaut'), (1.0, 1.0, 1.0), 0.5),
    'black40': (('coffee', 'rocket', 'chelsea'), (0.0, 0.0, 0.0), 0.4),
    'yellow50': (('rocket', 'astronaut', 'coffee'), (1.0, 0.85, 0.2), 0.5),
    'white60': (('astronaut', 'chelsea', 'rocket'), (1.0, 1.0, 1.0), 0.6),
}
METHODS = ('input', 'telea', 'ns', 'telea_strokes', 'ddip')
INPAINT_RADIUS = 3

_CASES = flags.DEFINE_list('cases', list(CASES_4x3), 'Cases to run (of CASES_4x3, the default, and CASES).')
_HELDOUT = flags.DEFINE_list(
    'heldout', [], 'Run the held-out cases of these seeds (16 a seed; 31 and 32 in `HELDOUT`) instead of --cases.'
)
_METHODS = flags.DEFINE_list('methods', ['input', 'telea', 'ddip'], f'Methods to run (of {", ".join(METHODS)}).')
_HINT_STEPS = flags.DEFINE_integer('hint_steps', None, "Double-DIP step-1 iterations (default: the config's).")
_NUM_STEPS = flags.DEFINE_integer('num_steps', None, "Double-DIP step-2 iterations (default: the config's).")
_RUNS = flags.DEFINE_integer('runs', None, "Double-DIP runs whose median is taken (default: the config's).")
_MASK_WEIGHT = flags.DEFINE_float('mask_weight', None, "Double-DIP watermark.mask_weight (default: the config's).")
_WATERMARK_MODEL = flags.DEFINE_enum(
    'watermark_model',
    None,
    list(watermark.WATERMARK_MODELS),
    "Double-DIP watermark.watermark_model (default: the config's).",
)
_EXCLUSION_WEIGHT = flags.DEFINE_float(
    'exclusion_weight', None, "Double-DIP watermark.exclusion_weight (default: the config's)."
)
_CLEAN_FROM = flags.DEFINE_enum(
    'clean_from', None, list(watermark.CLEAN_FROM), "Double-DIP watermark.clean_from (default: the config's)."
)
_STROKE_POLARITY = flags.DEFINE_enum(
    'stroke_polarity',
    None,
    list(watermark_strokes.STROKE_POLARITIES),
    "Double-DIP watermark.stroke_polarity (default: the config's).",
)
_STROKE_WIDTH = flags.DEFINE_integer('stroke_width', None, "watermark.stroke_width (default: the config's).")
_MANY_SETS = flags.DEFINE_list(
    'many_sets',
    [],
    f'Mode \'many\' sets to run (of {", ".join(MANY_SETS)}): '
    'input, telea and configs/watermark_many.py (--num_steps, --runs) per image.',
)
_SET = flags.DEFINE_list(
    'set',
    [],
    'Further config overrides of the Double-DIP runs, e.g. ' 'watermark.step2_trains_clean=False; they name the runs.',
)
_SIZE = flags.DEFINE_integer('size', make_watermark.SIZE, 'Side of the images in pixels.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the Double-DIP runs.')
_OUT_DIR = flags.DEFINE_string('results_dir', 'results/eval_watermark', 'Where inputs, outputs and runs.jsonl go.')
_TABLE_ONLY = flags.DEFINE_bool('table_only', False, 'Only print the tables from runs.jsonl.')


def make_case(name: str, folder: str) -> dict[str, str]:
  """Writes a case's watermarked image, clean photo and hint box; returns their paths."""
  if name in CASES_4x3 or name in HELDOUT:
    return write_case_4x3(name, folder)
  return _write_case(*CASES[name], folder)


def case_arrays(name: str) -> dict[str, np.ndarray]:
  """A case of `CASES_4x3` or `HELDOUT` (at 128x96): the watermarked image, the clean photo, the hint box and the coverage."""
  photo, colour, opacity, mark = {**CASES_4x3, **HELDOUT}[name]
  if photo in HELDOUT_PHOTOS:
    clean = sources.load_photo(*HELDOUT_PHOTOS[photo], (96, 128))
  else:
    clean = make_watermark.load_photo_4x3(photo)
  coverage = make_watermark.mark_coverage(clean.shape[:2], **mark)
  image = image_io.to_uint8(make_watermark.apply_watermark(clean, coverage, colour, opacity)) / np.float32(255)
  return {'image': image, 'clean': clean, 'box': make_watermark.hint_box(coverage), 'coverage': coverage}


def write_case_4x3(name: str, folder: str) -> dict[str, str]:
  arrays = case_arrays(name)
  return _save({key: arrays[key] for key in ('image', 'clean', 'box')}, folder)


def _write_case(photo: str, colour: tuple[float, float, float], opacity: float, folder: str) -> dict[str, str]:
  coverage = make_watermark.watermark_coverage(_SIZE.value)
  clean = make_transparency.load_layer(photo, _SIZE.value)
  return _save(
      {
          'image': make_watermark.apply_watermark(clean, coverage, colour, opacity),
          'clean': clean,
          'box': make_watermark.hint_box(coverage),
      },
      folder,
  )


def _save(images: dict[str, np.ndarray], folder: str) -> dict[str, str]:
  paths = {}
  for key, img in images.items():
    paths[key] = os.path.join(folder, f'{key}.png')
    writing.save_image(paths[key], img)
  return paths


def inpaint(image: np.ndarray, box: np.ndarray, method: str) -> np.ndarray:
  """OpenCV inpainting of the box (Telea or Navier-Stokes), float in, float out."""
  import cv2  # pylint: disable=g-import-not-at-top

  flag = cv2.INPAINT_TELEA if method == 'telea' else cv2.INPAINT_NS
  out = cv2.inpaint(image_io.to_uint8(image), (box > 0.5).astype(np.uint8) * 255, INPAINT_RADIUS, flag)
  return out.astype(np.float32) / 255.0


def schedule() -> dict[str, Any]:
  """The Double-DIP schedule and mask weight run: the config's, with the flags' overrides."""
  config = watermark_config.get_config()
  variant = {
      name: flag.value if flag.value is not None else config.watermark[name]
      for name, flag in (
          ('watermark_model', _WATERMARK_MODEL),
          ('exclusion_weight', _EXCLUSION_WEIGHT),
          ('clean_from', _CLEAN_FROM),
      )
  }
  strokes = stroke_settings()
  if strokes['stroke_polarity'] != 'none':  # Only then in the record, so that earlier records keep matching.
    variant.update(strokes)
  if _SET.value:
    variant['set'] = ','.join(_SET.value)
  return {
      **variant,
      'hint_steps': _HINT_STEPS.value if _HINT_STEPS.value is not None else config.watermark.hint_steps,
      'num_steps': _NUM_STEPS.value or config.num_steps,
      'runs': _RUNS.value or config.watermark.runs,
      'mask_weight': _MASK_WEIGHT.value if _MASK_WEIGHT.value is not None else config.watermark.mask_weight,
  }


def stroke_settings() -> dict[str, Any]:
  """`watermark.stroke_polarity` and `stroke_width`: the config's, with the flags' overrides."""
  config = watermark_config.get_config()
  return {
      'stroke_polarity': _STROKE_POLARITY.value or config.watermark.stroke_polarity,
      'stroke_width': _STROKE_WIDTH.value or config.watermark.stroke_width,
  }


def _method_steps(method: str) -> dict[str, Any] | None:
  """The settings a method's record carries (None for the baselines without any)."""
  if method == 'ddip':
    return schedule()
  if method == 'telea_strokes':
    strokes = stroke_settings()
    return {**strokes, 'stroke_polarity': strokes['stroke_polarity'].replace('none', 'auto')}
  return None


def _key(case: str, method: str, steps: dict[str, int] | None, size: int) -> tuple[Any, ...]:
  """What identifies a run in runs.jsonl (a run with other settings is not skipped)."""
  return (case, method, tuple(sorted(steps.items())) if steps else None, size)


def run_one(case: str, method: str) -> dict[str, Any]:
  """Runs one method on one case; returns its record."""
  folder = os.path.join(_OUT_DIR.value, case)
  paths = make_case(case, os.path.join(folder, 'inputs'))
  image, truth = image_io.load_image(paths['image']), image_io.load_image(paths['clean'])
  box_mask = image_io.load_mask(paths['box'], shape=truth.shape[:2])
  box = metrics_lib.bounding_box(box_mask)
  record: dict[str, Any] = {'case': case, 'method': method, 'size': _SIZE.value, 'steps': None}
  start = time.perf_counter()
  if method == 'input':
    result = image
  elif method in ('telea', 'ns'):
    result = inpaint(image, box_mask, method)
  elif method == 'telea_strokes':
    steps = _method_steps(method)
    strokes, _ = watermark_strokes.stroke_hint(
        image, box_mask, polarity=steps['stroke_polarity'], width=steps['stroke_width']
    )
    result = inpaint(image, strokes, 'telea')
    record['steps'] = steps
  else:
    steps = _method_steps(method)
    config = watermark_config.get_config()
    config.image, config.watermark.hint, config.watermark.gt_clean = paths['image'], paths['box'], paths['clean']
    config.watermark.hint_steps, config.num_steps, config.watermark.runs = (
        steps['hint_steps'],
        steps['num_steps'],
        steps['runs'],
    )
    for name in ('mask_weight', 'watermark_model', 'exclusion_weight', 'clean_from', 'stroke_polarity', 'stroke_width'):
      if name in steps:
        config.watermark[name] = steps[name]
    runs_log.apply_overrides(config, steps['set'].split(',') if steps.get('set') else [])
    config.seed = _SEED.value
    config.progress = False
    name = ''.join(c if c.isalnum() or c in '._-' else '_' for c in _schedule_name(steps))
    workdir = os.path.join(folder, f'ddip_{name}')
    watermark.run(config, workdir)
    result = image_io.load_image(os.path.join(workdir, 'clean.png'))
    record['steps'] = steps
  record['seconds'] = time.perf_counter() - start
  if method != 'input':
    writing.save_image(os.path.join(folder, f'{method}.png'), result)
  record.update(metrics_lib.box_scores(result, truth, box))
  return record


def run_many(name: str) -> list[dict[str, Any]]:
  """Mode 'many' on one of `MANY_SETS`: input, Telea and Double-DIP records for each of its images."""
  photos, colour, opacity = MANY_SETS[name]
  folder = os.path.join(_OUT_DIR.value, f'many_{name}')
  cases = [_write_case(photo, colour, opacity, os.path.join(folder, photo)) for photo in photos]
  config = watermark_many_config.get_config()
  config.image, config.watermark.gt_clean = cases[0]['image'], cases[0]['clean']
  config.watermark.images = tuple(c['image'] for c in cases[1:])
  config.watermark.gt_images = tuple(c['clean'] for c in cases[1:])
  config.watermark.eval_box = cases[0]['box']
  config.num_steps = _NUM_STEPS.value or config.num_steps
  config.watermark.runs = _RUNS.value or config.watermark.runs
  config.seed, config.progress = _SEED.value, False
  steps = {'num_steps': config.num_steps, 'runs': config.watermark.runs}
  start = time.perf_counter()
  workdir = os.path.join(folder, f"ddip_{steps['num_steps']}_x{steps['runs']}")
  watermark.run(config, workdir)
  seconds = time.perf_counter() - start
  records = []
  for k, (photo, case) in enumerate(zip(photos, cases), start=1):
    image, truth = image_io.load_image(case['image']), image_io.load_image(case['clean'])
    box_mask = image_io.load_mask(case['box'], shape=truth.shape[:2])
    results = {
        'input': (image, None),
        'telea': (inpaint(image, box_mask, 'telea'), None),
        'ddip_many': (image_io.load_image(os.path.join(workdir, f'clean{k}.png')), steps),
    }
    for method, (result, method_steps) in results.items():
      record = {
          'case': f'many_{name}/{photo}',
          'method': method,
          'size': _SIZE.value,
          'steps': method_steps,
          'seconds': seconds if method == 'ddip_many' else 0.0,
      }
      record.update(metrics_lib.box_scores(result, truth, metrics_lib.bounding_box(box_mask)))
      records.append(record)
  return records


def _schedule_name(steps: dict[str, Any] | None) -> str:
  if steps is None:
    return '-'
  strokes = f" strokes {steps['stroke_polarity']} {steps['stroke_width']}" if 'stroke_polarity' in steps else ''
  if 'hint_steps' not in steps and 'num_steps' in steps:  # ddip_many.
    return f"{steps['num_steps']} x{steps['runs']}"
  if 'hint_steps' not in steps:  # telea_strokes.
    return strokes.strip() or '-'
  name = f"{steps['hint_steps']}+{steps['num_steps']} x{steps['runs']} mw{steps.get('mask_weight', 0.0):g}"
  if steps.get('watermark_model', 'generator') != 'generator':
    name += f" W{steps['watermark_model']}"
  if steps.get('exclusion_weight', 0.0):
    name += f" ex{steps['exclusion_weight']:g}"
  if steps.get('clean_from', 'generator') != 'generator':
    name += f" {steps['clean_from']}"
  return name + strokes + (f" [{steps['set']}]" if steps.get('set') else '')


def print_tables(runs: list[dict[str, Any]]) -> None:
  """Per-run rows, then the mean per method (and schedule)."""

  def schedule_name(r):
    return _schedule_name(r['steps'])

  print('| case | method | schedule | PSNR in box (dB) | PSNR overall | SSIM in box | SSIM overall | s |')
  print('|---|---|---|---|---|---|---|---|')
  for r in runs:
    print(
        f"| {r['case']} | {r['method']} | {schedule_name(r)} | {r['psnr_box']:.2f} | {r['psnr']:.2f} | "
        f"{r['ssim_box']:.3f} | {r['ssim']:.3f} | {r['seconds']:.1f} |"
    )
  print()
  print(
      '| set | method | schedule | cases | mean PSNR in box | mean PSNR overall | mean SSIM in box | mean SSIM '
      '| mean s |'
  )
  print('|---|---|---|---|---|---|---|---|---|')
  groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
  for r in runs:  # Mode 'many' cases are many_<set>/<photo>; the others form one set, 'hint'.
    groups.setdefault(
        (r['case'].split('/')[0] if '/' in r['case'] else 'hint', r['method'], schedule_name(r)), []
    ).append(r)
  for (group, method, sched), rs in sorted(groups.items(), key=lambda item: item[0][0]):
    means = {k: np.mean([r[k] for r in rs]) for k in ('psnr_box', 'psnr', 'ssim_box', 'ssim', 'seconds')}
    print(
        f"| {group} | {method} | {sched} | {len(rs)} | {means['psnr_box']:.2f} | {means['psnr']:.2f} | "
        f"{means['ssim_box']:.3f} | {means['ssim']:.3f} | {means['seconds']:.1f} |"
    )


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  unknown = (
      sorted(set(_CASES.value) - set(CASES) - set(CASES_4x3) - set(HELDOUT))
      + sorted(set(_METHODS.value) - set(METHODS))
      + sorted(set(_MANY_SETS.value) - set(MANY_SETS))
  )
  unknown += sorted(seed for seed in _HELDOUT.value if not seed.isdigit())
  if unknown:
    raise app.UsageError(f'unknown cases, methods or held-out seeds: {unknown}')
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  runs_path = os.path.join(_OUT_DIR.value, 'runs.jsonl')
  if not _TABLE_ONLY.value:
    done = {_key(r['case'], r['method'], r['steps'], r['size']) for r in runs_log.load_runs(runs_path)}
    for seed in _HELDOUT.value:  # Seeds beyond 31 and 32 too (`heldout_cases`).
      HELDOUT.update(heldout_cases(seed=int(seed)))
    held = [case for seed in _HELDOUT.value for case in heldout_cases(seed=int(seed))]
    for case in held or _CASES.value:
      for method in _METHODS.value:
        if _key(case, method, _method_steps(method), _SIZE.value) in done:
          continue
        record = run_one(case, method)
        print(
            f"{case} {method}: PSNR in box {record['psnr_box']:.2f} dB, overall {record['psnr']:.2f} dB, "
            f"{record['seconds']:.1f} s",
            flush=True,
        )
        runs_log.append_run(runs_path, record)
    for name in _MANY_SETS.value:
      steps = {
          'num_steps': _NUM_STEPS.value or watermark_many_config.get_config().num_steps,
          'runs': _RUNS.value or watermark_many_config.get_config().watermark.runs,
      }
      if any(_key(f'many_{name}/{p}', 'ddip_many', steps, _SIZE.value) in done for p in MANY_SETS[name][0]):
        continue
      for record in run_many(name):
        print(f"{record['case']} {record['method']}: PSNR in box {record['psnr_box']:.2f} dB", flush=True)
        runs_log.append_run(runs_path, record)
  print_tables(runs_log.load_runs(runs_path))


if __name__ == '__main__':
  app.run(main)

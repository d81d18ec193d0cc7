r"""Mean IoU of video foreground masks on the evaluation set: Double-DIP vs background subtraction.

  PYTHONPATH=. python benchmarks/eval_video.py [--videos=horse24,...] [--methods=...]
      [--hint_steps=N --num_steps=N] [--set=learning_rate=0.002,...]
      [--results_dir=results/eval_video] [--table_only]

Clips: `scripts/make_video.py`'s EVAL_CLIPS by default (8 clips of 24 frames
of 128x96 with exact masks, static, panning, zooming and hand-held cameras;
data/README.md), or any of its CLIPS; those shipped in data/video/ are read
from there, the others are made into <results_dir>/clips/ (a Tux Paint stamp
is fetched as the script does; --stamps_root).

Methods:
  ddip:          configs/video.py (one shared background generator, coherent
                 noise, automatic 'motion' hints), the windows of its config;
  ddip_temporal: the same with the temporal term on (video.temporal_weight);
  ddip_window:   the same as ddip with two windows of 8 frames (overlap 4)
                 instead of the whole clip at once;
  mog2, knn:     OpenCV's MOG2 / KNN background subtraction
                 (cv2.createBackgroundSubtractorMOG2 / KNN, default parameters,
                 shadows off), fed the frames once in order, as a live camera
                 would; its first frame has no background model yet;
  median:        the clip's per-pixel temporal median as background,
                 foreground where a pixel's Lab distance to it exceeds the
                 motion hints' `high` threshold (12 Delta E);
  hints:         what our automatic hints start from (`video_motion.motion_mask`):
                 the same on frames aligned to the middle one when the camera
                 moves (`video.align`) and with each frame's gain divided out
                 (`video.match_lighting`), warped back; --set applies;
  refined:       the final mask with Double-DIP unsure everywhere
                 (`video_motion.refined_motion_mask`: the motion map refined by the
                 guided filter on the frame, the hints' sure pixels kept), no
                 optimisation; --set applies.
The first table has a row per clip and a column per method (mean IoU over
frames), then the mean over clips and the seconds per clip; the second, each
run with the mean IoU over frames 1..F-1 too (without the first, which MOG2
cannot know).

Each finished run is appended to `<results_dir>/runs.jsonl` right away and runs
already there are skipped, so the evaluation can be interrupted and resumed;
`--table_only` prints the table from that file. Needs opencv-python-headless
for 'mog2' and scikit-image to make clips (optional benchmark dependencies,
requirements-bench.txt).
"""

import functools
import os
import tempfile
import time
from typing import Any

from absl import app
from absl import flags
import numpy as np

from benchmarks import runs_log
from configs import video as video_config
from ddip_jax import clip_io
from ddip_jax import hints
from ddip_jax import metrics as metrics_lib
from ddip_jax import video_motion
from ddip_jax import writing
from ddip_jax.tasks import video
from scripts import make_video

_VIDEOS = flags.DEFINE_list('videos', list(make_video.EVAL_CLIPS), 'Clips (keys of scripts/make_video.CLIPS).')
_METHODS = flags.DEFINE_list(
    'methods',
    ['mog2', 'knn', 'median', 'hints', 'ddip'],
    'Methods: ddip, ddip_temporal, ddip_window, mog2, knn, median, hints, refined.',
)
_HINT_STEPS = flags.DEFINE_integer('hint_steps', None, 'Override step 1 iterations (default: configs/video.py).')
_NUM_STEPS = flags.DEFINE_integer('num_steps', None, 'Override step 2 iterations (default: configs/video.py).')
_SET = flags.DEFINE_list(
    'set',
    [],
    'Further config overrides of the Double-DIP runs, e.g. learning_rate=0.002; ' "they are part of the run's record.",
)
_TEMPORAL_WEIGHT = flags.DEFINE_float('temporal_weight', 1.0, 'video.temporal_weight of ddip_temporal.')
_OUT_DIR = flags.DEFINE_string('results_dir', 'results/eval_video', 'Where clips, outputs and runs.jsonl go.')
_TABLE_ONLY = flags.DEFINE_bool('table_only', False, 'Only print the table from runs.jsonl.')

_DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data', 'video')
_DDIP = ('ddip', 'ddip_temporal', 'ddip_window')
METHODS = _DDIP + ('mog2', 'knn', 'median', 'hints', 'refined')


def clip_folder(name: str) -> str:
  """The clip's folder (with frames/ and masks/), made if it is not shipped."""
  shipped = os.path.join(_DATA_DIR, name)
  if os.path.isdir(os.path.join(shipped, 'frames')):
    return shipped
  folder = os.path.join(_OUT_DIR.value, 'clips', name)
  if not os.path.isdir(os.path.join(folder, 'masks')):
    with tempfile.TemporaryDirectory() as workdir:
      frames, masks = make_video.make_clip(name, flags.FLAGS.stamps_root, workdir)
    make_video.write_clip(folder, frames, masks)
  return folder


def subtractor_masks(frames: np.ndarray, method: str) -> np.ndarray:
  """OpenCV MOG2 or KNN (default parameters, no shadows), frames fed once in order.

  Args:
    frames: (F, H, W, 3) RGB in [0, 1].
    method: 'mog2' or 'knn'.

  Returns:
    (F, H, W) float32 in {0, 1}.
  """
  import cv2  # pylint: disable=g-import-not-at-top

  make = {'mog2': cv2.createBackgroundSubtractorMOG2, 'knn': cv2.createBackgroundSubtractorKNN}[method]
  subtractor = make(detectShadows=False)
  bgr = (np.round(frames[..., ::-1] * 255)).astype(np.uint8)
  return np.stack([subtractor.apply(np.ascontiguousarray(f)) > 127 for f in bgr]).astype(np.float32)


def median_masks(frames: np.ndarray) -> np.ndarray:
  """Foreground where a pixel differs from the clip's median by more than the motion hints' `high`."""
  return (hints.background_change(frames) > 12.0).astype(np.float32)


def hint_masks(frames: np.ndarray, config) -> np.ndarray:
  """Our starting hints as a mask: `video_motion.motion_mask` of the Double-DIP runs' config (alignment included)."""
  return video_motion.motion_mask(config, frames)


def _config(method: str, folder: str):
  config = video_config.get_config()
  config.image = os.path.join(folder, 'frames')
  config.gt_mask = os.path.join(folder, 'masks')
  config.progress = False
  if _HINT_STEPS.value is not None:
    config.segmentation.hint_steps = _HINT_STEPS.value
  if _NUM_STEPS.value is not None:
    config.num_steps = _NUM_STEPS.value
  if method == 'ddip_temporal':
    config.video.temporal_weight = _TEMPORAL_WEIGHT.value
  if method == 'ddip_window':
    config.video.window_size, config.video.window_overlap = 8, 4
  runs_log.apply_overrides(config, _SET.value)
  return config


def _key(record: dict[str, Any]) -> tuple[Any, ...]:
  """What identifies a run in runs.jsonl (a run with other settings is not skipped)."""
  return (
      record['video'],
      record['method'],
      record.get('hint_steps'),
      record.get('num_steps'),
      record.get('temporal_weight'),
      record.get('window_size'),
      record.get('background_weight'),
      record.get('noise_correlation'),
      tuple(record.get('overrides', ())),
  )


def _planned(name: str, method: str) -> dict[str, Any]:
  if method in ('hints', 'refined'):
    return {'video': name, 'method': method, 'overrides': list(_SET.value)}
  if method not in _DDIP:
    return {'video': name, 'method': method}
  config = _config(method, '')
  return {
      'video': name,
      'method': method,
      'hint_steps': config.segmentation.hint_steps,
      'num_steps': config.num_steps,
      'temporal_weight': config.video.temporal_weight,
      'window_size': config.video.window_size,
      'background_weight': config.video.background_weight,
      'noise_correlation': config.video.noise_correlation,
      'overrides': list(_SET.value),
  }


def run_one(name: str, method: str) -> dict[str, Any]:
  """Runs one method on one clip; returns its record."""
  folder = clip_folder(name)
  record = _planned(name, method)
  start = time.perf_counter()
  if method in _DDIP:
    config = _config(method, folder)
    folder_name = ''.join(c if c.isalnum() or c in '._-' else '_' for c in _label(record))
    metrics = video.run(config, os.path.join(_OUT_DIR.value, name, folder_name))
    ious = metrics['iou_per_frame']
    record.update(frames_per_second=metrics['frames_per_second'], recomposed_psnr=metrics['recomposed_psnr'])
  else:
    frames, _ = clip_io.load_frames(os.path.join(folder, 'frames'))
    gt = clip_io.load_masks(os.path.join(folder, 'masks'), count=len(frames), shape=frames.shape[1:3])
    if method == 'median':
      masks = median_masks(frames)
    elif method == 'hints':
      masks = hint_masks(frames, _config(method, folder))
    elif method == 'refined':
      masks = video_motion.refined_motion_mask(_config(method, folder), frames)
    else:
      masks = subtractor_masks(frames, method)
    ious = [metrics_lib.iou(m, g) for m, g in zip(masks, gt)]
    for k, m in enumerate(masks):
      writing.save_image(os.path.join(_OUT_DIR.value, name, method, f'{k:04d}.png'), m)
  record.update(
      seconds=time.perf_counter() - start,
      iou_per_frame=ious,
      mean_iou=float(np.mean(ious)),
      mean_iou_after_first=float(np.mean(ious[1:])),
  )
  return record


def _schedule(r: dict[str, Any]) -> str:
  """A Double-DIP run's 'step 1 + step 2' iterations and its overrides, if any; '-' for the other methods."""
  if r['method'] not in _DDIP:
    return '-'
  overrides = f" [{','.join(r['overrides'])}]" if r.get('overrides') else ''
  return f"{r['hint_steps']} + {r['num_steps']}{overrides}"


def _label(r: dict[str, Any]) -> str:
  """A run's method with its schedule and overrides, if any (the mean table's rows, the run's folder)."""
  if r['method'] in ('hints', 'refined') and r.get('overrides'):
    return f"{r['method']} [{','.join(r['overrides'])}]"
  return r['method'] if r['method'] not in _DDIP else f"{r['method']} {_schedule(r)}"


def clip_table(runs: list[dict[str, Any]]) -> list[str]:
  """One table: a row per clip, a column per method (mean IoU over frames), then the mean and s per clip."""
  labels = list(dict.fromkeys(_label(r) for r in runs))
  clips = list(dict.fromkeys(r['video'] for r in runs))
  cell = {(r['video'], _label(r)): r for r in runs}
  lines = ['| clip | ' + ' | '.join(labels) + ' |', '|---' * (len(labels) + 1) + '|']
  for clip in clips:
    lines.append(
        f'| {clip} | '
        + ' | '.join(f"{cell[clip, m]['mean_iou']:.3f}" if (clip, m) in cell else '-' for m in labels)
        + ' |'
    )
  for title, key, fmt in (('mean IoU', 'mean_iou', '.3f'), ('s per clip', 'seconds', '.1f')):
    values = [[cell[c, m][key] for c in clips if (c, m) in cell] for m in labels]
    lines.append(
        f'| **{title}** | '
        + ' | '.join(f'{np.mean(v):{fmt}}' + ('' if len(v) == len(clips) else f' ({len(v)} clips)') for v in values)
        + ' |'
    )
  return lines


def print_table(runs: list[dict[str, Any]]) -> None:
  print('\n'.join(clip_table(runs)))
  print()
  print('| clip | method | steps (step 1 + step 2) | mean IoU | mean IoU, frames 1.. | s per clip | frames/s |')
  print('|---|---|---|---|---|---|---|')
  for r in runs:
    steps = _schedule(r)
    fps = len(r['iou_per_frame']) / max(r['seconds'], 1e-9)
    print(
        f"| {r['video']} | {r['method']} | {steps} | {r['mean_iou']:.3f} | {r['mean_iou_after_first']:.3f} | "
        f"{r['seconds']:.1f} | {fps:.3g} |"
    )
  print()
  print(
      '\n'.join(
          runs_log.mean_table(
              runs,
              group=_label,
              title='method',
              columns=[
                  ('mean IoU', lambda r: r['mean_iou'], '.3f'),
                  ('mean IoU, frames 1..', lambda r: r['mean_iou_after_first'], '.3f'),
                  ('s per clip', lambda r: r['seconds'], '.1f'),
              ],
          )
      )
  )


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  unknown = (set(_METHODS.value) - set(METHODS)) | (set(_VIDEOS.value) - set(make_video.CLIPS))
  if unknown:
    raise app.UsageError(
        f'unknown methods or clips {sorted(unknown)} (methods: {", ".join(METHODS)}; '
        f'clips: {", ".join(make_video.CLIPS)})'
    )
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  runs_path = os.path.join(_OUT_DIR.value, 'runs.jsonl')
  if not _TABLE_ONLY.value:
    jobs = [
        (_key(_planned(name, method)), functools.partial(run_one, name, method))
        for name in _VIDEOS.value
        for method in _METHODS.value
    ]
    runs_log.run_missing(
        runs_path,
        jobs,
        _key,
        lambda r: (
            f"{r['video']} {r['method']}: mean IoU {r['mean_iou']:.3f} "
            f"(frames 1..: {r['mean_iou_after_first']:.3f}), {r['seconds']:.1f} s"
        ),
    )
  print_table(runs_log.load_runs(runs_path))


if __name__ == '__main__':
  app.run(main)

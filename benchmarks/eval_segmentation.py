r"""Segmentation quality over seeds: IoU against the ground-truth mask.

  PYTHONPATH=. python benchmarks/eval_segmentation.py --config=configs/zebra.py \
      --seeds=0,1,2 [--config.num_steps=...]

Runs the task once per seed (outputs under --workdir/seed<k>) and prints one
row per seed (IoU of the refined and of the raw mask, best step, wall time)
and the mean, so schedules and hint methods can be compared with numbers.
"""

import os

from absl import app
from absl import flags
import numpy as np
from ml_collections import config_flags

from ddip_jax import config_check
from ddip_jax.tasks import segmentation

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/zebra.py', 'Segmentation config with gt_mask.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds to run.')
_WORKDIR = flags.DEFINE_string('workdir', 'results/eval_segmentation', 'Where each seed writes.')


def main(argv):
  del argv
  config = _CONFIG.value
  if not config.gt_mask:
    raise app.UsageError('the config needs gt_mask')
  config_check.validate(config)
  rows = []
  for seed in map(int, _SEEDS.value):
    config.seed = seed
    m = segmentation.run(config, os.path.join(_WORKDIR.value, f'seed{seed}'))
    rows.append((seed, m['iou'], m['iou_raw_mask'], m['best_step'], m['seconds']))
    print(f'seed {seed}: iou {m["iou"]:.3f}', flush=True)
  print(f'{"seed":>5} {"IoU":>6} {"IoU raw":>8} {"best step":>9} {"seconds":>8}')
  for seed, iou, raw, step, secs in rows:
    print(f'{seed:>5} {iou:>6.3f} {raw:>8.3f} {step:>9} {secs:>8.1f}')
  ious = np.array([r[1] for r in rows])
  print(f' mean {ious.mean():>6.3f} (min {ious.min():.3f}, max {ious.max():.3f})')


if __name__ == '__main__':
  app.run(main)

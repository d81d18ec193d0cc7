"""The video demo: a horse walking across a garage, 12 frames of 128x96, automatic 'motion' hints.

Made by scripts/make_video.py (data/README.md); exact per-frame masks give the
mean IoU over frames. Two windows of 8 frames (overlap 4).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.task = 'video'
  config.image = 'data/video/horse/frames'
  config.gt_mask = 'data/video/horse/masks'
  config.segmentation.hint_steps = 500
  config.num_steps = 300
  return config

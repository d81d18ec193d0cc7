"""The video demo: a horse walking across a garage, 12 frames of 128x96, automatic 'motion' hints.

Made by scripts/make_video.py (data/README.md); exact per-frame masks give the
mean IoU over frames. Issue 28's fast schedule (measurements in docs/video.md):
the generators work at 64 px (`max_side`; camera motion, hints and the final
mask stay at the frames' size, up to 256 px), up to 24 frames as one window
(one batch: the cost per step grows with the frames), 100 + 50 iterations at
Adam's rate 5e-3 (at 1e-3 the mask has not left its start in so few). The
'motion' hints start from the colour each pixel keeps longest
(`video.background`), and the final mask is Double-DIP's where it is sure
(`video.confident_mask`), the motion map elsewhere, refined by the guided
filter on the full-size frame (radius 3% of the longer side: the horse's legs
are 1-2 px). One step per compiled call compiles about twice as fast as the
CPU default of two (and runs as fast).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.max_side = 64  # The generators' working side (camera motion, hints and masks: the frames', up to 256 px).
  config.task = 'video'
  config.image = 'data/video/horse/frames'
  config.gt_mask = 'data/video/horse/masks'
  config.video.window_size = 24
  config.video.window_overlap = 4
  config.learning_rate = 5e-3  # Not segmentation's (configs/default.py): the schedule below was measured with it.
  config.segmentation.hint_steps = 100
  config.num_steps = 50
  config.segmentation.guided_radius = 0.03
  config.loop.strategy = 'step'
  # The 'motion' hints' background: the colour a pixel keeps longest (ddip_jax/video_hints.py), not the median;
  config.video.background = 'mode'
  # the final mask is the motion map raised to Double-DIP's where that is above 1 - this (automatic 'motion'
  # hints only; None: Double-DIP's everywhere, the old rule) ...
  config.video.confident_mask = 0.1
  # ... and lowered to it where it is below this too (True) or not (False): equal means over the 8 clips of
  # issue 28 (0.884, 0.885), True within 0.05 on moving cameras (docs/video.md).
  config.video.confident_removes = True
  return config

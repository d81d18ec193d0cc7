"""The video demo: a horse walking across a garage, 12 frames of 128x96, automatic 'motion' hints.

Made by scripts/make_video.py (data/README.md); exact per-frame masks give the
mean IoU over frames. The 12 frames are optimised as one window (one batch):
fewer compilations and fewer frame-steps than two overlapping windows of 8.
Step 1 fits the hints for 200 iterations; step 2's best reconstruction comes
within its first ~100 iterations (afterwards the input perturbations grow), so
it runs 100. The horse is small (38 px wide, legs 1-2 px), so the mask's
guided filter uses a radius of 3% of the longer side, not segmentation's 10%
(which erases the legs). With so few iterations, compiling is a large part
of the run: one step per compiled call compiles about twice as fast as the
CPU default of two (and runs as fast). Measurements in docs/video.md.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.max_side = 512  # Not segmentation's working side (configs/default.py).
  config.task = 'video'
  config.image = 'data/video/horse/frames'
  config.gt_mask = 'data/video/horse/masks'
  config.video.window_size = 12
  config.learning_rate = 1e-3  # Not segmentation's (configs/default.py): the schedule below was measured with it.
  config.segmentation.hint_steps = 200
  config.num_steps = 100
  config.segmentation.guided_radius = 0.03
  config.loop.strategy = 'step'
  # The 'motion' hints' background: 'mode' (the colour a pixel keeps longest, ddip_jax/video_hints.py) or
  # 'median' (the per-pixel median, the old hints). Only here, not in configs/default.py: see docs/video.md.
  config.video.background = 'mode'
  return config

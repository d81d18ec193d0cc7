"""Watermark removal from one image and a rough box, exactly as the official code does it (mode 'hint').

The demo (`scripts/make_watermark.py`, data/README.md) is a cat photo under a
semi-transparent text-and-logo watermark; the run reports PSNR/SSIM of the
result against the clean photo, inside the box and overall. Networks, losses
and schedule are the official ones: C and W (5 scales, 8..128 channels, skip 4
at the two deepest, kernel 5), M (4 scales, 8..64, kernel 3), step 1 4000
iterations (C only), step 2 7000, Adam lr 1e-3, 3 runs and their medians.
On 2 CPU cores this takes hours (about 33 minutes a run). On the demo it ends
with the whole box as watermark (docs/watermark.md): configs/watermark.py
is what we recommend.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.max_side = 512  # Not segmentation's working side (configs/default.py).
  config.task = 'watermark'
  config.image = 'data/watermark_chelsea.png'
  config.watermark.mode = 'hint'
  config.watermark.hint = 'data/watermark_box.png'
  config.watermark.gt_clean = 'data/watermark_chelsea_clean.png'
  config.watermark.hint_steps = 4000
  config.watermark.hint_sigma_every = 300
  config.watermark.sigma_every = 700
  config.watermark.watermark_kernel = 5
  config.watermark.mask_channels = (8, 16, 32, 64)
  config.watermark.mask_skip = (0, 0, 0, 4)
  config.num_steps = 7000
  config.learning_rate = 1e-3
  config.early_stop_psnr = 0.0  # Unused: a run's result is its last iteration.
  default.five_scale_generator(config.generator, kernel=5, input_depth=2, noise_var=0.01)
  return config

"""Watermark removal from several images sharing one watermark, no hint (mode 'many').

The demo is three photos (cat, coffee, astronaut) under the same watermark at
the same place (`scripts/make_watermark.py`); the run reports each result's
PSNR/SSIM against its clean photo, overall and inside the demo's box (for
metrics only). Official settings: one clean generator per image (5 scales,
8..128 channels, kernel 5), shared M and W (5 scales, 8..128, kernel 3), 4000
iterations, Adam lr 1e-3, perturbation 0.001 * (it // 400) on the clean
generators' inputs, 3 runs and their medians. One change of ours: the input
is kept only where W M < 0.1 (official) and the watermark also changes the
clean image by less than 0.2, max_c |M (W - C_k)|, so that a dark watermark
is removed too (docs/watermark.md).
"""

from configs import watermark_faithful


def get_config():
  config = watermark_faithful.get_config()
  config.watermark.mode = 'many'
  config.watermark.hint = None
  config.watermark.images = ('data/watermark_coffee.png', 'data/watermark_astronaut.png')
  config.watermark.gt_images = ('data/watermark_coffee_clean.png', 'data/watermark_astronaut_clean.png')
  config.watermark.eval_box = 'data/watermark_box.png'
  config.watermark.sigma_every = 400
  config.watermark.watermark_kernel = 3
  config.watermark.mask_channels = (8, 16, 32, 64, 128)
  config.watermark.mask_skip = (0, 0, 0, 4, 4)
  config.num_steps = 4000
  config.watermark.keep_from = 'both'  # Ours (official: 'watermark', which keeps everything under a dark watermark).
  return config

"""The zebra demo with the official Double-DIP segmentation schedule.

Step 1: 2000 iterations on the hints; step 2: 4000 iterations (early stop at
30 dB reconstruction PSNR), the official saliency-style automatic hints used
as they are (no hint growth) and the official post-processing (the thresholded
mask is kept whole, hints not enforced).
"""

from configs import zebra


def get_config():
  config = zebra.get_config()
  config.max_side = 512  # The official code works at the photo's own size.
  config.learning_rate = 1e-3  # Official.
  config.segmentation.hint_steps = 2000
  config.num_steps = 4000
  config.segmentation.keep_hinted_components = False
  config.segmentation.grow_hints = 'none'
  config.segmentation.auto_hints = 'saliency'
  config.segmentation.respect_hints = False
  config.segmentation.user_hint_steps = 0  # The same schedule with or without hint files.
  return config

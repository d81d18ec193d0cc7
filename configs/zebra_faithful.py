"""The zebra demo with the official Double-DIP segmentation schedule.

Step 1: 2000 iterations on the hints; step 2: 4000 iterations (early stop at
30 dB reconstruction PSNR), as in `configs/default.py`, and the official
post-processing (the thresholded mask is kept whole).
"""

from configs import default
from configs import zebra


def get_config():
  config = zebra.get_config()
  defaults = default.get_config()
  config.segmentation.hint_steps = defaults.segmentation.hint_steps
  config.num_steps = defaults.num_steps
  config.segmentation.keep_hinted_components = False
  config.segmentation.grow_hints = 'none'
  config.segmentation.auto_hints = 'saliency'
  config.segmentation.respect_hints = False
  return config

"""One additive mixture of two textures, I = R + T, exactly as the official code separates them.

The demo is the average of two tinted textures. Official texture-separation
settings: R and T generators (5 scales, 8..128 channels, kernel 5, input depth
3), L1(R + T, I) + 0.01 * exclusion, Adam lr 5e-4, 8000 iterations,
segmentation's noise perturbation schedule, and training on the 8
flips/rotations of noise and image. The run writes 2R and 2T (the layer
estimates, since the demo is (R + T) / 2) and their PSNR/SSIM against the true
textures. configs/textures.py is what we recommend (docs/transparency.md).
"""

from configs import default
from configs import transparency_faithful


def get_config():
  config = transparency_faithful.get_config()
  config.image = 'data/textures_mix.png'
  config.transparency.image2 = default.get_config().transparency.image2
  config.transparency.gt_layer1 = 'data/textures_layer1.png'
  config.transparency.gt_layer2 = 'data/textures_layer2.png'
  config.transparency.mixture = 'additive'
  config.transparency.exclusion_weight = 0.01
  config.transparency.sigma_step = 0.001
  config.transparency.augment = True
  config.num_steps = 8000
  config.learning_rate = 5e-4
  config.generator.input_depth = 3
  return config

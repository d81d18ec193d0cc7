"""Two mixtures of the same transparent layers, exactly as the official code separates them.

I_k = a_k * R + (1 - a_k) * T.

The demo mixes two photos with a_1 = 0.3, a_2 = 0.65 (`scripts/make_transparency.py`,
data/README.md); the run reports each recovered layer's PSNR/SSIM against the
true ones. Networks, losses and schedule are the official ones: R, T and two
alpha generators (5 scales, 8..128 channels, kernel 5), MSE reconstruction of
both mixtures, 0.1 * exclusion, alphas pulled to 0.5 for 1000 iterations, Adam
lr 1e-3, 7000 iterations, no noise perturbation, no early stop. On 2 CPU
cores this takes about 26 minutes at 128x96 and gives layers far from the true
ones (docs/transparency.md): configs/transparency.py is what we recommend.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.max_side = 512  # Not segmentation's working side (configs/default.py).
  config.task = 'transparency'
  config.image = 'data/transparency_mix1.png'
  config.transparency.image2 = 'data/transparency_mix2.png'
  config.transparency.gt_layer1 = 'data/transparency_layer1.png'
  config.transparency.gt_layer2 = 'data/transparency_layer2.png'
  config.transparency.mixture = 'two_mixtures'
  config.transparency.exclusion_weight = 0.1
  config.transparency.sigma_step = 0.0
  config.transparency.augment = False
  config.num_steps = 7000
  config.learning_rate = 1e-3
  config.early_stop_psnr = 0.0
  default.five_scale_generator(config.generator, kernel=5, input_depth=2, noise_var=0.01)
  return config

"""Two mixtures of the same transparent layers, I_k = a_k * R + (1 - a_k) * T, our way.

The demo mixes two photos with a_1 = 0.3, a_2 = 0.65 (`scripts/make_transparency.py`,
data/README.md); the run reports each recovered layer's PSNR/SSIM against the
true ones. The official networks and losses (`configs/transparency_faithful.py`)
with the changes that docs/transparency.md measured:
- the layers are the mixtures unmixed exactly (`transparency.unmix='refined'`)
  with the alphas of least edge overlap between the two unmixed layers,
  searched near the generators' alphas and over the whole range (no ground
  truth): with uniform weights the generators' own layers are far less
  accurate;
- `unmix_select='fit'`: the unmixed layers are kept where they stay in
  [0, 1] (the one-alpha-per-mixture model fits); otherwise, e.g. real
  reflections with spatially varying weights, the generators' layers are;
- the generators give the nearby search its start and, where the model does
  not fit, the layers; they run on a 64 px working image for 500 iterations
  (the alpha prior keeps its 1/7 share), so that a run takes about 3 minutes
  on 2 cores; the unmixing is done at full size.
docs/transparency.md has the measurements (both kinds of weights).
"""

from configs import transparency_faithful


def get_config():
  config = transparency_faithful.get_config()
  config.max_side = 64
  config.num_steps = 500
  config.transparency.alpha_prior_steps = 71
  config.transparency.unmix = 'refined'
  config.transparency.unmix_select = 'fit'
  return config

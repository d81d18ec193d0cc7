"""Two mixtures of the same transparent layers, I_k = a_k * R + (1 - a_k) * T, our way.

The demo mixes two photos with a_1 = 0.3, a_2 = 0.65 (`scripts/make_transparency.py`,
data/README.md); the run reports each recovered layer's PSNR/SSIM against the
true ones. No generator is trained (`transparency.unmix='varying'`,
`unmixing.varying_unmix`; docs/transparency.md measured each step):
- the mixtures are unmixed exactly, R = ((1 - a_2) I_1 - (1 - a_1) I_2) / (a_1 - a_2),
  T = (a_1 I_2 - a_2 I_1) / (a_1 - a_2), with the alphas of least edge overlap
  between the two unmixed layers, searched over the whole range (no ground
  truth); kept where no value leaves [0, 1] beyond 8-bit rounding (one alpha
  per mixture fits);
- otherwise (weights that vary over the image, as real reflections through
  a window) smooth weight maps A_k(x) (a 4 x 4 grid, interpolated) are fitted
  jointly with the layers to both mixtures, started from that unmixing, with
  sparse gradients for one layer and smooth ones for the other (a reflection
  is usually out of focus), the smooth layer's weight stepped down from
  strong to its final value (a continuation that finds the better split);
  one map per mixture and one per mixture and colour channel are both
  fitted, the lower objective wins.
A run takes seconds with uniform weights, about a minute otherwise (128x96, one core).
`configs/transparency_faithful.py` is the official Double-DIP method.
"""

from configs import transparency_faithful


def get_config():
  config = transparency_faithful.get_config()
  config.transparency.unmix = 'varying'
  return config

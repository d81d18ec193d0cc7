"""The zebra demo: a real zebra photo cut-out on a meadow, automatic hints.

Our default segmentation (`configs/default.py`): the automatic hints are grown
before the decomposition (`ddip_jax/grow.py`), the decomposition works at a
longer side of 128 px (results come back at 256x192) and the schedule is
500 + 300 iterations at Adam's learning rate 2e-3 (docs/speed.md, time to
result). The official schedule (2000 + 4000 iterations at 1e-3,
`configs/zebra_faithful.py`) takes about 11 minutes on two CPU cores; its
result is the step-2 output with the best reconstruction PSNR, which on the
zebra comes within the first few hundred step-2 iterations: later, the growing
input perturbations and the mask binarisation term degrade both the
reconstruction and the mask (measurements in docs/segmentation.md).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.image = 'data/zebra.png'
  config.gt_mask = 'data/zebra_mask.png'
  return config

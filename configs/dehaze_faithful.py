"""Dehazing of the motorcycle demo exactly as the official code does it.

`configs/dehaze.py` with the official choices it changes: two passes (the
second with a learned airlight map tied to the first's), He et al.'s airlight
on the working image, no prior on the transmission (t drawn whole, no radiance bound, refined by
the guided filter with eps 1e-4), a working
side of up to 799 px, 4000 iterations a pass. Measured in docs/dehaze.md.
"""

from configs import dehaze


def get_config():
  config = dehaze.get_config()
  config.dehaze.passes = 2
  config.dehaze.transmission_prior = 'none'
  config.dehaze.transmission_prior_until = 1.0
  config.dehaze.airlight = 'estimate'
  config.dehaze.prior_full_size = False
  config.dehaze.transmission_residual = 0.0
  config.dehaze.radiance_bound = False
  config.dehaze.guided_eps = 1e-4
  config.max_side = 799
  config.num_steps = 4000
  return config

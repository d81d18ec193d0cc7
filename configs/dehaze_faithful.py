"""Dehazing of the motorcycle demo exactly as the official code does it.

`configs/dehaze.py` with the official choices it changes: two passes (the
second with a learned airlight map tied to the first's) and no dark-channel
prior on the transmission. Measured in README.md ("Dehazing").
"""

from configs import dehaze


def get_config():
  config = dehaze.get_config()
  config.dehaze.passes = 2
  config.dehaze.transmission_prior = 'none'
  return config

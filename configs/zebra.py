"""The zebra demo: a real zebra photo cut-out on a meadow, automatic hints."""

from configs import default


def get_config():
  config = default.get_config()
  config.image = 'data/zebra.png'
  config.gt_mask = 'data/zebra_mask.png'
  return config

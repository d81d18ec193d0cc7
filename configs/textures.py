"""One additive mixture of two layers, I = R + T (the demo: two tinted textures averaged), our way.

The official networks and losses (`configs/textures_faithful.py`) with the
changes that docs/transparency.md measured:
- `transparency.unmix='colour'`: where each layer has one colour (a grey
  level times an RGB colour, as the tinted textures), the pixels lie on a
  plane through black; the two colours are the directions along which the
  image's edges are most independent, and the layers are each colour's share
  (`unmixing.colour_plane_unmix`; no ground truth, nothing to train);
- `unmix_select='fit'`: those layers are kept only where that model fits (the
  image on the plane within 2 levels, two distinct colours, layers in [0, 1]);
  otherwise, e.g. a photo over a texture, the generators' layers are;
- the generators run on a 64 px working image for 500 iterations (they only
  matter where the model does not fit); their layers come back at full size.
The run writes 2R and 2T (the layer estimates, since the demo is (R + T) / 2).
"""

from configs import textures_faithful


def get_config():
  config = textures_faithful.get_config()
  config.max_side = 64
  config.num_steps = 500
  config.transparency.unmix = 'colour'
  config.transparency.unmix_select = 'fit'
  return config

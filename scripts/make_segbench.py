r"""Builds the segmentation evaluation set: data/segbench/<case>/{image,mask,...}.png.

Each case is a photographic Tux Paint cut-out with alpha (birds, insects, fish,
fruit, vegetables, household objects, vehicles, instruments; never the
`animals/mammals` folder) composited onto a real photograph (Lomiri wallpapers,
Debian packages lomiri-wallpapers-16.04 and -20.04, and scikit-image's bundled
photos). Because we composite, the mask is exact. The cases vary on purpose:
object size 5-40% of the image, objects cut by the image border, a second salient
object or textured clutter next to the object, low contrast, 128x96 and 256x192.

Per case it also writes simulated user hints:
  stroke_fg.png  one thin stroke along the middle of the object (the longest
                 path of the mask's skeleton, 1-2 px wide, inside the mask);
  stroke_bg.png  a band along the image border, kept away from the object;
  box_bg.png     a rough box around the object (its bounding box grown by 10%):
                 white OUTSIDE the box, i.e. the background hint a box gives.

Usage (from the repository root):

  python scripts/make_segbench.py --stamps_root=/tmp/debx/usr/share/tuxpaint/stamps \
      --backgrounds_root=/tmp/debx/usr/share/backgrounds

The defaults are where the packages install their files; a missing file's
package is fetched with `apt-get download` + `dpkg-deb -x` into a temporary
folder (see scripts/sources.py). Needs requirements-bench.txt (scikit-image).
"""

from __future__ import annotations

import collections
import os
import sys
import tempfile

from absl import app
from absl import flags
import numpy as np
from PIL import Image
from scipy import ndimage

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO_ROOT)
from ddip_jax import image_io  # pylint: disable=g-import-not-at-top
from ddip_jax import writing  # pylint: disable=g-import-not-at-top
from scripts import sources  # pylint: disable=g-import-not-at-top

_STAMPS_ROOT = flags.DEFINE_string(
    'stamps_root', '/usr/share/tuxpaint/stamps', 'Tux Paint stamps directory (package tuxpaint-stamps-default).'
)
_BACKGROUNDS_ROOT = flags.DEFINE_string(
    'backgrounds_root', '/usr/share/backgrounds', 'Wallpapers directory (packages lomiri-wallpapers-16.04, -20.04).'
)
_OUT_DIR = flags.DEFINE_string('out_dir', os.path.join(_REPO_ROOT, 'data', 'segbench'), 'Output folder.')

_STAMPS = ('tuxpaint-stamps-default', 'usr/share/tuxpaint/stamps')
_WALLPAPER_PACKAGES = {
    '16.04': ('lomiri-wallpapers-16.04', 'usr/share/backgrounds'),
    '20.04': ('lomiri-wallpapers-20.04', 'usr/share/backgrounds'),
}
# Wallpaper file -> the package that ships it.
_WALLPAPERS = {
    'Bridge_by_Sander_Klootwijk.jpg': '16.04',
    'Dragonfly_by_Bolly.jpg': '16.04',
    'Picture_0B_by_freespace.jpg': '16.04',
    'Picture_1A_by_freespace.jpg': '16.04',
    'Wine_by_Jakkub_Mede.jpg': '16.04',
    'aitzgorri_by_Aitzol_Berasategi.jpg': '16.04',
    'analogpattern_by_Peter_Nerlich.jpg': '16.04',
    'free_by_Peter_Nerlich.jpg': '16.04',
    'friends_by_Aitzol_Berasategi.jpg': '16.04',
    'greentock_by_Peter_Nerlich.jpg': '16.04',
    'life_by_Aitzol_Berasategi.jpg': '16.04',
    'picosdeeuropa_by_Aitzol_Berasategi.jpg': '16.04',
    'seeding_by_Clements_Engelhardt.jpg': '16.04',
    'sunset_by_Aitzol_Berasategi.jpg': '16.04',
    'Kleiber_by_Lukas_Baubkus.jpg': '20.04',
}

# An object: (stamp path below the stamps root, area as a fraction of the image,
# centre (x, y) as fractions of the image width and height; outside [0, 1] cuts it).
Obj = collections.namedtuple('Obj', 'stamp area x y')
# A case: size (W, H); background: a wallpaper file or 'skimage:<file>'; crop: (cx, cy, w)
# as fractions of the photo (the crop has the output's aspect ratio); the object;
# distractors: further cut-outs that are NOT foreground (a second salient object).
Case = collections.namedtuple('Case', 'name size background crop obj distractors what')

_SMALL, _LARGE = (128, 96), (256, 192)
CASES = (
    Case(
        'crow_sky',
        _SMALL,
        'Bridge_by_Sander_Klootwijk.jpg',
        (0.5, 0.35, 0.5),
        Obj('animals/birds/crow.png', 0.20, 0.5, 0.5),
        (),
        'dark bird, sky with cables',
    ),
    Case(
        'heron_hills',
        _SMALL,
        'aitzgorri_by_Aitzol_Berasategi.jpg',
        (0.45, 0.6, 0.6),
        Obj('animals/birds/heron_greatblue.png', 0.22, 0.55, 0.5),
        (),
        'grey heron, autumn hills',
    ),
    Case(
        'grasshopper_green',
        _SMALL,
        'analogpattern_by_Peter_Nerlich.jpg',
        (0.4, 0.5, 0.4),
        Obj('animals/insects/grasshopper.png', 0.15, 0.5, 0.55),
        (),
        'low contrast: green on green',
    ),
    Case(
        'hen_forest',
        _SMALL,
        'aitzgorri_by_Aitzol_Berasategi.jpg',
        (0.3, 0.55, 0.35),
        Obj('animals/birds/hen.png', 0.20, 0.45, 0.55),
        (),
        'low contrast: brown hen, autumn trees',
    ),
    Case(
        'lorikeet_leaves',
        _SMALL,
        'Dragonfly_by_Bolly.jpg',
        (0.45, 0.5, 0.55),
        Obj('animals/birds/rainbow-lorikeet.png', 0.12, 0.45, 0.5),
        (),
        'colourful bird in foliage clutter',
    ),
    Case(
        'drake_stream',
        _SMALL,
        'life_by_Aitzol_Berasategi.jpg',
        (0.5, 0.6, 0.6),
        Obj('animals/birds/drake.png', 0.15, 0.08, 0.6),
        (),
        'cut by the left border, stream and rocks',
    ),
    Case(
        'mantis_dandelions',
        _SMALL,
        'seeding_by_Clements_Engelhardt.jpg',
        (0.35, 0.6, 0.4),
        Obj('animals/insects/mantis.png', 0.10, 0.5, 0.5),
        (),
        'thin legs, bright clutter',
    ),
    Case(
        'toucan_trunk',
        _SMALL,
        'Kleiber_by_Lukas_Baubkus.jpg',
        (0.35, 0.5, 0.5),
        Obj('animals/birds/tucan.png', 0.18, 0.62, 0.45),
        (),
        'next to a textured tree trunk',
    ),
    Case(
        'fish_bowl',
        _SMALL,
        'Picture_0B_by_freespace.jpg',
        (0.8, 0.3, 0.3),
        Obj('animals/fish/stripedfish.png', 0.07, 0.5, 0.5),
        (),
        'small object (7%) on a red bowl',
    ),
    Case(
        'pineapple_brushes',
        _SMALL,
        'Picture_1A_by_freespace.jpg',
        (0.5, 0.5, 0.8),
        Obj('food/fruit/pineapple.png', 0.25, 0.5, 0.75),
        (),
        'cut by the bottom border, colourful clutter',
    ),
    Case(
        'broccoli_green',
        _SMALL,
        'analogpattern_by_Peter_Nerlich.jpg',
        (0.7, 0.4, 0.4),
        Obj('food/vegetables/broccoli.png', 0.22, 0.5, 0.5),
        (),
        'low contrast: green on green texture',
    ),
    Case(
        'kettle_room',
        _SMALL,
        'Wine_by_Jakkub_Mede.jpg',
        (0.5, 0.45, 0.9),
        Obj('household/kettle.png', 0.15, 0.35, 0.55),
        (),
        'indoor clutter',
    ),
    Case(
        'teapot_apple',
        _SMALL,
        'greentock_by_Peter_Nerlich.jpg',
        (0.5, 0.5, 0.6),
        Obj('household/dishes/teapot.png', 0.16, 0.4, 0.5),
        (Obj('food/fruit/apple_fuji.png', 0.06, 0.8, 0.65),),
        'second salient object (a red apple)',
    ),
    Case(
        'duck_dogs',
        _SMALL,
        'friends_by_Aitzol_Berasategi.jpg',
        (0.5, 0.55, 0.9),
        Obj('household/rubberduck.png', 0.06, 0.7, 0.75),
        (),
        'small object; dogs in the background',
    ),
    Case(
        'beetle_road',
        _SMALL,
        'picosdeeuropa_by_Aitzol_Berasategi.jpg',
        (0.5, 0.7, 0.5),
        Obj('vehicles/auto/beetle.png', 0.12, 0.9, 0.65),
        (),
        'cut by the right border',
    ),
    Case(
        'pumpkin_grass',
        _SMALL,
        'skimage:grass.png',
        (0.5, 0.5, 0.7),
        Obj('food/vegetables/pumpkin_small.png', 0.30, 0.5, 0.5),
        (),
        'large object on grass texture',
    ),
    Case(
        'pelican_lamp',
        _SMALL,
        'free_by_Peter_Nerlich.jpg',
        (0.45, 0.5, 0.7),
        Obj('animals/birds/pelican.png', 0.20, 0.35, 0.6),
        (),
        'lamps and a bird in the background',
    ),
    Case(
        'daffodil_gravel',
        _SMALL,
        'skimage:gravel.png',
        (0.5, 0.5, 0.7),
        Obj('plants/flowers/daffodil.png', 0.35, 0.5, 0.5),
        (),
        'large flower on gravel',
    ),
    Case(
        'peacock_hills',
        _LARGE,
        'aitzgorri_by_Aitzol_Berasategi.jpg',
        (0.5, 0.55, 0.7),
        Obj('animals/birds/peacock.png', 0.30, 0.5, 0.62),
        (),
        'large, cut by the bottom border',
    ),
    Case(
        'ostrich_mountains',
        _LARGE,
        'picosdeeuropa_by_Aitzol_Berasategi.jpg',
        (0.4, 0.6, 0.6),
        Obj('animals/birds/ostrich.png', 0.20, 0.45, 0.55),
        (),
        'thin legs and neck',
    ),
    Case(
        'violin_room',
        _LARGE,
        'Wine_by_Jakkub_Mede.jpg',
        (0.5, 0.7, 0.9),
        Obj('hobbies/music/string/violin.png', 0.14, 0.6, 0.5),
        (),
        'low contrast: brown on wood',
    ),
    Case(
        'trumpet_sky',
        _LARGE,
        'Bridge_by_Sander_Klootwijk.jpg',
        (0.5, 0.6, 0.6),
        Obj('hobbies/music/brass/trumpet.png', 0.12, 0.5, 0.45),
        (),
        'thin shape',
    ),
    Case(
        'magpie_anemone',
        _LARGE,
        'life_by_Aitzol_Berasategi.jpg',
        (0.5, 0.5, 0.5),
        Obj('animals/birds/magpie.png', 0.15, 0.4, 0.5),
        (Obj('plants/flowers/anemone_red.png', 0.07, 0.78, 0.3),),
        'second salient object (a red flower)',
    ),
    Case(
        'grinder_sunset',
        _LARGE,
        'sunset_by_Aitzol_Berasategi.jpg',
        (0.5, 0.6, 0.5),
        Obj('household/dishes/utensils/pepper_grinder.png', 0.05, 0.3, 0.6),
        (),
        'small (5%), backlit scene',
    ),
)


def _crop_box(photo_size: tuple[int, int], crop: tuple[float, float, float], aspect: float) -> tuple[int, ...]:
  """Pixel box (l, t, r, b) of a crop centred at (cx, cy) of width w (fractions), aspect W/H."""
  pw, ph = photo_size
  cx, cy, wf = crop
  w = wf * pw
  h = w / aspect
  if h > ph:
    h, w = ph, ph * aspect
  left = min(max(cx * pw - w / 2, 0), pw - w)
  top = min(max(cy * ph - h / 2, 0), ph - h)
  return round(left), round(top), round(left + w), round(top + h)


def _paste(image: np.ndarray, stamp: Image.Image, obj: Obj) -> np.ndarray:
  """Composites `stamp` onto `image` in place; returns the object's (H, W) alpha."""
  height, width = image.shape[:2]
  rgba_alpha = np.asarray(stamp.convert('RGBA'), np.float32)[..., 3] / 255.0
  coverage = (rgba_alpha >= 0.5).mean()  # Opaque fraction of the stamp's own box.
  box_area = obj.area * height * width / max(coverage, 1e-3)
  w = max(4, round(np.sqrt(box_area * stamp.width / stamp.height)))
  colour, alpha = sources.scaled_cutout(stamp, w)
  h = alpha.shape[0]
  top, left = round(obj.y * height - h / 2), round(obj.x * width - w / 2)
  full_alpha = np.zeros((height, width), np.float32)
  ys, xs = slice(max(top, 0), min(top + h, height)), slice(max(left, 0), min(left + w, width))
  sy, sx = slice(ys.start - top, ys.stop - top), slice(xs.start - left, xs.stop - left)
  image[ys, xs] = colour[sy, sx] + image[ys, xs] * (1.0 - alpha[sy, sx])
  full_alpha[ys, xs] = alpha[sy, sx, 0]
  return full_alpha


def longest_skeleton_path(mask: np.ndarray) -> np.ndarray:
  """The longest path (in pixels) of the skeleton of the mask's largest region, (H, W) bool."""
  from skimage import morphology  # pylint: disable=g-import-not-at-top

  labels, n = ndimage.label(mask)
  if n == 0:
    return np.zeros_like(mask, bool)
  largest = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
  skeleton = morphology.skeletonize(largest)
  points = {tuple(p) for p in np.argwhere(skeleton)}

  def farthest(start):
    dist, parent, frontier = {start: 0}, {start: None}, [start]
    while frontier:
      nxt = []
      for y, x in frontier:
        for dy in (-1, 0, 1):
          for dx in (-1, 0, 1):
            q = (y + dy, x + dx)
            if q in points and q not in dist:
              dist[q], parent[q] = dist[(y, x)] + 1, (y, x)
              nxt.append(q)
      frontier = nxt
    end = max(dist, key=lambda p: (dist[p], p))
    return end, parent

  a, _ = farthest(min(points))
  b, parent = farthest(a)
  path = np.zeros_like(mask, bool)
  while b is not None:
    path[b] = True
    b = parent[b]
  return path


def simulated_hints(mask: np.ndarray) -> dict[str, np.ndarray]:
  """A user's hints for `mask` (module docstring): stroke_fg, stroke_bg, box_bg, (H, W) bool."""
  height, width = mask.shape
  fg = mask > 0.5
  stroke = longest_skeleton_path(fg)
  if max(height, width) > 160:  # 2-3 px wide at 256 px, 1 px at 128 px.
    stroke = ndimage.binary_dilation(stroke)
  stroke &= fg
  band = max(3, round(0.04 * min(height, width)))
  border = np.zeros_like(fg)
  border[:band], border[-band:], border[:, :band], border[:, -band:] = True, True, True, True
  near_object = ndimage.binary_dilation(fg, iterations=max(3, round(0.04 * max(height, width))))
  ys, xs = np.nonzero(fg)
  my, mx = 0.1 * (ys.max() - ys.min() + 1) + 2, 0.1 * (xs.max() - xs.min() + 1) + 2
  box = np.zeros_like(fg)
  box[
      max(0, round(ys.min() - my)) : round(ys.max() + my) + 1, max(0, round(xs.min() - mx)) : round(xs.max() + mx) + 1
  ] = True
  return {'stroke_fg': stroke, 'stroke_bg': border & ~near_object, 'box_bg': ~box}


def compose(case: Case, stamps_root: str, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The composite (H, W, 3) and exact mask (H, W) of one case, from its cropped background."""
  image = background.copy()
  with Image.open(os.path.join(stamps_root, case.obj.stamp)) as stamp:
    alpha = _paste(image, stamp, case.obj)
  for d in case.distractors:  # Drawn after the object, so they may occlude it a little.
    with Image.open(os.path.join(stamps_root, d.stamp)) as stamp:
      other = _paste(image, stamp, d)
    alpha = alpha * (1 - other)
  return np.clip(image, 0, 1), (alpha >= 0.5).astype(np.float32)


def _background(case: Case, roots: dict[str, str]) -> np.ndarray:
  width, height = case.size
  if case.background.startswith('skimage:'):
    path = os.path.join(sources.skimage_data_dir(), case.background.split(':', 1)[1])
  else:
    path = os.path.join(roots[_WALLPAPERS[case.background]], case.background)
  with Image.open(path) as im:
    box = _crop_box(im.size, case.crop, width / height)
    pixels = np.asarray(im.convert('RGB').crop(box), np.float32) / 255.0
  if case.background.startswith('skimage:'):  # Grey textures: a natural tint.
    tint = {'grass.png': (0.55, 0.8, 0.35), 'gravel.png': (0.95, 0.85, 0.7)}[case.background.split(':')[1]]
    pixels = pixels.mean(-1, keepdims=True) * np.asarray(tint, np.float32)
  return image_io.resize_image(pixels, (height, width)).clip(0, 1)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  with tempfile.TemporaryDirectory() as workdir:
    stamps_root = _STAMPS_ROOT.value
    if not os.path.isdir(os.path.join(stamps_root, 'animals')):
      stamps_root = os.path.dirname(
          os.path.dirname(sources.package_file((*_STAMPS, 'animals/birds/crow.png'), stamps_root, workdir, ''))
      )
    roots = {}
    for key, (package, pkg_root) in _WALLPAPER_PACKAGES.items():
      any_file = next(f for f, k in _WALLPAPERS.items() if k == key)
      path = os.path.join(_BACKGROUNDS_ROOT.value, any_file)
      if not os.path.isfile(path):
        sub = os.path.join(workdir, key)
        os.makedirs(sub)
        path = sources.package_file((package, pkg_root, any_file), _BACKGROUNDS_ROOT.value, sub, '')
      roots[key] = os.path.dirname(path)
    for case in CASES:
      image, mask = compose(case, stamps_root, _background(case, roots))
      out = os.path.join(_OUT_DIR.value, case.name)
      os.makedirs(out, exist_ok=True)
      writing.save_image(os.path.join(out, 'image.png'), image)
      writing.save_image(os.path.join(out, 'mask.png'), mask)
      for name, hint in simulated_hints(mask).items():
        writing.save_image(os.path.join(out, f'{name}.png'), hint.astype(np.float32))
      print(f'{case.name:20s} {case.size[0]}x{case.size[1]} object {mask.mean():5.1%}  {case.what}')


if __name__ == '__main__':
  app.run(main)

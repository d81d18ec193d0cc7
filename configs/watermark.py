"""Watermark removal from one image with a rough box around the watermark (mode 'hint'), our way.

The demo (`scripts/make_watermark.py`, data/README.md) is a cat photo under a
semi-transparent text-and-logo watermark; the run reports PSNR/SSIM of the
result against the clean photo, inside the box and overall. The official
networks and losses (`configs/watermark_faithful.py`), with changes of ours
that the evaluation in docs/watermark.md measured:
- the mark is found in the box by a graph cut of its blend (`clean_from='cut'`,
  since 2026-12-06, `ddip_jax/watermark_cut.py`): for candidate opacities and
  colours, each pixel's coverage minimises the box's total variation once
  de-blended plus how unlike the box's surroundings the de-blended colours
  are (alpha-expansion, exact minimum cuts), scored against what the same
  blend gains on a ring around the box; it finds filled logos and coloured
  marks that the earlier top-hat strokes (`clean_from='fit_tv'` with
  `stroke_polarity='auto'`, the default before) missed. C inpaints only the
  mark's pixels and every other pixel keeps the input;
- the clean image is the input de-blended with that opacity, colour and
  coverage, which keeps the photo's texture under the mark; a self-check
  without ground truth (`watermark_cut.cut_check`: the mark must cover some
  pixels, the blend must explain the box far better than the photo around it
  (specificity >= 0.6), a white, black or grey blend must not be nearly as
  well explained by a far colour (ambiguity <= 0.4: then the photo's own
  highlights or shadows are what it removes), and on the mark the result must
  be closer to Double-DIP's C than the input is) keeps the input when the removal is not
  trustworthy, and says so in metrics.json (`self_check`, and `cut`: the
  mark's opacity, colour, covered pixels and scores);
- no step 2 (`num_steps = 0`): the cut's clean image, mask.png and
  watermark.png are made of the input, the cut's mark and step 1's C (for the
  self-check), never of step 2's M and W, so W and M are neither initialised
  nor trained and nothing of step 2 is compiled. Its one iteration, which the
  earlier default ran, cost a compile of all three generators: on one core
  the demo took 89-90 s cold and 31 s with a warm compilation cache, now 45 s
  and 21-24 s, with the same clean.png (on both cores of an idle machine: 29 s
  cold, 19 s warm). Without M and W there is no
  clean_deblend.png nor clean_soft.png; `--config.num_steps=N` (N >= 1)
  brings step 2 back, learning M and W on top of step 1's C
  (`step2_trains_clean=False`);
- C's generator has 3x3 kernels (official 5x5; 2.5x the iterations a second,
  as good) and step 1 500 iterations (official 4000; +0.3 dB in the box over
  300 on four cases, docs/watermark.md): 18-27 s a 128x96 image on one core
  once compiled;
- one run instead of the official three (their per-pixel medians);
  `--config.watermark.runs=3` for the medians.
"""

from configs import watermark_faithful


def get_config():
  config = watermark_faithful.get_config()
  config.watermark.stroke_polarity = 'none'  # Unused with 'cut' (the cut finds the mark).
  config.watermark.step2_trains_clean = False
  config.watermark.clean_from = 'cut'
  config.watermark.hint_steps = 500
  config.num_steps = 0  # No step 2: the cut does not use M and W (docstring).
  config.watermark.runs = 1
  config.generator.kernel_down = 3
  config.generator.kernel_up = 3
  return config

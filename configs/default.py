"""Default configuration: every field, with the official Double-DIP defaults unless a comment says otherwise.

Task configs (`configs/zebra.py`, ...) import this file and override fields.
Any field can be overridden from the command line, e.g. `--config.num_steps=500`.
"""

from ml_collections import config_dict


def get_config() -> config_dict.ConfigDict:
  config = config_dict.ConfigDict()
  config.task = 'segmentation'  # One of the tasks in ddip_jax.tasks.TASKS.
  config.image = config_dict.placeholder(str)  # Input image path.
  config.fg_hint = config_dict.placeholder(str)  # PNG, white = surely foreground; automatic if unset.
  config.bg_hint = config_dict.placeholder(str)  # PNG, white = surely background; automatic if unset.
  config.gt_mask = config_dict.placeholder(str)  # Ground-truth foreground mask PNG (for IoU only).
  config.seed = 0  # Root PRNG seed: same config + seed -> same outputs.
  config.restarts = 1  # Runs with seeds seed .. seed + restarts - 1; keeps the best by the task's selection metric.
  config.inputs = config_dict.placeholder(str)  # Many images: comma-separated paths or globs; replaces `image`.
  config.max_side = (
      128  # Larger inputs are downscaled to this side; results come back at full size (the mask refined by
  )
  # the guided filter guided by the full-size photo). Time grows with the pixels: 256 takes about 4x as long.

  config.num_steps = (
      300  # Iterations of the main stage (segmentation: step 2; official 4000, see configs/zebra_faithful.py).
  )
  config.learning_rate = (
      2e-3  # Adam learning rate: segmentation's (official 1e-3; with it step 1 fits the hints in half
  )
  # the iterations, docs/speed.md); the other tasks' configs set their own.
  config.early_stop_psnr = 30.0  # Stop the main stage once reconstruction PSNR exceeds this (dB); <= 0 disables.

  # The DIP generators (official "skip" network) and their noise inputs.
  config.generator = config_dict.ConfigDict()
  config.generator.channels_down = (8, 16, 32)  # Channels of each scale's downsampling branch.
  config.generator.channels_up = (8, 16, 32)  # Channels of each scale's upsampling branch.
  config.generator.channels_skip = (0, 0, 0)  # Skip-branch channels per scale (0: none).
  config.generator.kernel_down = 3  # Kernel size of downsampling convolutions.
  config.generator.kernel_up = 3  # Kernel size of upsampling convolutions.
  config.generator.negative_slope = 0.2  # LeakyReLU slope.
  config.generator.upsample_mode = 'bilinear'  # 'bilinear' or 'nearest'.
  config.generator.dtype = 'float32'  # Convolution compute dtype: 'float32' or 'bfloat16' (GPU).
  config.generator.input_depth = 2  # Channels of the noise input.
  config.generator.noise_var = 0.01  # Noise is uniform in (-var/2, var/2).
  config.generator.noise_method = 'noise'  # 'noise' or 'meshgrid'.

  # Foreground/background segmentation: I = m * fg + (1 - m) * bg.
  config.segmentation = config_dict.ConfigDict()
  config.segmentation.hint_steps = (
      500  # Step 1: fit fg/bg/mask to the hints (official 2000; docs/speed.md: time to result).
  )
  config.segmentation.user_hint_steps = (
      200  # Step 1 is at most this when a hint file is given: the grown hints are dense, they fit fast.
  )
  config.segmentation.user_num_steps = (
      200  # Step 2 likewise (at most this instead of `num_steps`); 0 for either: no cap.
  )
  config.segmentation.user_learning_rate = 1e-3  # And Adam's rate then (0: `learning_rate`): 200 + 200 with 2e-3 scored
  # 0.825 against 0.832 with stroke hints (docs/segmentation.md).
  config.segmentation.hint_phase = 1000  # Step 2 keeps the hint terms for it <= this.
  config.segmentation.recon_weight = 0.5  # Weight of L1(m*fg + (1-m)*bg, I) in step 2.
  config.segmentation.gray_weight = 0.001  # GrayLoss weight per 100 its, ramped up to it=1000.
  config.segmentation.sigma_step = 0.001  # Perturbation: sigma_step * (it // 100) for it < 1000, then sigma_step.
  config.segmentation.auto_hints = 'object'  # Automatic hints when none are given: 'object', 'saliency' (official-like), 'border'; see ddip_jax/hints.py.
  config.segmentation.guided_radius = 0.1  # Guided-filter radius as a fraction of the longer side (0: off).
  config.segmentation.guided_eps = 1e-4  # Guided-filter regulariser.
  config.segmentation.threshold = 0.5  # Threshold of the refined mask.
  config.segmentation.grow_hints = 'auto'  # Grow sparse hints before decomposing (ddip_jax/grow.py): 'select', 'grabcut', 'auto' ('select' for a user's fg hint, else 'grabcut') or 'none' (official).
  config.segmentation.grow_margin = (
      0.02  # Unhinted band on each side of the grown boundary, fraction of the longer side.
  )
  config.segmentation.respect_hints = True  # Hinted pixels keep their hint's side in the final mask (False: official).
  config.segmentation.keep_hinted_components = True  # Drop mask regions not touching the fg hint (False: official).

  # Transparent layers (task 'transparency'): layers R (layer1) and T (layer2); see tasks/transparency.py.
  config.transparency = config_dict.ConfigDict()
  config.transparency.mixture = (
      'two_mixtures'  # 'two_mixtures': I_k = a_k R + (1 - a_k) T (image, image2); 'additive': image = R + T.
  )
  config.transparency.image2 = config_dict.placeholder(
      str
  )  # The second mixture of the same layers (two_mixtures only).
  config.transparency.gt_layer1 = config_dict.placeholder(str)  # Ground-truth layer PNG, for PSNR/SSIM only (optional).
  config.transparency.gt_layer2 = config_dict.placeholder(str)  # The other ground-truth layer (give both or neither).
  config.transparency.alpha = 'generator'  # a_k: 'generator' (alpha DIP's centre pixel, official), 'scalar' (learnable number), 'map' (alpha DIP's full map).
  config.transparency.alpha_prior_weight = 0.5  # Weight of MSE(a_k, 0.5) for each mixture ...
  config.transparency.alpha_prior_steps = 1000  # ... applied for it < this.
  config.transparency.exclusion_weight = 0.1  # Weight of Exclusion(R, T) (official: 0.1 two_mixtures, 0.01 additive).
  config.transparency.sigma_step = (
      0.0  # Noise perturbation, segmentation's schedule with this step; 0: none (official two_mixtures).
  )
  config.transparency.augment = (
      False  # Train on the 8 flips/rotations of noise and image (official additive); square canvas.
  )
  config.transparency.unmix = 'none'  # Scalar alphas: also unmix exactly, 'learned' (learned alphas) or 'refined' (edge overlap); 'varying': smooth weight maps, no generator (two mixtures); 'colour': colour-plane unmixing (one additive mixture).
  config.transparency.unmix_select = 'loss'  # Keep the unmixed layers: 'loss' (if they lower the loss without the prior), 'always' or 'fit' (if they stay in [0, 1]).
  config.transparency.refine_radius = 0.15  # 'refined': the alpha search box's half-width around the learned alphas.
  config.transparency.unmix_min_gap = 0.05  # Unmixing is not tried with |a_1 - a_2| below this (it divides by it).

  # Single-image dehazing (task 'dehaze'): I = t J + (1 - t) A; see tasks/dehaze.py.
  config.dehaze = config_dict.ConfigDict()
  config.dehaze.gt_clean = config_dict.placeholder(str)  # Ground-truth haze-free PNG, for PSNR/SSIM only (optional).
  config.dehaze.passes = 2  # Passes; pass k > 1 dehazes pass k-1's output with a learned airlight tied to its A.
  config.dehaze.airlight = 'estimate'  # First pass's A: 'estimate' (dark channel prior), 'given' (airlight_rgb), 'learned' (a DIP map tied to the estimate).
  config.dehaze.airlight_rgb = config_dict.placeholder(tuple)  # The airlight for 'given': (R, G, B) in (0, 1].
  config.dehaze.dcp_patch = 15  # Dark-channel window side (odd), for the airlight estimate.
  config.dehaze.dcp_top_fraction = (
      1e-4  # Airlight estimate: max colour over this fraction of brightest dark-channel pixels.
  )
  config.dehaze.sigma = 1 / 30  # Std of the noise added to J's and A's inputs every iteration but the last.
  config.dehaze.transmission_std_weight = 0.005  # Weight of StdLoss(t).
  config.dehaze.transmission_prior = (
      'none'  # 'dark_channel': pull t to He et al.'s estimate 1 - omega * dark(I / A) (ours; official: 'none').
  )
  config.dehaze.transmission_prior_weight = 1.0  # Weight of MSE(t, t_prior).
  config.dehaze.transmission_prior_until = 1.0  # The prior term applies for the first this fraction of the iterations.
  config.dehaze.dcp_omega = 0.95  # He et al.'s omega in the dark-channel transmission prior.
  config.dehaze.transmission_residual = 0.0  # > 0 (needs prior_full_size): t = the prior + a correction of at most this drawn by t's generator; 0: t drawn whole (official).
  config.dehaze.prior_full_size = False  # Estimate A and the (guided-filter refined) prior t on the full-size input, then shrink t to the working size; False: both on the working image.
  config.dehaze.radiance_bound = False  # Raise the prior t to the bound J <= 1 (Meng et al. 2013's boundary constraint, upper side).
  config.dehaze.airlight_std_weight = 0.1  # Weight of StdLoss(A), learned airlight only.
  config.dehaze.airlight_tie_steps = 1000  # Learned airlight: MSE(A, A0) for it < this.
  config.dehaze.guided_radius = (
      0.0625  # Guided-filter radius of t as a fraction of the longer side (50 px at 800 px); 0: off.
  )
  config.dehaze.guided_eps = 1e-4  # Guided-filter regulariser.
  config.dehaze.guided_opencv = (
      True  # OpenCV guidedFilter's borders and determinant guard (official); False: He et al.'s.
  )
  config.dehaze.t_min = 0.1  # The refined t is clipped to [t_min, 1] before J is recovered.

  # Video foreground/background decomposition (task 'video'); see tasks/video.py. `image` is a folder of
  # frames or an animated GIF; fg_hint, bg_hint, gt_mask a folder of per-frame masks or one mask for all
  # frames. The losses, schedule and mask post-processing are the `segmentation` section's.
  config.video = config_dict.ConfigDict()
  config.video.auto_hints = (
      'motion'  # Automatic hints: 'motion' (what differs from the clip's median), or 'saliency'/'border' per frame.
  )
  config.video.window_size = 8  # Frames optimised together (one batch); 0: the whole clip at once.
  config.video.window_overlap = 2  # Frames shared by consecutive windows (blended), < window_size.
  config.video.noise_correlation = (
      0.8  # Frame f's input = this * frame f-1's + sqrt(1 - this^2) * fresh noise (same statistics every frame).
  )
  config.video.align = 'auto'  # 'auto': estimate camera motion (align.py), decompose in the middle frame's coordinates when the camera moves; 'off': assume a static camera.
  config.video.match_lighting = (
      True  # 'motion' hints divide out each frame's global gain first (a clip that darkens does not move); False: off.
  )
  config.video.background = 'median'  # The 'motion' hints' background: 'median' (per pixel over the frames) or 'mode' (the colour a pixel keeps longest; configs/video.py).
  config.video.confident_mask = config_dict.placeholder(
      float
  )  # Set (e.g. 0.1): the final mask is the motion map raised to Double-DIP's where it is above 1 - this ('motion' hints only); None: Double-DIP's.
  config.video.confident_removes = (
      False  # With confident_mask: also lowered to Double-DIP's where it is below confident_mask.
  )
  config.video.static_background = True  # One background input for all frames (static camera); False: coherent noise.
  config.video.background_weight = (
      0.5  # Step 2: weight of mean(b m), b ~ 1 where the background layer draws the frame; 0: off.
  )
  config.video.temporal_weight = (
      0.0  # Step 2: weight of mean(w |m_f - m_{f-1}|), w ~ 1 where the frames do not change; 0: off.
  )
  config.video.colour_sigma = 0.05  # Colour difference at which b and w are exp(-1/2).
  config.video.gif_duration_ms = 100  # Display time of each frame in the output GIFs.
  config.video.summary_frames = 4  # Frames (columns) shown in summary.png.

  # Watermark removal (task 'watermark'): I = M W + (1 - M) C, runs' medians; see tasks/watermark.py.
  config.watermark = config_dict.ConfigDict()
  config.watermark.mode = (
      'hint'  # 'hint': `image` + a box around the watermark; 'many': `image` + `watermark.images` share one watermark.
  )
  config.watermark.hint = config_dict.placeholder(
      str
  )  # Mode 'hint': PNG, white inside a rough box around the watermark.
  config.watermark.images = config_dict.placeholder(
      tuple
  )  # Mode 'many': the other images with the same watermark (resized to `image`'s size).
  config.watermark.gt_clean = config_dict.placeholder(
      str
  )  # Ground truth of `image` without the watermark, for PSNR/SSIM only (optional).
  config.watermark.gt_images = config_dict.placeholder(
      tuple
  )  # Mode 'many': ground truths of `watermark.images`, same order (with gt_clean).
  config.watermark.eval_box = config_dict.placeholder(
      str
  )  # PNG whose white region's bounding box is where 'in box' metrics are taken (default: the hint).
  config.watermark.runs = 3  # Independent runs (own noise and init); the layers are their per-pixel medians.
  config.watermark.batch_runs = 'auto'  # 'sequential', 'batched' (jax.vmap over the runs' parameters) or 'auto': sequential on CPU, batched elsewhere.
  config.watermark.hint_steps = (
      4000  # Mode 'hint' step 1 (C only, fit outside the box); `num_steps` is step 2 (or mode 'many''s one stage).
  )
  config.watermark.hint_sigma_every = 300  # Step 1 input perturbation: sigma_step * (it // this).
  config.watermark.sigma_every = (
      700  # Main stage input perturbation: sigma_step * (it // this) (official: 700 'hint', 400 'many').
  )
  config.watermark.sigma_step = 0.001  # Perturbation increment (C's input; W's too in step 2 of 'hint').
  config.watermark.recon_weight = 0.5  # Mode 'hint' step 2: weight of L1(h M W + (1 - M) C, I).
  config.watermark.mask_weight = (
      0.0  # Mode 'hint' step 2: weight of ExtL1(M, 0, h), M's mean in the box (ours; official: 0).
  )
  config.watermark.augment = (
      True  # Every 4th iteration trains on a flip / half turn of noise and image (official); square canvas.
  )
  config.watermark.mask_channels = (
      8,
      16,
      32,
      64,
  )  # Channels (down = up) of each scale of M's generator (official 'hint'; 'many': 8..128).
  config.watermark.mask_skip = (0, 0, 0, 4)  # Skip channels of each scale of M's generator.
  config.watermark.mask_kernel = 3  # Kernel size of M's generator.
  config.watermark.watermark_kernel = (
      5  # Kernel size of W's generator, otherwise `generator` (official: 5 'hint', 3 'many').
  )
  config.watermark.keep_threshold = (
      0.1  # Pixels whose recovered watermark (h M; 'many': W M) is below this keep the input.
  )
  config.watermark.keep_from = 'watermark'  # Mode 'many': keep the input where W M < keep_threshold ('watermark', official, per channel), max_c |M (W - C_k)| < effect_threshold ('effect'; ours) or both ('both'; ours).
  config.watermark.effect_threshold = 0.2  # Mode 'many', keep_from 'effect' or 'both': see keep_from.
  config.watermark.watermark_model = (
      'generator'  # W: 'generator' (a DIP generator, official) or 'colour' (one learned RGB colour; ours).
  )
  config.watermark.exclusion_weight = 0.0  # Mode 'hint' step 2: weight of exclusion_loss(C, h M W), edges of C apart from the watermark's (ours; official: 0).
  config.watermark.clean_from = 'generator'  # Mode 'hint': clean inside the box from C ('generator', official), (I - M W) / (1 - M) ('deblend'), the de-blending fit of least total variation on the top-hat strokes ('fit_tv'), or on the mark a graph cut of its blend finds ('cut'; configs/watermark.py).
  config.watermark.max_opacity = 0.9  # 'deblend': M is clipped to this (< 1) before dividing by 1 - M.
  config.watermark.stroke_polarity = 'none'  # Mode 'hint': 'none' (official: the box is the hint) or the strokes found in it, 'light' / 'dark' / 'auto' (ours).
  config.watermark.step2_trains_clean = (
      True  # Mode 'hint': step 2 trains C too (official) or only M and W (False; ours).
  )
  config.watermark.stroke_width = (
      5  # Mode 'hint', stroke_polarity != 'none': disk diameter (px, odd) of the top-hat, wider than the strokes.
  )

  # How the engine runs (numerics do not depend on these, but for float rounding with cpu_convolutions).
  config.loop = config_dict.ConfigDict()
  config.loop.strategy = 'auto'  # 'auto', 'step', 'unroll' or 'scan'.
  config.loop.steps_per_call = 2  # Steps per compiled call for 'unroll' / 'scan'.
  config.loop.check_every = 10  # Steps between early-stop / NaN checks.
  config.loop.num_perturbations = 1  # Noise perturbations per step, batched with jax.vmap.
  config.loop.checkpoint_every = 500  # Steps between checkpoints in the workdir (0: none); a rerun resumes.
  config.loop.cpu_convolutions = (
      'eigen'  # XLA:CPU convolution kernels: 'eigen' (faster here) or 'xla_default' (YNNPACK).
  )
  config.progress = True  # Show a progress bar.
  return config


def five_scale_generator(generator: config_dict.ConfigDict, *, kernel: int, input_depth: int, noise_var: float) -> None:
  """Sets `generator` to the official 5-scale net (8..128 channels, skip 4 at the two deepest scales).

  Transparency, watermark and dehazing all use it; they differ in kernel size and noise input.
  """
  generator.channels_down = (8, 16, 32, 64, 128)
  generator.channels_up = (8, 16, 32, 64, 128)
  generator.channels_skip = (0, 0, 0, 4, 4)
  generator.kernel_down = kernel
  generator.kernel_up = kernel
  generator.input_depth = input_depth
  generator.noise_var = noise_var

"""Watermark removal: I = M * W + (1 - M) * C, a clean image C under a watermark W of opacity M.

Two modes, chosen by `watermark.mode`:

'hint' (one image I and a rough hint h: 1 inside a box around the watermark).
  Generators 'clean' (C) and 'watermark' (W), 3 channels, and 'mask' (M), 1
  channel, each with its own noise. Two stages:
    step 1 (`hint_steps`, C only): ExtL1(C, I, 1 - h)
    step 2 (`num_steps`, fresh Adam, all): ExtL1(C, I, 1 - h) + w * L1(h M W + (1 - M) C, I)
  Step 1 is a DIP inpainting of the box; step 2 lets what shows through the
  semi-transparent watermark correct it (it may also explain the whole box as
  watermark, M = 1, W = I). Our options (official off; configs/watermark.py,
  docs/watermark.md): `mask_weight`, `watermark_model='colour'`,
  `exclusion_weight`, `clean_from` ('deblend', 'fit', 'fit_tv', 'cut': the
  input de-blended instead of C), `stroke_polarity` (a hint of the strokes
  found in the box), `step2_trains_clean=False` (step 2 learns only M and W)
  and `num_steps` = 0 (no step 2, nor W and M, for the `clean_from` that do
  not use them).

'many' (N >= 2 images I_k sharing one watermark at the same place, no hint).
  One clean generator C_k per image ('clean1', ...), a shared mask M and a
  shared watermark W; one stage (`num_steps`):
    sum_k L1(W M + C_k (1 - M), I_k)

In both, the noise of C (and, in step 2 of 'hint', of W) is perturbed by
sigma = sigma_step * (it // every) (0 at the last iteration), and every fourth
iteration trains on a flip or half turn of noise and image
(`augment.official_schedule(period=4)`). As in the official code, a run's
layers are its networks' outputs at the last iteration (identity transform,
no perturbation), not a best-PSNR iterate.

The whole optimisation runs `watermark.runs` times with independent noise and
initialisation, and the layers are the per-pixel medians over the runs. The
runs are independent, so they can run one after another or together with their
parameters batched by `jax.vmap` (`watermark.batch_runs`; `auto`: sequential on
CPU, where vmap over parameters lowers convolutions to slow grouped ones,
batched on accelerators; see benchmarks/watermark_batching.py). With a workdir,
each finished run's layers are written to `run<k>.npz` at once and reused by a
rerun of the same config; the run in progress has its own checkpoint (`decompose`).

The outputs, from the medians of the runs' layers, are `watermark_layers`'s
(its module docstring lists them).
"""

import dataclasses
import os
import time
from typing import Any

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ddip_jax import augment
from ddip_jax import config_check
from ddip_jax import engine
from ddip_jax import losses
from ddip_jax import models
from ddip_jax import outputs
from ddip_jax import resume
from ddip_jax import runner
from ddip_jax import watermark_generators
from ddip_jax import watermark_io
from ddip_jax import watermark_layers
from ddip_jax import watermark_strokes

MODES = ('hint', 'many')
BATCH_RUNS = ('auto', 'sequential', 'batched')
# What W is: the official DIP generator, or one learned RGB colour (ours).
WATERMARK_MODELS = ('generator', 'colour')
# Where the clean image inside the box comes from: C's generator (official), or
# de-blending the input with the recovered M and W (ours).
CLEAN_FROM = ('generator', 'deblend', 'fit', 'fit_tv', 'cut')
KEEP_FROM = ('watermark', 'effect', 'both')
# Augment only every fourth iteration (the official watermark schedule).
AUGMENT_PERIOD = 4
# Name of the `InputHolder` among the problem's generators.
NOISE = 'noise'


def staircase_sigma(step: jax.Array, num_steps: int, *, sigma_step: float, every: int) -> jax.Array:
  """The watermark tasks' perturbation: sigma_step * (it // every), 0 at the last iteration."""
  sigma = sigma_step * (jnp.asarray(step) // every)
  return jnp.where(step == num_steps - 1, 0.0, sigma).astype(jnp.float32)


def _problem_inputs(noise: dict[str, jax.Array]) -> dict[str, Any]:
  # The generators' entries only give `models.init_generators` their shapes.
  return {**noise, NOISE: noise}


def reseed(problem: engine.Problem, config: ml_collections.ConfigDict, run_keys: list[jax.Array]) -> engine.Problem:
  """`problem` (its very stages, hence its compiled steps) with the noise of other runs.

  Args:
    problem: from `build_problem`, with as many runs as `run_keys` has keys.
    config: the config it was built from.
    run_keys: one noise key per run.
  """
  old = problem.inputs[NOISE]
  some = next(iter(old.values()))
  if (some.ndim == 5) != (len(run_keys) > 1) or (some.ndim == 5 and some.shape[0] != len(run_keys)):
    raise ValueError(f'the problem has noise of shape {some.shape}, not for {len(run_keys)} runs')
  canvas = tuple(some.shape[-3:-1])
  return dataclasses.replace(
      problem, inputs=_problem_inputs(watermark_generators.run_noise(config, canvas, tuple(old), run_keys))
  )


def build_problem(
    config: ml_collections.ConfigDict, images: np.ndarray, hint: np.ndarray | None, run_keys: list[jax.Array]
) -> engine.Problem:
  """The watermark problem of one run, or of several runs batched.

  Args:
    config: full config (`generator` and `watermark` sections are read).
    images: (K, H, W, 3) float in [0, 1], the working-resolution inputs; K = 1
      with a hint (mode 'hint'), K >= 2 without (mode 'many').
    hint: (H, W) in {0, 1}, 1 inside the box around the watermark; None for 'many'.
    run_keys: one noise key per run. One key: a plain problem. R > 1 keys: the
      R runs batched, every generator's parameters and noise with a leading
      run axis (`batched_generator`); the loss is the sum of the runs' losses,
      so each run's gradient (and Adam update) is the one it has alone. Run r's
      noise is the one a plain problem with run_keys[r] has.

  Returns:
    An `engine.Problem` whose generators are the layers' ('clean' or 'clean1',
    ..., 'watermark', 'mask') and NOISE, the `InputHolder` of their noise
    (`reseed` swaps in other runs' noise). 'hint': stages 'step1_clean' (C only; omitted when
    `watermark.hint_steps` is 0) and 'step2_watermark' (omitted, and W and M with it, when
    `num_steps` is 0); 'many': stage 'decompose'. The last stage's outputs are every generator's layer, (1, H,
    W, C) in (0, 1), with a leading run axis when batched; no stage tracks a
    best result (a run's result is its last stage's final outputs, `watermark_layers.run_layers`).
  """
  # A frozen copy: the losses read it when traced, which must not see later edits of `config`.
  wm = ml_collections.FrozenConfigDict(config.watermark)
  chex.assert_rank(images, 4)
  num_images, height, width, _ = images.shape
  if (hint is None) == (num_images == 1):
    raise ValueError(f'a hint goes with exactly one image, got {num_images} images and hint={hint is not None}')
  runs = len(run_keys)
  batched = runs > 1
  generators = watermark_generators.make_generators(config, num_images)
  canvas = models.canvas_shape(height, width, max(g.num_scales for g in generators.values()))
  if wm.augment:  # lax.switch over all 8 transforms needs a square canvas.
    canvas = (max(canvas),) * 2
  if hint is not None and not config.num_steps:  # No step 2: C alone, on the canvas and noise it has with W, M.
    generators = {'clean': generators['clean']}
  inputs = _problem_inputs(watermark_generators.run_noise(config, canvas, tuple(sorted(generators)), run_keys))
  if batched:
    generators = {name: models.batched_generator(g, runs) for name, g in generators.items()}
  generators[NOISE] = models.InputHolder()
  lift = jax.vmap if batched else (lambda fn: fn)  # Maps a one-run function over the run axis.
  img = jnp.asarray(images, jnp.float32)[:, None]  # (K, 1, H, W, 3)
  cleans = watermark_layers.clean_names(num_images)

  def generate(params, batch_stats, step, key, *, names, perturbed, num_steps, every):
    """The named generators' layers in the image frame, and the new batch stats."""
    index = augment.official_schedule(step, num_steps, period=AUGMENT_PERIOD) if wm.augment else None
    sigma = staircase_sigma(step, num_steps, sigma_step=wm.sigma_step, every=every)
    noise, noisy = batch_stats[NOISE]['inputs'], {}
    for name, k in zip(names, jax.random.split(key, len(names))):
      z = noise[name] if index is None else lift(lambda x: augment.transform(x, index))(noise[name])
      noisy[name] = models.perturb(z, k, sigma) if name in perturbed else z
    out, stats = models.apply_generators(generators, params, batch_stats, noisy)

    def upright(o):
      return models.center_crop(o if index is None else augment.inverse(o, index), height, width)

    return {name: lift(upright)(o) for name, o in out.items()}, stats

  def summed(terms):
    """terms(one run's layers) -> (loss, psnr), as the sum of losses / mean PSNR over the runs."""
    if not batched:
      return terms

    def over_runs(out):
      loss, psnr = jax.vmap(terms)(out)
      return jnp.sum(loss), jnp.mean(psnr)

    return over_runs

  def stage(name, num_steps, terms, *, names, perturbed, every, trainable=None):
    def loss_fn(params, batch_stats, step, key):
      out, stats = generate(
          params, batch_stats, step, key, names=names, perturbed=perturbed, num_steps=num_steps, every=every
      )
      loss, psnr = summed(terms)(out)
      return loss, (stats, out, psnr)

    return engine.Stage(name, num_steps, loss_fn, config.learning_rate, trainable=trainable, track_best=False)

  if hint is not None:
    image = img[0]
    h = jnp.asarray(hint, jnp.float32)[None, ..., None]

    def step1_terms(out):
      c = out['clean']
      return losses.extended_l1(c, image, 1 - h), losses.psnr((1 - h) * c + h * image, image)

    def step2_terms(out):
      c, w = out['clean'], out['watermark']
      m = losses.expand_channels(out['mask'], 3)  # Faster gradients than broadcasting.
      recon = h * m * w + (1 - m) * c
      loss = losses.extended_l1(c, image, 1 - h) + wm.recon_weight * losses.l1(recon, image)
      if wm.mask_weight:  # Ours: pull M towards 0 inside the box, mean over the box.
        loss = loss + wm.mask_weight * losses.extended_l1(out['mask'], jnp.zeros_like(out['mask']), h)
      if wm.exclusion_weight:  # Ours: C's edges apart from the visible watermark's.
        loss = loss + wm.exclusion_weight * losses.exclusion_loss(c, h * m * w)
      return loss, losses.psnr(recon, image)

    stages = [
        stage(
            'step1_clean',
            wm.hint_steps,
            step1_terms,
            names=('clean',),
            perturbed=('clean',),
            every=wm.hint_sigma_every,
            trainable=('clean',),
        ),
        stage(
            'step2_watermark',
            config.num_steps,
            step2_terms,
            names=('clean', 'watermark', 'mask'),
            perturbed=('clean', 'watermark'),
            every=wm.sigma_every,
            trainable=None if wm.step2_trains_clean else ('watermark', 'mask'),
        ),
    ]
    stages = [s for s in stages if s.num_steps > 0]
  else:

    def many_terms(out):
      recons = [losses.blend(out['mask'], out['watermark'], out[c]) for c in cleans]
      loss = sum(losses.l1(r, i) for r, i in zip(recons, img))
      return loss, losses.psnr(jnp.concatenate(recons), img[:, 0])

    stages = [
        stage(
            'decompose',
            config.num_steps,
            many_terms,
            names=(*cleans, 'watermark', 'mask'),
            perturbed=cleans,
            every=wm.sigma_every,
        )
    ]
  return engine.Problem(generators=generators, inputs=inputs, stages=stages)


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the `watermark` section (see `config_check.validate`)."""
  wm = config.watermark
  require = config_check.require
  require(wm.mode in MODES, 'watermark.mode', f'unknown mode (one of {list(MODES)})', wm.mode)
  if wm.mode == 'hint':
    require(
        bool(wm.hint),
        'watermark.hint',
        "mode 'hint' needs a hint PNG, white inside a box around the watermark",
        wm.hint,
    )
  else:
    require(
        bool(wm.images),
        'watermark.images',
        "mode 'many' needs the other images that share the watermark (a tuple of paths)",
        wm.images,
    )
    if wm.gt_images:
      require(
          len(wm.gt_images) == len(wm.images),
          'watermark.gt_images',
          f'needs one ground truth per entry of watermark.images ({len(wm.images)})',
          wm.gt_images,
      )
  require(wm.runs >= 1, 'watermark.runs', 'must be at least 1', wm.runs)
  require(wm.batch_runs in BATCH_RUNS, 'watermark.batch_runs', f'one of {list(BATCH_RUNS)}', wm.batch_runs)
  require(wm.hint_steps >= 0, 'watermark.hint_steps', 'must be >= 0', wm.hint_steps)
  for field in ('hint_sigma_every', 'sigma_every'):
    require(wm[field] >= 1, f'watermark.{field}', 'must be at least 1', wm[field])
  for field in ('sigma_step', 'recon_weight', 'mask_weight'):
    require(wm[field] >= 0, f'watermark.{field}', 'must be >= 0', wm[field])
  require(0 <= wm.keep_threshold <= 1, 'watermark.keep_threshold', 'must be in [0, 1]', wm.keep_threshold)
  require(wm.keep_from in KEEP_FROM, 'watermark.keep_from', f'one of {list(KEEP_FROM)}', wm.keep_from)
  require(0 <= wm.effect_threshold <= 1, 'watermark.effect_threshold', 'must be in [0, 1]', wm.effect_threshold)
  require(
      wm.watermark_model in WATERMARK_MODELS,
      'watermark.watermark_model',
      f'one of {list(WATERMARK_MODELS)}',
      wm.watermark_model,
  )
  require(wm.clean_from in CLEAN_FROM, 'watermark.clean_from', f'one of {list(CLEAN_FROM)}', wm.clean_from)
  step2 = f"with watermark.clean_from={wm.clean_from!r}, whose outputs are step 2's M and W"
  require(config.num_steps or wm.clean_from not in watermark_layers.NEED_STEP2, 'num_steps', f'must be >= 1 {step2}', 0)
  require(config.num_steps or wm.hint_steps, 'watermark.hint_steps', 'must be >= 1 with num_steps = 0', 0)
  require(
      wm.clean_from == 'generator' or wm.mode == 'hint',
      'watermark.clean_from',
      "'deblend', 'fit', 'fit_tv' and 'cut' are for mode 'hint'",
      wm.clean_from,
  )
  require(wm.exclusion_weight >= 0, 'watermark.exclusion_weight', 'must be >= 0', wm.exclusion_weight)
  require(0 <= wm.max_opacity < 1, 'watermark.max_opacity', 'must be in [0, 1)', wm.max_opacity)
  require(
      wm.stroke_polarity in watermark_strokes.STROKE_POLARITIES,
      'watermark.stroke_polarity',
      f'one of {list(watermark_strokes.STROKE_POLARITIES)}',
      wm.stroke_polarity,
  )
  require(
      wm.stroke_width >= 3 and wm.stroke_width % 2 == 1,
      'watermark.stroke_width',
      'must be an odd size >= 3',
      wm.stroke_width,
  )
  channels, skip = tuple(wm.mask_channels), tuple(wm.mask_skip)
  require(len(channels) > 0, 'watermark.mask_channels', 'must list at least one scale', channels)
  config_check.require_ints(channels, 'watermark.mask_channels', 1)
  config_check.require_ints(skip, 'watermark.mask_skip', 0)
  require(
      len(skip) == len(channels), 'watermark.mask_skip', 'needs one entry per scale of watermark.mask_channels', skip
  )
  for field in ('mask_kernel', 'watermark_kernel'):
    require(wm[field] >= 1 and wm[field] % 2 == 1, f'watermark.{field}', 'must be an odd size >= 1', wm[field])


def min_num_steps(config: ml_collections.ConfigDict) -> int:
  """The least `num_steps` (`tasks.validate`): 0 (no step 2) in mode 'hint', where `validate` says when."""
  return 0 if config.watermark.mode == 'hint' else 1


def resolve_batching(batch_runs: str) -> str:
  """'sequential' or 'batched': 'auto' is sequential on CPU (benchmarks/watermark_batching.py)."""
  if batch_runs != 'auto':
    return batch_runs
  return 'sequential' if jax.default_backend() == 'cpu' else 'batched'


def load_inputs(config: ml_collections.ConfigDict, arrays: dict[str, Any] | None = None) -> watermark_io.Inputs:
  """Reads `config`'s files but those given in `arrays` (`watermark_io.load_inputs`): the only place the task
  reads any."""
  return watermark_io.load_inputs(config, arrays)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Removes the watermark of `config`'s image(s) and writes all outputs to `workdir`: files in, `decompose`,
  files out.

  Returns:
    The metrics written to `metrics.json`.
  """
  return resume.run_decomposition(config, workdir, load_inputs=load_inputs, decompose=decompose)


def _run_file(folder: str, index: int) -> str:
  return os.path.join(folder, f'run{index + 1}.npz')


def decompose(
    config: ml_collections.ConfigDict, inputs: watermark_io.Inputs, *, checkpoints: str | None = None
) -> outputs.Decomposition:
  """Removes the watermark with `watermark.runs` runs, in memory; the layers are the medians over the runs.

  Run k is part k of `resume.solve_parts` (batched runs: one part, named by its first run). With a
  workdir in `checkpoints`, a finished run's layers go to `run<k>.npz` at once (its checkpoint is then
  removed) and a rerun of the same config reuses them; the run in progress checkpoints to
  `checkpoint_run<k>.msgpack` and resumes. A run that stops early (NaN/Inf, Ctrl-C / SIGTERM) raises with
  the error's `partial` = the median of the finished runs (with none, the stopped run's current layers if
  it reached the last stage; else None).

  Raises:
    engine.NumericalError, engine.Interrupted: as above.
    image_io.InputError: a `run<k>.npz` of another config.
  """
  wm = config.watermark
  start = time.perf_counter()
  tag = runner.run_tag(config) if checkpoints else ''
  noise_key, train_key = jax.random.split(jax.random.key(config.seed))
  batching = resolve_batching(wm.batch_runs)
  finished: dict[int, dict[str, np.ndarray]] = {}
  run_metrics: dict[int, dict[str, Any]] = {}
  # Runs finish in order: the finished ones are the first few.
  while checkpoints and len(finished) < wm.runs and os.path.exists(_run_file(checkpoints, len(finished))):
    k = len(finished)
    finished[k], run_metrics[k] = watermark_io.load_run(_run_file(checkpoints, k), tag)
  first = len(finished)
  pending = list(range(first, wm.runs))
  # Part index -> the runs it optimises; its key is fold_in(train_key, index), index its first run.
  groups = {first: pending} if batching == 'batched' and len(pending) > 1 else {k: [k] for k in pending}
  partial: list[dict[str, np.ndarray]] = []
  built: list[engine.Problem] = []

  def problem(index: int) -> engine.Problem:
    keys = [jax.random.fold_in(noise_key, k) for k in groups[index]]
    # After the first, the same stages: the steps compiled for the first run serve the others too.
    built[:] = [
        reseed(built[0], config, keys) if built else build_problem(config, inputs.working, inputs.hint_working, keys)
    ]
    return built[0]

  def keep(index: int, result: engine.Result) -> None:
    if not result.last:  # Stopped: its latest layers, if it got to the last stage and no run finished.
      complete = set(result.best) == set(built[0].generators) - {NOISE}
      layers = [] if finished or not complete else watermark_layers.run_layers(result.best)
      partial[:] = [p for p in layers if all(np.isfinite(x).all() for x in p.values())]
      return
    for k, layers in zip(groups[index], watermark_layers.run_layers(result.last)):
      finished[k], run_metrics[k] = layers, result.metrics
      if checkpoints:
        watermark_io.save_run(_run_file(checkpoints, k), layers, result.metrics, tag)
    if checkpoints and os.path.exists(runner.checkpoint_path(checkpoints, f'run{index + 1}')):
      os.remove(runner.checkpoint_path(checkpoints, f'run{index + 1}'))

  def finish(status: str) -> outputs.Decomposition | None:
    layers = [finished[k] for k in sorted(finished)] or partial
    if not layers:
      return None
    metrics: dict[str, Any] = {
        'status': status,
        'mode': wm.mode,
        'image_shape': list(inputs.full.shape[1:3]),
        'working_shape': list(inputs.working.shape[1:3]),
        'batch_runs': batching,
        'runs_finished': len(finished),
    }
    if inputs.polarity:
      metrics['stroke_polarity'] = inputs.polarity
    images, panels = watermark_layers.final_images(inputs, layers, wm, metrics)
    metrics['runs'] = {f'run{k + 1}': run_metrics[k] for k in sorted(run_metrics)}
    metrics['seconds'] = round(time.perf_counter() - start, 3)
    return outputs.Decomposition(images=images, metrics=metrics, summary=panels)

  return resume.solve_parts(
      config,
      num_parts=max(groups, default=wm.runs - 1) + 1,
      part_name='run',
      key=train_key,
      problem=problem,
      keep=keep,
      finish=finish,
      checkpoints=checkpoints,
      first=first,
  )

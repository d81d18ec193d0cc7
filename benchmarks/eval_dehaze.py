r"""PSNR/SSIM of dehazing on the synthetic hazy set of issue 31: Double-DIP vs two classic priors.

  PYTHONPATH=. .venv/bin/python benchmarks/eval_dehaze.py \
      [--images=moto_full_128,...] [--grid] [--methods=hazy,dcp,cap,prior,ddip,ddip_faithful] \
      [--num_steps=N] [--passes=K] [--set=dehaze.transmission_prior_until=0.5,...] \
      [--results_dir=results/eval_dehaze] [--table_only]

Images: `scripts/make_dehaze.EVAL_SET`, 14 scenes at 128 and 256 px (the
motorcycle's true depth in four crops; outdoor photos under a synthesised
ramp depth with sky at the top and objects standing on the ground), hazed as
I = t J + (1 - t) A, t = exp(-beta d), beta 0.6 to 2.5, grey, white, bluish,
warm and coloured airlights. Clean and hazy images are rounded to 8 bits as PNGs.
With --grid, the scenes are hazed instead under every beta of GRID_BETAS (0.5,
1.5, 2.5) and airlight of GRID_AIRLIGHTS (grey, white, blue, warm): 12 hazes a
scene that no method was chosen on (`haze_of` names them image@beta_airlight).

Methods, every result scored against the clean image with dm-pix PSNR/SSIM:
  hazy:  the input itself (what doing nothing scores);
  dcp:   the dark-channel-prior dehazer of He et al. (CVPR 2009 / TPAMI 2011)
         built from our filters: A from the brightest 0.1% of the dark channel
         (`haze_priors.estimate_airlight`), t = 1 - 0.95 * dark_channel(I / A) with
         15x15 patches, refined by the guided filter of the official
         Double-DIP (radius 6.25% of the longer side, eps 1e-4, OpenCV mode), clipped below
         at t0 = 0.1, J = (I - A) / t + A;
  cap:   the colour attenuation prior of Zhu et al. (IEEE TIP 2015,
         `haze_priors.colour_attenuation_dehaze`: their coefficients, 15x15
         min filter, guided filter eps 1e-3, beta 1, t in [0.1, 0.9]);
  prior: the starting point of ours without any optimisation: `dcp` with
         Kim et al.'s quadtree airlight (`haze_priors.quadtree_airlight`),
         ours' radiance bound (t >= what keeps J <= 1, `dehaze.radiance_bound`)
         and guided-filter eps (`configs/dehaze.py`);
  ddip:  `configs/dehaze.py` (ours);
  ddip_faithful: `configs/dehaze_faithful.py` (official: two passes, no prior,
         4000 iterations a pass). --num_steps overrides both.
         A run of k passes also gives the rows of its first 1..k-1 passes.

Each finished run is appended to `<results_dir>/runs.jsonl` right away and runs
already there are skipped, so the evaluation can be interrupted and resumed or
split over processes (different --images); the tables are printed from that
file at the end (`--table_only` prints them without running). Times: wall
seconds and the process's CPU seconds (on a shared machine the wall time
depends on the other jobs). Needs scikit-image (the scenes): an optional
benchmark dependency, not in requirements.txt.
"""

import os
import re
import time
from typing import Any

from absl import app
from absl import flags
import jax.numpy as jnp
import numpy as np

from configs import dehaze as dehaze_config
from configs import dehaze_faithful as dehaze_faithful_config
from benchmarks import runs_log
from ddip_jax import haze_priors
from ddip_jax import image_io
from ddip_jax import metrics as metrics_lib
from ddip_jax import writing
from ddip_jax.tasks import dehaze
from scripts import make_dehaze

# Method -> the config of its Double-DIP runs (None: not Double-DIP).
METHODS = {
    'hazy': None,
    'dcp': None,
    'cap': None,
    'prior': None,
    'ddip': dehaze_config,
    'ddip_faithful': dehaze_faithful_config,
}
# He et al.'s parameters.
DCP_PATCH = 15
DCP_OMEGA = 0.95
DCP_T0 = 0.1
DCP_TOP_FRACTION = 1e-3
DCP_EPS = 1e-4  # The guided filter's eps for He et al.'s t (the official Double-DIP refinement's).

# --grid: every scene again under each haze density x airlight (held out from the set's own choices).
GRID_BETAS = (0.5, 1.5, 2.5)
GRID_AIRLIGHTS = {
    'grey': (0.8, 0.8, 0.8),
    'white': (0.95, 0.95, 0.95),
    'blue': (0.7, 0.8, 0.95),
    'warm': (0.95, 0.85, 0.7),
}

_IMAGES = flags.DEFINE_list('images', list(make_dehaze.EVAL_SET), 'Images of make_dehaze.EVAL_SET to run.')
_GRID = flags.DEFINE_bool(
    'grid',
    False,
    'Run the --images under every beta of GRID_BETAS x airlight of GRID_AIRLIGHTS instead of their own '
    '(hazes named <image>@<beta>_<airlight>; 12 per image). Use its own --results_dir.',
)
_METHODS = flags.DEFINE_list('methods', list(METHODS), f'Methods to run (of {", ".join(METHODS)}).')
_NUM_STEPS = flags.DEFINE_integer('num_steps', None, "Iterations per Double-DIP pass (default: the config's).")
_PASSES = flags.DEFINE_integer(
    'passes', None, "Override the configs' Double-DIP passes; k passes also give the " 'results of the first 1..k-1.'
)
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the Double-DIP runs.')
_SET = flags.DEFINE_list(
    'set',
    [],
    'Config overrides of the Double-DIP methods, e.g. '
    'dehaze.transmission_prior_until=0.5; they name the runs (method[overrides]).',
)
_OUT_DIR = flags.DEFINE_string('results_dir', 'results/eval_dehaze', 'Where inputs, outputs and runs.jsonl go.')
_TABLE_ONLY = flags.DEFINE_bool('table_only', False, 'Only print the tables from runs.jsonl.')


def dark_channel_prior(
    hazy: np.ndarray,
    *,
    radius: int,
    eps: float,
    opencv_compat: bool,
    quadtree: bool = False,
    radiance_bound: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """He et al.'s dehazer (see the module docstring).

  Args:
    hazy: (H, W, 3) in [0, 1].
    radius, eps, opencv_compat: the guided filter that refines t.
    quadtree: Kim et al.'s airlight instead of He et al.'s (method 'prior').
    radiance_bound: t raised to the bound J <= 1 before refinement (method 'prior', as ours).

  Returns:
    (J (H, W, 3), t (H, W), A (3,)).
  """
  image = jnp.asarray(hazy)
  if quadtree:
    airlight = haze_priors.quadtree_airlight(hazy)
  else:
    airlight = np.asarray(haze_priors.estimate_airlight(image, patch=DCP_PATCH, top_fraction=DCP_TOP_FRACTION))
  raw = np.asarray(
      haze_priors.dark_channel_transmission(image, jnp.asarray(airlight), patch=DCP_PATCH, omega=DCP_OMEGA)
  )
  if radiance_bound:
    raw = np.maximum(raw, haze_priors.radiance_bound_transmission(hazy, airlight, patch=DCP_PATCH))
  t = haze_priors.refine_transmission(raw, hazy, radius=radius, eps=eps, t_min=DCP_T0, opencv_compat=opencv_compat)
  return haze_priors.recover(hazy, t, airlight), t, airlight


def haze_of(name: str) -> tuple[str, float, tuple[float, float, float]]:
  """(scene of make_dehaze.EVAL_SET, beta, airlight) of a haze: an image of the set or a grid haze 'image@beta_airlight'."""
  if '@' not in name:
    _, _, beta, airlight = make_dehaze.EVAL_SET[name]
    return name, beta, airlight
  scene, variant = name.split('@')
  beta, airlight = variant.split('_')
  return scene, float(beta), GRID_AIRLIGHTS[airlight]


def make_inputs(name: str, folder: str) -> dict[str, str]:
  """Writes the clean and hazy PNGs of one haze (`haze_of`); returns their paths."""
  scene, beta, airlight = haze_of(name)
  clean, depth, _, _ = make_dehaze.eval_scene(scene)
  hazy, _ = make_dehaze.add_haze(clean, depth, beta=beta, airlight=airlight)
  paths = {'clean': os.path.join(folder, 'clean.png'), 'hazy': os.path.join(folder, 'hazy.png')}
  writing.save_image(paths['clean'], clean)
  writing.save_image(paths['hazy'], hazy)
  return paths


def _config(method: str, paths: dict[str, str]):
  config = METHODS[method].get_config()
  config.image = paths['hazy']
  config.dehaze.gt_clean = paths['clean']
  if _PASSES.value:
    config.dehaze.passes = _PASSES.value
  config.seed = _SEED.value
  config.progress = False
  if _NUM_STEPS.value:
    config.num_steps = _NUM_STEPS.value
  runs_log.apply_overrides(config, _SET.value)
  return config


def _run_name(method: str) -> str:
  """A Double-DIP method's name in runs.jsonl: with its overrides, if any."""
  return f"{method}[{','.join(_SET.value)}]" if _SET.value and METHODS[method] else method


def run_one(name: str, method: str) -> list[dict[str, Any]]:
  """Runs one method on one image; returns its records (ddip: one per pass)."""
  folder = os.path.join(_OUT_DIR.value, name)
  paths = make_inputs(name, os.path.join(folder, 'inputs'))
  hazy, clean = image_io.load_image(paths['hazy']), image_io.load_image(paths['clean'])
  _, beta, true_airlight = haze_of(name)
  base = {
      'haze': name,
      'beta': beta,
      'true_airlight': list(true_airlight),
      'seed': _SEED.value,
      'run': _run_name(method),
      'shape': list(hazy.shape[:2]),
  }
  start, cpu = time.perf_counter(), time.process_time()
  if method == 'hazy':
    return [
        {
            **base,
            'method': 'hazy',
            'steps': None,
            'airlight': None,
            'seconds': 0.0,
            'cpu_seconds': 0.0,
            **metrics_lib.image_scores(hazy, clean),
        }
    ]
  config = _config('ddip', paths)
  if method in ('dcp', 'cap', 'prior'):
    radius = int(round(config.dehaze.guided_radius * max(hazy.shape[:2])))
    if method == 'cap':
      dehazed, t, airlight = haze_priors.colour_attenuation_dehaze(hazy, radius=radius)
    else:
      eps = config.dehaze.guided_eps if method == 'prior' else DCP_EPS  # 'prior': ours' refinement.
      ours = method == 'prior'
      dehazed, t, airlight = dark_channel_prior(
          hazy,
          radius=radius,
          eps=eps,
          opencv_compat=config.dehaze.guided_opencv,
          quadtree=ours,
          radiance_bound=ours and config.dehaze.get('radiance_bound', False),
      )
    for file, img in (('dehazed', dehazed), ('transmission', t)):
      writing.save_image(os.path.join(folder, method, f'{file}.png'), img)
    return [
        {
            **base,
            'method': method,
            'steps': None,
            'airlight': np.asarray(airlight).tolist(),
            'seconds': time.perf_counter() - start,
            'cpu_seconds': time.process_time() - cpu,
            **metrics_lib.image_scores(dehazed, clean),
        }
    ]
  config = _config(method, paths)
  metrics = dehaze.run(config, os.path.join(folder, re.sub(r'[^\w.=-]+', '_', _run_name(method))))
  cpu_seconds = time.process_time() - cpu
  records = []
  for k, p in enumerate(metrics['passes'].values(), start=1):
    seconds = sum(q['seconds'] for q in list(metrics['passes'].values())[:k])
    records.append(
        {
            **base,
            'method': f'{_run_name(method)} {k} pass' + ('es' if k > 1 else ''),
            'steps': config.num_steps,
            'passes': config.dehaze.passes,
            'working_shape': metrics['working_shape'],
            'airlight': p['airlight'],
            'seconds': seconds,
            'psnr': p['psnr'],
            'ssim': p['ssim'],
            'cpu_seconds': cpu_seconds if k == len(metrics['passes']) else None,
            'best_recon_psnr': p['best_recon_psnr'],
        }
    )
  return records


def _key(haze: str, run: str, steps: int | None, passes: int | None, seed: int) -> tuple[Any, ...]:
  """What identifies a run in runs.jsonl (a run with other settings is not skipped)."""
  return (haze, run, steps, passes, seed)


def print_tables(runs: list[dict[str, Any]]) -> None:
  """Per-image rows, then the mean per method with its worst difference to the dark channel prior."""
  print('| image | beta | true A | method | PSNR (dB) | SSIM | estimated A | steps/pass | s | CPU s |')
  print('|---|---|---|---|---|---|---|---|---|---|')
  for r in runs:
    a = '-' if r['airlight'] is None else '(' + ', '.join(f'{v:.2f}' for v in r['airlight']) + ')'
    true_a = '(' + ', '.join(f'{v:.2f}' for v in r['true_airlight']) + ')'
    cpu = '-' if r.get('cpu_seconds') is None else f"{r['cpu_seconds']:.1f}"
    print(
        f"| {r['haze']} | {r['beta']} | {true_a} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {a} | "
        f"{r['steps'] or '-'} | {r['seconds']:.1f} | {cpu} |"
    )
  print()
  dcp = {r['haze']: r['psnr'] for r in runs if r['method'] == 'dcp'}
  print(
      '| method | images | mean PSNR (dB) | mean SSIM | vs DCP: mean / worst (dB) | images > 0.5 dB below DCP '
      '| mean s per image (128 px / 256 px) |'
  )
  print('|---|---|---|---|---|---|---|')
  groups: dict[str, list[dict[str, Any]]] = {}
  for r in runs:
    groups.setdefault(r['method'] if r['steps'] is None else f"{r['method']} ({r['steps']} steps)", []).append(r)
  for method, rs in groups.items():
    diffs = [r['psnr'] - dcp[r['haze']] for r in rs if r['haze'] in dcp]
    vs = f'{np.mean(diffs):+.2f} / {min(diffs):+.2f}' if diffs else '-'
    below = sum(d < -0.5 for d in diffs) if diffs else '-'
    times = [
        np.mean([r['seconds'] for r in rs if max(r.get('shape') or [0]) == side] or [np.nan]) for side in (128, 256)
    ]
    print(
        f"| {method} | {len(rs)} | {np.mean([r['psnr'] for r in rs]):.2f} | "
        f"{np.mean([r['ssim'] for r in rs]):.3f} | {vs} | {below} | {times[0]:.1f} / {times[1]:.1f} |"
    )


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  for given, valid in ((_IMAGES.value, list(make_dehaze.EVAL_SET)), (_METHODS.value, list(METHODS))):
    unknown = set(given) - set(valid)
    if unknown:
      raise app.UsageError(f'unknown {sorted(unknown)} (valid: {", ".join(valid)})')
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  runs_path = os.path.join(_OUT_DIR.value, 'runs.jsonl')
  if not _TABLE_ONLY.value:
    done = {_key(r['haze'], r['run'], r['steps'], r.get('passes'), r['seed']) for r in runs_log.load_runs(runs_path)}
    names = _IMAGES.value
    if _GRID.value:
      names = [f'{n}@{b}_{a}' for n in names for b in GRID_BETAS for a in GRID_AIRLIGHTS]
    for name in names:
      for method in _METHODS.value:
        ddip = METHODS[method] is not None
        config = _config(method, {'hazy': '', 'clean': ''}) if ddip else None
        if (
            _key(name, _run_name(method), config and config.num_steps, config and config.dehaze.passes, _SEED.value)
            in done
        ):
          continue
        records = run_one(name, method)
        for record in records:
          print(
              f"{name} {record['method']}: PSNR {record['psnr']:.2f} dB, SSIM {record['ssim']:.3f}, "
              f"{record['seconds']:.1f} s",
              flush=True,
          )
          runs_log.append_run(runs_path, record)
  print_tables(runs_log.load_runs(runs_path))


if __name__ == '__main__':
  app.run(main)

r"""PSNR/SSIM of dehazing on synthetic hazy images: Double-DIP (1 and 2 passes) vs the dark channel prior.

  PYTHONPATH=. .venv/bin/python benchmarks/eval_dehaze.py \
      [--hazes=b0.8_grey,b1.2_blue,b1.6_warm,b2.0_white] \
      [--methods=hazy,dcp,ddip,ddip_faithful] [--num_steps=N] [--passes=K] \
      [--set=dehaze.transmission_prior_until=0.5,...] [--results_dir=results/eval_dehaze] [--table_only]

Images: the motorcycle scene of `scripts/make_dehaze.py` (256x160, exact
depth from the Middlebury stereo ground truth), hazed as I = t J + (1 - t) A,
t = exp(-beta d), with the (beta, A) of each entry of `HAZES` (the demo is
b1.2_blue). The hazy input is rounded to 8 bits as a PNG, like the demo.

Methods, every result scored against the clean image with dm-pix PSNR/SSIM:
  hazy:  the input itself (what doing nothing scores);
  dcp:   the dark-channel-prior dehazer of He et al. (CVPR 2009 / TPAMI 2011)
         built from our filters: A from the brightest 0.1% of the dark channel
         (`dehaze.estimate_airlight`), t = 1 - 0.95 * dark_channel(I / A) with
         15x15 patches, refined by the same guided filter as Double-DIP's t
         (the config's radius fraction, eps and OpenCV mode), clipped below
         at t0 = 0.1, J = (I - A) / t + A;
  ddip:  `configs/dehaze.py` (ours: one pass, the dark-channel transmission
         prior on t for the first 75% of 1000 iterations);
  ddip_faithful: `configs/dehaze_faithful.py` (official: two passes, no prior,
         4000 iterations a pass). --num_steps overrides both.
         A run of k passes also gives the rows of its first 1..k-1 passes
         (e.g. 'ddip_faithful 1 pass' and 'ddip_faithful 2 passes'): pass j of
         a k-pass run is exactly the j-pass run (same keys).

Each finished run is appended to `<results_dir>/runs.jsonl` right away and runs
already there are skipped, so the evaluation can be interrupted and resumed or
split over processes (different --hazes); the tables are printed from that
file at the end (`--table_only` prints them without running). Double-DIP runs
also resume from their own checkpoints in `<results_dir>/<haze>/<method>/`.

Cost: Double-DIP's pass 1 takes ~0.1-0.2 s an iteration on 2 CPU cores, pass 2
(three generators) about twice that, so one image takes ~3-5 min with ours
(1000 iterations) and ~20-40 min with the official 2 x 4000; DCP takes a
second. Needs scikit-image (the scene): an optional benchmark dependency, not
in requirements.txt.
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
from ddip_jax import image_io
from ddip_jax import metrics as metrics_lib
from ddip_jax import writing
from ddip_jax.tasks import dehaze
from scripts import make_dehaze

# name -> (beta, airlight): thin to thick haze, grey, bluish, warm and white airlights.
HAZES = {
    'b0.8_grey': (0.8, (0.8, 0.8, 0.8)),
    'b1.2_blue': (make_dehaze.DEMO_BETA, make_dehaze.DEMO_AIRLIGHT),
    'b1.6_warm': (1.6, (0.92, 0.86, 0.74)),
    'b2.0_white': (2.0, (0.95, 0.95, 0.95)),
}
# Method -> the config of its Double-DIP runs (None: not Double-DIP).
METHODS = {'hazy': None, 'dcp': None, 'ddip': dehaze_config, 'ddip_faithful': dehaze_faithful_config}
# He et al.'s parameters.
DCP_PATCH = 15
DCP_OMEGA = 0.95
DCP_T0 = 0.1
DCP_TOP_FRACTION = 1e-3

_HAZES = flags.DEFINE_list('hazes', list(HAZES), f'Haze settings to run (of {", ".join(HAZES)}).')
_METHODS = flags.DEFINE_list('methods', list(METHODS), f'Methods to run (of {", ".join(METHODS)}).')
_NUM_STEPS = flags.DEFINE_integer('num_steps', None, 'Iterations per Double-DIP pass (default: the config\'s).')
_PASSES = flags.DEFINE_integer('passes', None, 'Override the configs\' Double-DIP passes; k passes also give the '
                                'results of the first 1..k-1.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the Double-DIP runs.')
_SET = flags.DEFINE_list('set', [], 'Config overrides of the Double-DIP methods, e.g. '
                         'dehaze.transmission_prior_until=0.5; they name the runs (method[overrides]).')
_OUT_DIR = flags.DEFINE_string('results_dir', 'results/eval_dehaze', 'Where inputs, outputs and runs.jsonl go.')
_TABLE_ONLY = flags.DEFINE_bool('table_only', False, 'Only print the tables from runs.jsonl.')


def dark_channel_prior(hazy: np.ndarray, *, radius: int, eps: float, opencv_compat: bool
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """He et al.'s dehazer (see the module docstring).

  Args:
    hazy: (H, W, 3) in [0, 1].
    radius, eps, opencv_compat: the guided filter that refines t.

  Returns:
    (J (H, W, 3), t (H, W), A (3,)).
  """
  image = jnp.asarray(hazy)
  airlight = np.asarray(dehaze.estimate_airlight(image, patch=DCP_PATCH, top_fraction=DCP_TOP_FRACTION))
  raw = np.asarray(dehaze.dark_channel_transmission(image, jnp.asarray(airlight), patch=DCP_PATCH, omega=DCP_OMEGA))
  t = dehaze.refine_transmission(raw, hazy, radius=radius, eps=eps, t_min=DCP_T0, opencv_compat=opencv_compat)
  return dehaze.recover(hazy, t, airlight), t, airlight


def make_inputs(name: str, folder: str) -> dict[str, str]:
  """Writes the clean and hazy PNGs of one haze setting; returns their paths."""
  beta, airlight = HAZES[name]
  clean, depth = make_dehaze.load_scene()
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
  """Runs one method on one haze setting; returns its records (ddip: one per pass)."""
  folder = os.path.join(_OUT_DIR.value, name)
  paths = make_inputs(name, os.path.join(folder, 'inputs'))
  hazy, clean = image_io.load_image(paths['hazy']), image_io.load_image(paths['clean'])
  beta, true_airlight = HAZES[name]
  base = {'haze': name, 'beta': beta, 'true_airlight': list(true_airlight), 'seed': _SEED.value,
          'run': _run_name(method)}
  start = time.perf_counter()
  if method == 'hazy':
    return [{**base, 'method': 'hazy', 'steps': None, 'airlight': None, 'seconds': 0.0,
             **metrics_lib.image_scores(hazy, clean)}]
  config = _config('ddip', paths)
  if method == 'dcp':
    radius = int(round(config.dehaze.guided_radius * max(hazy.shape[:2])))
    dehazed, t, airlight = dark_channel_prior(hazy, radius=radius, eps=config.dehaze.guided_eps,
                                              opencv_compat=config.dehaze.guided_opencv)
    for file, img in (('dehazed', dehazed), ('transmission', t)):
      writing.save_image(os.path.join(folder, 'dcp', f'{file}.png'), img)
    return [{**base, 'method': 'dcp', 'steps': None, 'airlight': airlight.tolist(),
             'seconds': time.perf_counter() - start, **metrics_lib.image_scores(dehazed, clean)}]
  config = _config(method, paths)
  metrics = dehaze.run(config, os.path.join(folder, re.sub(r'[^\w.=-]+', '_', _run_name(method))))
  records = []
  for k, p in enumerate(metrics['passes'].values(), start=1):
    seconds = sum(q['seconds'] for q in list(metrics['passes'].values())[:k])
    records.append({**base, 'method': f'{_run_name(method)} {k} pass' + ('es' if k > 1 else ''), 'steps': config.num_steps,
                    'passes': config.dehaze.passes,
                    'airlight': p['airlight'], 'seconds': seconds, 'psnr': p['psnr'], 'ssim': p['ssim'],
                    'best_recon_psnr': p['best_recon_psnr']})
  return records


def _key(haze: str, run: str, steps: int | None, passes: int | None, seed: int) -> tuple[Any, ...]:
  """What identifies a run in runs.jsonl (a run with other settings is not skipped)."""
  return (haze, run, steps, passes, seed)


def print_tables(runs: list[dict[str, Any]]) -> None:
  """Per-image rows, then the mean per method."""
  print('| haze | beta | true A | method | PSNR (dB) | SSIM | estimated A | steps/pass | s |')
  print('|---|---|---|---|---|---|---|---|---|')
  for r in runs:
    a = '-' if r['airlight'] is None else '(' + ', '.join(f'{v:.2f}' for v in r['airlight']) + ')'
    true_a = '(' + ', '.join(f'{v:.2f}' for v in r['true_airlight']) + ')'
    print(f"| {r['haze']} | {r['beta']} | {true_a} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {a} | "
          f"{r['steps'] or '-'} | {r['seconds']:.1f} |")
  print()
  print('| method | images | mean PSNR (dB) | mean SSIM | mean s per image |')
  print('|---|---|---|---|---|')
  groups: dict[str, list[dict[str, Any]]] = {}
  for r in runs:
    groups.setdefault(r['method'] if r['steps'] is None else f"{r['method']} ({r['steps']} steps)", []).append(r)
  for method, rs in groups.items():
    print(f"| {method} | {len(rs)} | {np.mean([r['psnr'] for r in rs]):.2f} | "
          f"{np.mean([r['ssim'] for r in rs]):.3f} | {np.mean([r['seconds'] for r in rs]):.1f} |")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  for given, valid in ((_HAZES.value, list(HAZES)), (_METHODS.value, list(METHODS))):
    unknown = set(given) - set(valid)
    if unknown:
      raise app.UsageError(f'unknown {sorted(unknown)} (valid: {", ".join(valid)})')
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  runs_path = os.path.join(_OUT_DIR.value, 'runs.jsonl')
  if not _TABLE_ONLY.value:
    done = {_key(r['haze'], r['run'], r['steps'], r.get('passes'), r['seed'])
            for r in runs_log.load_runs(runs_path)}
    for name in _HAZES.value:
      for method in _METHODS.value:
        ddip = METHODS[method] is not None
        config = _config(method, {'hazy': '', 'clean': ''}) if ddip else None
        if _key(name, _run_name(method), config and config.num_steps, config and config.dehaze.passes, _SEED.value) in done:
          continue
        records = run_one(name, method)
        for record in records:
          print(f"{name} {record['method']}: PSNR {record['psnr']:.2f} dB, SSIM {record['ssim']:.3f}, "
                f"{record['seconds']:.1f} s", flush=True)
          runs_log.append_run(runs_path, record)
  print_tables(runs_log.load_runs(runs_path))


if __name__ == '__main__':
  app.run(main)

r"""Layer PSNR/SSIM of transparent-layer separation on generated mixtures, next to FastICA.

  PYTHONPATH=. python benchmarks/eval_transparency.py [--regimes=uniform,realistic]
      [--methods=default,faithful,fastica] [--size=128 --height=96] [--num_steps=N]
      [--results_dir=results/eval_transparency]

Regimes (each on the same layer pairs, 128x128 or, with --height, their
middle rows, made from scikit-image's bundled photos by
`scripts/make_transparency.py`'s functions):
  uniform:   I_k = a_k R + (1 - a_k) T, scalar a_1 in [0.2, 0.45], a_2 in
             [0.55, 0.8] drawn per pair: exactly FastICA's model.
  realistic: I_k = A_k(x) blur(R) + (1 - A_k(x)) T with smooth alpha maps in
             [0.2, 0.8] and a Gaussian-blurred (sigma 1.5 px) reflection, as in
             real window reflections; scored against blur(R) and T.
  realistic_channels: the same with an independent smooth map per colour
             channel (A_k(x) differs per channel: tinted glass, a polariser).
  additive:  I = (R + T) / 2, one mixture (configs/textures.py) of two tinted
             textures (--additive_pairs: brick, grass, gravel, text);
  photo_texture: the same with a photo as R (--photo_texture_pairs).

Methods: 'default' and 'faithful' are configs/transparency.py and
configs/transparency_faithful.py as they are (the inputs and seed aside).
'generator', 'scalar', 'map' are Double-DIP with that
`transparency.alpha` (configs/transparency_faithful.py otherwise). '<alpha>_unmix' and
'<alpha>_refine' ('generator' or 'scalar') are the same optimisation
finalised with `transparency.unmix` = 'learned' / 'refined' and
`unmix_select='always'`: the mixtures unmixed exactly with the learned (or
refined) alphas (no ground truth); each record says whether the loss guard
(`unmix_select='loss'`) would have kept them. One run gives all three rows. 'fastica' is
scikit-learn's FastICA fitted to the two mixtures' finite differences (edges
of natural images are far closer to independent than their pixel values;
'fastica_pixels' fits the pixel values), its mixing matrix rescaled so that
each row sums to one (the model's a_k + (1 - a_k) = 1), then the mixtures
unmixed with it: no ground truth is used; '<fastica>_channels' fits one
mixing matrix per colour channel. Every method reads the same 8-bit
mixtures (the PNGs Double-DIP reads). 'augment' and
'no_augment' are configs/textures.py with `transparency.augment` on / off.
For one mixture ('additive', 'photo_texture'): 'default' and 'faithful' are
configs/textures.py and configs/textures_faithful.py; 'colour' and
'photo_unmix' are the default's unmixings alone, kept whatever their fit
(`colour_unmixing.colour_plane_unmix`, `colour_unmixing.photo_texture_unmix`); the classic structure/texture splits 'tv_<w>' (`denoise_tv_chambolle`
of weight w: structure u, texture I - u) and 'guided_<r>' (the image's
self-guided filter of radius r, eps 0.01) give the layers 2u - m and
2(I - u) + m, m the image's mean (the true layers' means are unknown to
them; this gives both the image's mean); 'augment' and 'no_augment' are the
faithful config with `transparency.augment` on / off.
Every layer is scored with dm-pix PSNR/SSIM, matched over both orderings.

Each finished run is appended to `<results_dir>/runs.jsonl` right away, and runs
already there are skipped, so a long evaluation can be interrupted, resumed or
split over several processes (different --regimes / --methods); the tables are
printed from that file at the end (`--table_only` prints them without running).

Needs scikit-image (layers) and, for 'fastica', scikit-learn: optional
benchmark dependencies, not in requirements.txt.
"""

import json
import os
import time
from typing import Any

from absl import app
from absl import flags
import numpy as np

from configs import textures as textures_config
from configs import textures_faithful as textures_faithful_config
from configs import transparency as transparency_config
from configs import transparency_faithful as faithful_config
from benchmarks import runs_log
from ddip_jax import colour_unmixing
from ddip_jax import filters
from ddip_jax import image_io
from ddip_jax import metrics as metrics_lib
from ddip_jax import unmixing
from ddip_jax import writing
from ddip_jax.tasks import transparency
from scripts import make_transparency as mixtures_lib

_PAIRS = flags.DEFINE_list(
    'pairs',
    ['chelsea:coffee', 'astronaut:rocket', 'coffee:astronaut', 'rocket:chelsea', 'astronaut:chelsea', 'brick:rocket'],
    'Layer pairs R:T for the two-mixture regimes (names from make_transparency.SOURCES).',
)
_ADDITIVE_PAIRS = flags.DEFINE_list(
    'additive_pairs',
    ['brick:grass', 'gravel:brick', 'grass:gravel', 'text:gravel', 'text:brick', 'grass:text'],
    'Texture pairs R:T for the additive regime.',
)
_PHOTO_TEXTURE_PAIRS = flags.DEFINE_list(
    'photo_texture_pairs',
    ['chelsea:grass', 'coffee:gravel', 'astronaut:text'],
    'Photo:texture pairs R:T for the photo_texture regime.',
)
_REGIMES = flags.DEFINE_list(
    'regimes', ['uniform', 'realistic'], 'uniform, realistic, realistic_channels, additive and/or photo_texture.'
)
_METHODS = flags.DEFINE_list(
    'methods',
    None,
    'Methods to run (default: per regime, uniform and realistic: default, faithful and the '
    'FastICA variants; additive: augment,no_augment).',
)
_NUM_STEPS = flags.DEFINE_integer(
    'num_steps', None, "Override the configs' iterations (default: theirs); the alpha prior keeps its share."
)
_SIZE = flags.DEFINE_integer('size', mixtures_lib.SIZE, 'Width of the layers in pixels.')
_HEIGHT = flags.DEFINE_integer(
    'height', None, 'Height of the layers (default: --size): the square layers ' 'cropped to their middle rows.'
)
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the mixtures (alphas, alpha maps) and of the runs.')
_OUT_DIR = flags.DEFINE_string('results_dir', 'results/eval_transparency', 'Where inputs, outputs and runs.jsonl go.')
_TABLE_ONLY = flags.DEFINE_bool('table_only', False, 'Only print the tables from runs.jsonl.')
_RESCORE = flags.DEFINE_bool(
    'rescore',
    False,
    'First rebuild the finalised rows of the --size runs from their '
    "metrics.json (e.g. after a change of the finalisations' scoring).",
)

DEFAULT_METHODS = {
    'uniform': ('default', 'faithful', 'fastica', 'fastica_pixels', 'fastica_channels', 'fastica_pixels_channels'),
    'realistic': ('default', 'faithful', 'fastica', 'fastica_pixels', 'fastica_channels', 'fastica_pixels_channels'),
    'additive': ('default', 'colour', 'tv_0.05', 'tv_0.1', 'tv_0.2', 'guided_2', 'guided_4', 'guided_8'),
}
DEFAULT_METHODS['photo_texture'] = DEFAULT_METHODS['additive']
DEFAULT_METHODS['realistic_channels'] = DEFAULT_METHODS['realistic']
ONE_MIXTURE = ('additive', 'photo_texture')
# Finalised variants: method -> (the Double-DIP run it comes from, the `transparency.unmix` mode).
FINALISED = {
    f'{alpha}_{suffix}': (alpha, mode)
    for alpha in ('generator', 'scalar')
    for suffix, mode in (('unmix', 'learned'), ('refine', 'refined'))
}

# The configs as they are: configs/transparency.py and configs/transparency_faithful.py.
CONFIGS = {'default': transparency_config, 'faithful': faithful_config}
FASTICA = ('fastica', 'fastica_pixels', 'fastica_channels', 'fastica_pixels_channels')
_TWO_MIXTURE_METHODS = ('default', 'faithful', 'generator', 'scalar', 'map', *FASTICA, *FINALISED)
_ONE_MIXTURE_METHODS = ('default', 'faithful', 'colour', 'photo_unmix', 'augment', 'no_augment')
ADDITIVE_CONFIGS = {'default': textures_config, 'faithful': textures_faithful_config}


def valid_method(regime: str, method: str) -> bool:
  """Whether `method` applies to `regime` ('tv_<w>' and 'guided_<r>' take their parameter in the name)."""
  if regime in ONE_MIXTURE:
    return method in _ONE_MIXTURE_METHODS or method.startswith(('tv_', 'guided_'))
  return method in _TWO_MIXTURE_METHODS


def make_inputs(regime: str, pair: str, index: int, size: int, seed: int, height: int | None = None) -> dict[str, Any]:
  """The mixtures, the layers in them and the true alphas of one (regime, pair); height <= size."""
  top = (size - (height or size)) // 2
  r, t = (mixtures_lib.load_layer(name, size)[top : top + (height or size)] for name in pair.split(':'))
  rng = np.random.default_rng([seed, index])
  if regime == 'uniform':
    alphas = (float(rng.uniform(0.2, 0.45)), float(rng.uniform(0.55, 0.8)))
    return {'mixtures': mixtures_lib.uniform_mixtures(r, t, alphas), 'truths': (r, t), 'alphas': alphas}
  if regime == 'realistic':
    mixtures, truths = mixtures_lib.realistic_mixtures(r, t, rng)
    return {'mixtures': mixtures, 'truths': truths, 'alphas': None}
  if regime == 'realistic_channels':
    return channel_mixtures(r, t, rng)
  if regime in ONE_MIXTURE:
    return {'mixtures': [(r + t) / 2], 'truths': (r, t), 'alphas': None}
  raise app.UsageError(f'unknown regime {regime!r}')


def channel_mixtures(r: np.ndarray, t: np.ndarray, rng: np.random.Generator, blur_sigma: float = 1.5) -> dict[str, Any]:
  """As `make_transparency.realistic_mixtures`, but each colour channel has its own smooth map per mixture."""
  from scipy import ndimage  # pylint: disable=g-import-not-at-top

  blurred = ndimage.gaussian_filter(r, sigma=(blur_sigma, blur_sigma, 0), mode='reflect').astype(np.float32)
  maps = [
      np.concatenate([mixtures_lib.smooth_alpha(rng, r.shape[:2]) for _ in range(r.shape[-1])], -1) for _ in range(2)
  ]
  mixtures = [(a * blurred + (1 - a) * t).astype(np.float32) for a in maps]
  return {'mixtures': mixtures, 'truths': (blurred, t), 'alphas': None}


def fastica_layers(
    mixtures: list[np.ndarray], seed: int, *, on: str = 'gradients', per_channel: bool = False, order: bool = False
) -> tuple[np.ndarray, np.ndarray]:
  """Two layers from two mixtures with FastICA, using that each mixing row sums to one.

  FastICA estimates X = S M^T (after centring) with sources S of arbitrary
  scale and sign. The true mixing matrix is A = M diag(d) with A 1 = 1, so
  d = M^-1 1, and the layers are X A^-T (means included).

  Args:
    mixtures: two (H, W, 3) images.
    seed: FastICA's random state.
    on: 'gradients' estimates M from the mixtures' horizontal and vertical
      finite differences, which are far closer to independent (sparse edges)
      than the photos' pixel values; 'pixels' from the pixel values themselves.
    per_channel: one mixing matrix per colour channel (fitted to that
      channel alone) instead of one for all; each channel's layers are ordered
      so that layer 1 weighs more in the second mixture.
    order: put first the layer that weighs more in the second mixture.

  Returns:
    The two layers, (H, W, 3) in [0, 1].
  """
  from sklearn.decomposition import FastICA  # pylint: disable=g-import-not-at-top

  if per_channel:
    channels = [
        fastica_layers([m[..., c : c + 1] for m in mixtures], seed, on=on, order=True)
        for c in range(mixtures[0].shape[-1])
    ]
    return tuple(np.concatenate([c[k] for c in channels], axis=-1) for k in range(2))
  shape = mixtures[0].shape
  x = np.stack([m.reshape(-1) for m in mixtures], axis=1).astype(np.float64)  # (pixels * 3, 2)
  if on == 'gradients':
    fit_data = np.concatenate(
        [np.stack([np.diff(m, axis=axis).reshape(-1) for m in mixtures], axis=1) for axis in (0, 1)]
    )
  else:
    fit_data = x
  ica = FastICA(n_components=2, whiten='unit-variance', random_state=seed, max_iter=2000, tol=1e-6)
  ica.fit(fit_data)
  m = ica.mixing_
  a = m @ np.diag(np.linalg.solve(m, np.ones(2)))
  if order and a[0, 0] > a[1, 0]:
    a = a[:, ::-1]
  layers = x @ np.linalg.inv(a).T
  return tuple(np.clip(layers[:, k].reshape(shape), 0.0, 1.0).astype(np.float32) for k in range(2))


def structure_texture_layers(image: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
  """A classic structure/texture split of one mixture I = (R + T) / 2: 'tv_<weight>' or 'guided_<radius>'.

  Returns:
    (2u - m, 2(I - u) + m) clipped to [0, 1]: u the structure, m the image's mean.
  """
  from skimage.restoration import denoise_tv_chambolle  # pylint: disable=g-import-not-at-top

  kind, value = method.split('_', 1)
  if kind == 'tv':
    structure = denoise_tv_chambolle(image, weight=float(value), channel_axis=-1)
  else:
    structure = filters.guided_filter(image, image, radius=int(value), eps=0.01)
  mean = float(image.mean())
  return tuple(np.clip(x, 0.0, 1.0).astype(np.float32) for x in (2 * structure - mean, 2 * (image - structure) + mean))


def _save_inputs(folder: str, inputs: dict[str, Any]) -> dict[str, str]:
  paths = {}
  named = {f'mix{k + 1}': m for k, m in enumerate(inputs['mixtures'])}
  named.update(gt1=inputs['truths'][0], gt2=inputs['truths'][1])
  for name, img in named.items():
    paths[name] = os.path.join(folder, f'{name}.png')
    writing.save_image(paths[name], img)
  return paths


def _config(regime: str, method: str, paths: dict[str, str]):
  if regime in ONE_MIXTURE:
    config = ADDITIVE_CONFIGS.get(method, textures_faithful_config).get_config()
    if method in ('augment', 'no_augment'):
      config.transparency.augment = method == 'augment'
  elif method in CONFIGS:
    config = CONFIGS[method].get_config()
    config.transparency.image2 = paths['mix2']
  else:
    config = faithful_config.get_config()
    config.transparency.alpha = method
    config.transparency.image2 = paths['mix2']
    if method != 'map':  # All finalisations are scored; the 'refined' one is written.
      config.transparency.unmix = 'refined'
  config.image = paths['mix1']
  config.transparency.gt_layer1 = paths['gt1']
  config.transparency.gt_layer2 = paths['gt2']
  config.seed = _SEED.value
  config.progress = False
  if _NUM_STEPS.value:  # The official schedule compressed: the alpha prior keeps its share of the run.
    share = config.transparency.alpha_prior_steps / config.num_steps
    config.transparency.alpha_prior_steps = round(share * _NUM_STEPS.value)
    config.num_steps = _NUM_STEPS.value
  return config


def _alpha_error(estimated: list[float], truth: tuple[float, float] | None, swapped: bool) -> float | None:
  """Mean |a_k - true a_k|; with the layers swapped, a_k weighs T, so compare with 1 - a_k."""
  if truth is None or None in estimated:
    return None
  truth = [1 - a for a in truth] if swapped else list(truth)
  return float(np.mean(np.abs(np.asarray(estimated) - truth)))


def size_label() -> int | str:
  """The runs' size in records: the side of square layers, else 'WxH'."""
  if _HEIGHT.value in (None, _SIZE.value):
    return _SIZE.value
  return f'{_SIZE.value}x{_HEIGHT.value}'


def _key(regime: str, pair: str, method: str, steps: int | None, size: int) -> tuple[Any, ...]:
  """What identifies a run in runs.jsonl (a run with other settings is not skipped)."""
  return (regime, pair, method, steps, size)


def _steps(regime: str, method: str) -> int | None:
  if method.startswith(('fastica', 'colour', 'photo_unmix', 'tv_', 'guided_')):
    return None
  default = (
      (
          ADDITIVE_CONFIGS.get(method, textures_faithful_config)
          if regime in ONE_MIXTURE
          else CONFIGS.get(method, faithful_config)
      )
      .get_config()
      .num_steps
  )
  return _NUM_STEPS.value or default


def run_one(regime: str, pair: str, index: int, method: str) -> list[dict[str, Any]]:
  """Runs one method on one pair of one regime; returns its record (and its finalised variants')."""
  folder = os.path.join(_OUT_DIR.value, regime, pair.replace(':', '_'))
  inputs = make_inputs(regime, pair, index, _SIZE.value, _SEED.value, _HEIGHT.value)
  paths = _save_inputs(os.path.join(folder, 'inputs'), inputs)
  start = time.perf_counter()
  record: dict[str, Any] = {
      'regime': regime,
      'pair': pair,
      'method': method,
      'size': size_label(),
      'seed': _SEED.value,
      'true_alphas': inputs['alphas'],
  }
  if method.startswith('fastica'):
    on = 'pixels' if method.startswith('fastica_pixels') else 'gradients'
    # The 8-bit mixtures that Double-DIP reads, not the float ones.
    mixtures = [image_io.load_image(paths[f'mix{k + 1}']) for k in range(len(inputs['mixtures']))]
    layers = fastica_layers(mixtures, _SEED.value, on=on, per_channel=method.endswith('_channels'))
    scores = metrics_lib.layer_pair_scores(layers, inputs['truths'])
    record.update(seconds=time.perf_counter() - start, steps=None)
    for k, layer in enumerate(layers, start=1):
      writing.save_image(os.path.join(folder, method, f'layer{k}.png'), layer)
  elif method in ('colour', 'photo_unmix') or method.startswith(('tv_', 'guided_')):
    image = image_io.load_image(paths['mix1'])
    if method in ('colour', 'photo_unmix'):
      unmix_fn, fits_fn = (
          (colour_unmixing.colour_plane_unmix, colour_unmixing.colour_plane_fits)
          if method == 'colour'
          else (colour_unmixing.photo_texture_unmix, colour_unmixing.photo_texture_fits)
      )
      unmixed, info = unmix_fn(image)
      record['model_fits'] = fits_fn(info, unmixed)[0]
      layers = tuple(np.clip(2 * x, 0.0, 1.0) for x in unmixed)
    else:
      layers = structure_texture_layers(image, method)
    scores = metrics_lib.layer_pair_scores(layers, inputs['truths'])
    record.update(seconds=time.perf_counter() - start, steps=None)
    for k, layer in enumerate(layers, start=1):
      writing.save_image(os.path.join(folder, method, f'layer{k}.png'), layer)
  else:
    config = _config(regime, method, paths)
    metrics = transparency.run(config, os.path.join(folder, method))
    record.update(
        seconds=time.perf_counter() - start, steps=config.num_steps, best_recon_psnr=metrics['best_recon_psnr']
    )
    if method in CONFIGS or regime in ONE_MIXTURE:
      record['layers_from'] = metrics.get('layers_from', 'generators')
      if 'generators' in metrics.get('finalise', {}) and regime in ONE_MIXTURE:
        record['generators_psnr'] = metrics['finalise']['generators']['ground_truth']['mean_psnr']
    elif 'finalise' in metrics:
      return finalised_records(record, metrics['finalise'], inputs['alphas'])
    estimated = [metrics.get(a) for a in transparency.ALPHAS] if regime not in ONE_MIXTURE else []
    return [_scored(record, metrics['ground_truth'], estimated or None, inputs['alphas'])]
  return [_scored(record, scores, None, inputs['alphas'])]


def finalised_records(
    record: dict[str, Any], report: dict[str, Any], true_alphas: tuple[float, float] | None
) -> list[dict[str, Any]]:
  """The records of a Double-DIP run scored with all finalisations (`finalise_by_unmixing`'s report).

  The generators' layers are `record`'s method; '<method>_unmix' / '_refine'
  use the unmixed layers whenever they were tried (`unmix_select='always'`;
  the generators' where the alphas were too close), and say whether the loss
  would have kept them ('kept_by_loss', what `unmix_select='loss'` does).
  """
  base = report['generators']
  records = [_scored(dict(record), base['ground_truth'], base['alphas'], true_alphas)]
  for name, (alpha, mode) in FINALISED.items():
    if alpha == record['method']:
      chosen = report[unmixing.choose_finalisation(report, mode, 'always')]
      kept = unmixing.choose_finalisation(report, mode, 'loss') == mode
      records.append(
          _scored(dict(record, method=name, kept_by_loss=kept), chosen['ground_truth'], chosen['alphas'], true_alphas)
      )
  return records


def _rescore(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """Finalised records rebuilt from the finished Double-DIP runs' metrics.json (no optimisation)."""
  records = []
  for r in runs:
    path = os.path.join(_OUT_DIR.value, r['regime'], r['pair'].replace(':', '_'), r['method'], 'metrics.json')
    if r['method'] in ('generator', 'scalar') and r['size'] == size_label() and os.path.exists(path):
      with open(path) as f:
        metrics = json.load(f)
      if 'finalise' in metrics and metrics['working_shape'] == [r['size']] * 2:
        records += finalised_records(
            {k: v for k, v in r.items() if k in _RUN_FIELDS}, metrics['finalise'], r['true_alphas']
        )[1:]
  return records


_RUN_FIELDS = ('regime', 'pair', 'method', 'size', 'seed', 'true_alphas', 'seconds', 'steps', 'best_recon_psnr')


def _scored(
    record: dict[str, Any], scores: dict[str, Any], alphas: list[float] | None, true_alphas: tuple[float, float] | None
) -> dict[str, Any]:
  """`record` with the layer scores and the estimated alphas added."""
  record.update(
      alphas=alphas,
      psnr=scores['psnr'],
      ssim=scores['ssim'],
      mean_psnr=scores['mean_psnr'],
      mean_ssim=scores['mean_ssim'],
      swapped=scores['swapped'],
      alpha_error=_alpha_error(alphas or [None], true_alphas, scores['swapped']),
  )
  return record


def print_tables(runs: list[dict[str, Any]]) -> None:
  """Per-run rows, then the mean per (regime, method); a later record of the same run replaces an earlier one."""
  latest = {_key(r['regime'], r['pair'], r['method'], r['steps'], r['size']): r for r in runs}
  runs = list(latest.values())
  print(
      '| regime | pair | method | size | PSNR R / T (dB) | SSIM R / T | mean PSNR | mean SSIM | alpha err | steps | s |'
  )
  print('|---|---|---|---|---|---|---|---|---|---|---|')
  for r in runs:
    err = '-' if r['alpha_error'] is None else f"{r['alpha_error']:.3f}"
    print(
        f"| {r['regime']} | {r['pair']} | {r['method']} | {r['size']} | {r['psnr'][0]:.2f} / {r['psnr'][1]:.2f} | "
        f"{r['ssim'][0]:.3f} / {r['ssim'][1]:.3f} | {r['mean_psnr']:.2f} | {r['mean_ssim']:.3f} | {err} | "
        f"{r['steps'] or '-'} | {r['seconds']:.1f} |"
    )
  print()
  print(
      '| regime | method | size | steps | pairs | mean layer PSNR (dB) | mean layer SSIM | mean s per run | '
      'loss guard keeps it |'
  )
  print('|---|---|---|---|---|---|---|---|---|')
  groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
  for r in runs:  # Runs at other sizes or schedules are other experiments.
    groups.setdefault((r['regime'], r['method'], r['size'], r['steps']), []).append(r)
  for (regime, method, size, steps), rs in groups.items():
    kept = [r['kept_by_loss'] for r in rs if 'kept_by_loss' in r]
    print(
        f"| {regime} | {method} | {size} | {steps or '-'} | {len(rs)} | {np.mean([r['mean_psnr'] for r in rs]):.2f} | "
        f"{np.mean([r['mean_ssim'] for r in rs]):.3f} | {np.mean([r['seconds'] for r in rs]):.1f} | "
        f"{f'{sum(kept)} of {len(kept)}' if kept else '-'} |"
    )


def _pair_index(pair: str, regime: str, pairs: list[str]) -> int:
  """The pair's place in the default --pairs (its mixtures' seed), so that a subset run makes the same mixtures."""
  defaults = {'additive': _ADDITIVE_PAIRS, 'photo_texture': _PHOTO_TEXTURE_PAIRS}.get(regime, _PAIRS).default
  return defaults.index(pair) if pair in defaults else len(defaults) + pairs.index(pair)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  runs_path = os.path.join(_OUT_DIR.value, 'runs.jsonl')
  if _RESCORE.value:
    for record in _rescore(runs_log.load_runs(runs_path)):
      runs_log.append_run(runs_path, record)
  if not _TABLE_ONLY.value:
    done = {_key(r['regime'], r['pair'], r['method'], r['steps'], r['size']) for r in runs_log.load_runs(runs_path)}
    for regime in _REGIMES.value:
      if regime not in DEFAULT_METHODS:
        raise app.UsageError(f'unknown regime {regime!r} (one of {", ".join(DEFAULT_METHODS)})')
      pairs = {'additive': _ADDITIVE_PAIRS, 'photo_texture': _PHOTO_TEXTURE_PAIRS}.get(regime, _PAIRS).value
      methods = _METHODS.value or DEFAULT_METHODS[regime]
      unknown = [m for m in methods if not valid_method(regime, m)]
      if unknown:
        raise app.UsageError(f'methods {unknown} do not apply to regime {regime!r}')
      for pair in pairs:
        index = _pair_index(pair, regime, pairs)
        for method in methods:
          if _key(regime, pair, method, _steps(regime, method), size_label()) in done:
            continue
          for record in run_one(regime, pair, index, FINALISED.get(method, (method,))[0]):
            print(
                f"{regime} {pair} {record['method']}: mean PSNR {record['mean_psnr']:.2f} dB, "
                f"SSIM {record['mean_ssim']:.3f}, {record['seconds']:.1f} s",
                flush=True,
            )
            runs_log.append_run(runs_path, record)
            done.add(_key(regime, pair, record['method'], record['steps'], record['size']))
  print_tables(runs_log.load_runs(runs_path))


if __name__ == '__main__':
  app.run(main)

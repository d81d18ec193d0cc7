"""Behaviour unchanged: tiny runs of every demo give the outputs recorded in tests/golden/.

Each demo config (its own input files) runs at a tiny size (32 px working
resolution, 2-scale generators of 4 and 8 channels, 3 iterations a stage)
through its Python API function (`ddip_jax.segment`, ...; the path `main.py`
takes too) into a workdir, and the SHA-256 of every file it writes (the PNGs, and
metrics.json less its timings and environment) must equal the recorded ones.
PNGs are compared by their decoded pixels (another Pillow may encode the same
pixels to other bytes). XLA:CPU gives the same bits for the same program on
the same machine and jax, so the comparison is exact; another jax/jaxlib or
another CPU may round differently, so the recorded files name theirs
(`fingerprint`) and the test is skipped, saying why, where they differ. To
record again, on the commit before a change:

  DDIP_JAX_RECORD_GOLDEN=1 python -m pytest -q tests/golden_test.py

and check that the change keeps them. (Recorded first with the tasks' `run`
called directly, before the API existed: the API writes the same files.)
"""

import dataclasses
import hashlib
import json
import os
import platform
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jaxlib
import ml_collections
import numpy as np
from PIL import Image

import ddip_jax
from ddip_jax import cli
from ddip_jax import clip_io
from ddip_jax import image_io
from ddip_jax import writing

_GOLDEN = os.path.join(os.path.dirname(__file__), 'golden')
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_RECORD = bool(os.environ.get('DDIP_JAX_RECORD_GOLDEN'))
# Metrics of the wall clock and the machine: the only entries that may differ between runs.
_NOT_COMPARED = 'present (holds timings; its layers are compared through the PNGs)'
_VARYING = ('seconds', 'steps_per_second', 'hint_seconds', 'frames_per_second', 'environment')


def fingerprint() -> dict[str, str]:
  """What the recorded bits depend on besides the code: jax, jaxlib and the CPU."""
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      lines = f.read().splitlines()
    model = next((l.split(':', 1)[1].strip() for l in lines if l.startswith('model name')), '')
    flags = next((l.split(':', 1)[1].split() for l in lines if l.startswith('flags')), [])
    cpu = f'{model} ({hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:12]})'
  except OSError:
    pass
  return {'jax': jax.__version__, 'jaxlib': jaxlib.__version__, 'cpu': cpu}


def tiny(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` at the golden runs' size: 32 px, a 2-scale generator, 3 iterations a stage."""
  config.max_side = 32
  config.num_steps = min(config.num_steps, 3)  # configs/watermark.py's 0 (no step 2) stays 0.
  config.progress = False
  config.loop.checkpoint_every = 0
  config.generator.channels_down = config.generator.channels_up = (4, 8)
  config.generator.channels_skip = (0, 0)
  config.segmentation.hint_steps = 3
  config.segmentation.hint_phase = 1
  config.transparency.alpha_prior_steps = 2
  config.dehaze.airlight_tie_steps = 2
  config.watermark.hint_steps = 3
  config.watermark.mask_channels = (4, 8)
  config.watermark.mask_skip = (0, 0)
  config.video.summary_frames = 2
  return config


# name -> (config file, overrides beyond `tiny`).
CASES = {
    'zebra': ('configs/zebra.py', {}),
    'transparency': ('configs/transparency.py', {}),
    'dehaze': ('configs/dehaze.py', {'dehaze.passes': 2}),
    'watermark': ('configs/watermark.py', {'watermark.runs': 2}),
    'watermark_many': ('configs/watermark_many.py', {'watermark.runs': 1}),
    'video': ('configs/video.py', {'video.window_size': 6, 'video.window_overlap': 2}),
}


def case_config(name: str) -> ml_collections.ConfigDict:
  path, overrides = CASES[name]
  config = tiny(cli.load_config_file(os.path.join(_ROOT, path)))
  for field, value in overrides.items():
    section, leaf = field.split('.')
    config[section][leaf] = value
  return config


def digests(workdir: str) -> dict[str, str]:
  """SHA-256 of every file under `workdir` by relative path; metrics.json's without `_VARYING` entries.

  A watermark run's `run<k>.npz` embeds its metrics with their timings: only its presence is compared.
  """
  result = {}
  for folder, _, names in os.walk(workdir):
    for name in names:
      path = os.path.join(folder, name)
      with open(path, 'rb') as f:
        data = f.read()
      if name == 'metrics.json':
        data = json.dumps(_stable(json.loads(data)), sort_keys=True).encode()
      elif name.endswith('.png'):
        with Image.open(path) as im:
          pixels = np.asarray(im)
        data = f'{pixels.dtype}{pixels.shape}'.encode() + pixels.tobytes()
      elif name.endswith('.npz'):  # A run's layers kept for a rerun, with its timings: they reach the PNGs.
        result[os.path.relpath(path, workdir)] = _NOT_COMPARED
        continue
      result[os.path.relpath(path, workdir)] = hashlib.sha256(data).hexdigest()
  return dict(sorted(result.items()))


def _stable(metrics):
  if isinstance(metrics, dict):
    return {k: _stable(v) for k, v in metrics.items() if k not in _VARYING}
  if isinstance(metrics, list):
    return [_stable(v) for v in metrics]
  return metrics


def run_case(name: str, workdir: str):
  """Runs golden case `name` through its `ddip_jax` API function into `workdir`; returns the result."""
  config = case_config(name)
  call = {
      'zebra': lambda: ddip_jax.segment(config.image, config=config, workdir=workdir),
      'transparency': lambda: ddip_jax.separate(
          config.image, config.transparency.image2, config=config, workdir=workdir
      ),
      'dehaze': lambda: ddip_jax.dehaze(config.image, config=config, workdir=workdir),
      'watermark': lambda: ddip_jax.remove_watermark(
          config.image, config.watermark.hint, config=config, workdir=workdir
      ),
      'watermark_many': lambda: ddip_jax.remove_watermark(
          config.image, others=config.watermark.images, config=config, workdir=workdir
      ),
      'video': lambda: ddip_jax.decompose_video(config.image, config=config, workdir=workdir),
  }[name]
  cwd = os.getcwd()
  os.chdir(_ROOT)  # The demo configs name their inputs relative to the repository root.
  try:
    return call()
  finally:
    os.chdir(cwd)


class GoldenTest(parameterized.TestCase):

  @parameterized.named_parameters(*((name, name) for name in CASES))
  def test_tiny_run_gives_the_recorded_outputs_and_returns_them(self, name):
    with tempfile.TemporaryDirectory() as workdir:
      result = run_case(name, workdir)
      got = digests(workdir)
      # The API returns the layers it wrote, the first one at the input's full size.
      layers = [getattr(result, f.name) for f in dataclasses.fields(result)]
      for value in layers[:-1]:
        for layer in value if isinstance(value, tuple) else [] if value is None else [value]:
          self.assertEqual(layer.dtype, np.float32)
          self.assertTrue(np.all((layer >= 0) & (layer <= 1)))
      config = case_config(name)
      full = (
          clip_io.load_frames(os.path.join(_ROOT, config.image))[0].shape[:3]
          if name == 'video'
          else image_io.load_image(os.path.join(_ROOT, config.image)).shape[:2]
      )
      self.assertEqual(layers[0].shape[: len(full)], full)
      if name == 'zebra':
        np.testing.assert_array_equal(
            result.mask_binary,
            image_io.load_mask(os.path.join(workdir, 'mask_binary.png'), shape=result.mask_binary.shape),
        )
    metrics = result.metrics
    self.assertEqual(metrics['status'], 'ok')
    path = os.path.join(_GOLDEN, f'{name}.json')
    if _RECORD:
      os.makedirs(_GOLDEN, exist_ok=True)
      with open(path, 'w') as f:
        json.dump(
            {'files': got, 'metrics': json.loads(writing.json_bytes(_stable(metrics))), 'fingerprint': fingerprint()},
            f,
            indent=1,
            sort_keys=True,
        )
        f.write('\n')
    with open(path) as f:
      golden = json.load(f)
    if golden.get('fingerprint') != fingerprint():
      self.skipTest(
          f'recorded with {golden.get("fingerprint")}, this is {fingerprint()}: '
          'the same code may round differently (record again on the commit before a change)'
      )
    self.assertEqual(
        got,
        golden['files'],
        f'{name}: outputs differ from {path}; metrics now: ' f'{writing.json_bytes(_stable(metrics))[:2000]}',
    )


if __name__ == '__main__':
  absltest.main()

r"""Does a DIP trained at half size continue at full size? (issue 17's coarse-to-fine lever)

  PYTHONPATH=. python benchmarks/coarse_to_fine.py [--size=256] [--full_steps=1200]
      [--coarse_steps=900] [--fine_steps=300] [--modes=nearest,bilinear,fresh]

Fits one official 5-scale generator (8..128 channels, kernel 5, the one of
transparency, watermark and dehazing) to a photo (scikit-image's astronaut,
`--size` px square) by MSE, the core of every Double-DIP task, in one process:

- `full`: `--full_steps` Adam steps at full size from the initial parameters;
- for each of `--modes`: `--coarse_steps` at half size (the photo and the noise
  at half size), then the parameters carried to full size and `--fine_steps`
  more there, with the full-size noise made from the half-size one by
  `nearest` or `bilinear` upsampling, or drawn afresh (`fresh`).

It prints the reconstruction PSNR every `--every` steps against the seconds
spent optimising (compilation excluded: every program is compiled before the
clock starts), so the runs compare at equal time. Coarse to fine wins if a
carried run reaches a PSNR sooner than `full` does.
"""

import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import optax
from skimage import data
from skimage import transform

from ddip_jax import models

_SIZE = flags.DEFINE_integer('size', 256, 'Side of the photo at full size (a multiple of 64).')
_FULL_STEPS = flags.DEFINE_integer('full_steps', 1200, 'Steps of the full-size run.')
_COARSE_STEPS = flags.DEFINE_integer('coarse_steps', 900, 'Steps at half size before carrying the parameters.')
_FINE_STEPS = flags.DEFINE_integer('fine_steps', 300, 'Steps at full size after carrying them.')
_MODES = flags.DEFINE_list('modes', ['nearest', 'bilinear', 'fresh'], 'How the full-size noise is made.')
_EVERY = flags.DEFINE_integer('every', 100, 'Steps between PSNR lines.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the parameters and the noise.')

INPUT_DEPTH = 8


def generator() -> models.SkipGenerator:
  channels = (8, 16, 32, 64, 128)
  return models.SkipGenerator(
      out_channels=3,
      channels_down=channels,
      channels_up=channels,
      channels_skip=(0, 0, 0, 4, 4),
      kernel_down=5,
      kernel_up=5,
  )


def make_step(gen: models.SkipGenerator, optimizer: optax.GradientTransformation):
  """One jitted Adam step on MSE(gen(z), target); returns (params, stats, opt_state, mse)."""

  @jax.jit
  def step(params, stats, opt_state, z, target):
    def loss(p):
      out, updates = gen.apply({'params': p, 'batch_stats': stats}, z, mutable=['batch_stats'])
      return jnp.mean((out - target) ** 2), updates['batch_stats']

    (mse, stats), grads = jax.value_and_grad(loss, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), stats, opt_state, mse

  return step


def psnr(mse) -> float:
  return float(-10 * np.log10(float(mse)))


def main(argv):
  del argv
  size, depth = _SIZE.value, INPUT_DEPTH
  photo = transform.resize(data.astronaut(), (size, size), anti_aliasing=True).astype(np.float32)
  target = jnp.asarray(photo)[None]
  small_target = jnp.asarray(transform.resize(photo, (size // 2, size // 2), anti_aliasing=True), jnp.float32)[None]
  key = jax.random.key(_SEED.value)
  z_full = jax.random.uniform(jax.random.fold_in(key, 1), (1, size, size, depth)) * 0.1
  z_small = jax.random.uniform(jax.random.fold_in(key, 2), (1, size // 2, size // 2, depth)) * 0.1
  z_carried = {
      'nearest': jnp.repeat(jnp.repeat(z_small, 2, axis=1), 2, axis=2),
      'bilinear': jax.image.resize(z_small, z_full.shape, 'bilinear'),
      'fresh': z_full,
  }
  gen = generator()
  optimizer = optax.adam(1e-3)
  step = make_step(gen, optimizer)
  variables = gen.init(jax.random.fold_in(key, 0), z_full)
  params0, stats0 = variables['params'], variables['batch_stats']
  for z, t in ((z_full, target), (z_small, small_target)):  # Compile both sizes before any clock starts.
    jax.block_until_ready(step(params0, stats0, optimizer.init(params0), z, t))
  print(
      f'jax {jax.__version__}, {jax.devices()[0].device_kind}, {size}x{size} photo, ' f'{size // 2}x{size // 2} coarse',
      flush=True,
  )

  def run(name, params, stats, z, t, num_steps, clock):
    opt_state = optimizer.init(params)
    start = time.perf_counter()
    for i in range(1, num_steps + 1):
      params, stats, opt_state, mse = step(params, stats, opt_state, z, t)
      if i % _EVERY.value == 0 or i == num_steps:
        print(
            f'{name:10s} step {i:5d}  psnr {psnr(mse):6.2f} dB  at {clock + time.perf_counter() - start:7.1f} s',
            flush=True,
        )
    jax.block_until_ready(params)
    return params, stats, clock + time.perf_counter() - start

  _, _, full_seconds = run('full', params0, stats0, z_full, target, _FULL_STEPS.value, 0.0)
  print(f'full: {1000 * full_seconds / _FULL_STEPS.value:.1f} ms/step', flush=True)
  params, stats, coarse_seconds = run('coarse', params0, stats0, z_small, small_target, _COARSE_STEPS.value, 0.0)
  print(f'coarse: {1000 * coarse_seconds / _COARSE_STEPS.value:.1f} ms/step', flush=True)
  for mode in _MODES.value:
    z = z_carried[mode]
    out, _ = gen.apply({'params': params, 'batch_stats': stats}, z, mutable=['batch_stats'])
    print(
        f'{mode}: carried to full size, psnr {psnr(jnp.mean((out - target) ** 2)):.2f} dB before its first step',
        flush=True,
    )
    run(mode, params, stats, z, target, _FINE_STEPS.value, coarse_seconds)


if __name__ == '__main__':
  app.run(main)

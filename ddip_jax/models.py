"""Deep-Image-Prior generators: the official "skip" encoder-decoder in flax.linen.

The architecture follows `models/skip.py` of the official Deep Image Prior /
Double-DIP code, in NHWC layout:

  scale i (input depth d):
    deeper: pad -> conv(d->down[i], k_down, stride 2) -> BN -> act
            -> pad -> conv(down[i]->down[i], k_down) -> BN -> act
            -> [scale i+1] -> x2 upsampling
    skip (only if skip[i] > 0): conv1x1(d->skip[i]) -> BN -> act
    concat([skip, deeper]) -> BN -> pad -> conv(->up[i], k_up) -> BN -> act
            -> conv1x1(up[i]->up[i]) -> BN -> act
  head: conv1x1(up[0]->out_channels) -> sigmoid

BatchNorm always normalises with the statistics of the current batch: the official
code never switches its networks to eval mode, so running averages are never read.
They are still tracked in the `batch_stats` collection, as flax expects.

Images whose sides are not multiples of 2**num_scales: the generator works on a
canvas rounded up to the next multiple (`canvas_shape`) and its output is
centre-cropped back to the image (`center_crop`); the noise covers the canvas.
"""

from collections.abc import Mapping, Sequence
import dataclasses
import math
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ddip_jax import compile_cache
from ddip_jax import filters


def _torch_uniform(fan_in: int):
  """PyTorch's default conv initialiser: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

  DIP results depend on the initial weights' scale, so kernels and biases use
  PyTorch's rule instead of flax's lecun_normal / zeros.
  """
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class ReflectConv(nn.Module):
  """Reflection padding by (k-1)//2, then a VALID convolution with bias."""

  features: int
  kernel_size: int
  stride: int = 1
  dtype: Any = jnp.float32  # Compute dtype of the convolution (bf16 on GPU).

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    pad = (k - 1) // 2
    if pad:
      x = filters.reflect_pad(x, pad)
    fan_in = k * k * x.shape[-1]
    kernel = self.param('kernel', _torch_uniform(fan_in), (k, k, x.shape[-1], self.features))
    bias = self.param('bias', _torch_uniform(fan_in), (self.features,))
    y = jax.lax.conv_general_dilated(
        x.astype(self.dtype),
        kernel.astype(self.dtype),
        window_strides=(self.stride, self.stride),
        padding='VALID',
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
        preferred_element_type=jnp.float32,
    )
    return y + bias


def center_crop(x: jax.Array, height: int, width: int) -> jax.Array:
  """Centre-crops the spatial dims of an NHWC tensor to (height, width)."""
  dh = (x.shape[1] - height) // 2
  dw = (x.shape[2] - width) // 2
  return x[:, dh : dh + height, dw : dw + width, :]


def canvas_shape(height: int, width: int, num_scales: int) -> tuple[int, int]:
  """The generator's working size: sides rounded up to multiples of 2**num_scales."""
  m = 2**num_scales
  return (-(-height // m) * m, -(-width // m) * m)


def upsample_x2(x: jax.Array, mode: str) -> jax.Array:
  """x2 upsampling of NHWC maps: 'bilinear' (torch align_corners=False) or 'nearest'."""
  if mode == 'bilinear':
    return filters.upsample_bilinear_x2(x)
  if mode == 'nearest':
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
  raise ValueError(f'unknown upsampling mode {mode!r}')


class SkipGenerator(nn.Module):
  """The DIP "skip" encoder-decoder (see module docstring).

  Attributes:
    out_channels: channels of the output image (3 for a layer, 1 for a mask).
    channels_down: channels of each scale's downsampling branch.
    channels_up: channels of each scale's upsampling branch (same length).
    channels_skip: channels of each scale's skip branch; 0 disables it.
    kernel_down: kernel size of the downsampling convolutions.
    kernel_up: kernel size of the upsampling convolutions.
    negative_slope: LeakyReLU slope.
    upsample_mode: 'bilinear' or 'nearest'.
    sigmoid: apply a sigmoid to the output (values in (0, 1)).
    dtype: convolution compute dtype.
  """

  out_channels: int = 3
  channels_down: Sequence[int] = (8, 16, 32)
  channels_up: Sequence[int] = (8, 16, 32)
  channels_skip: Sequence[int] = (0, 0, 0)
  kernel_down: int = 3
  kernel_up: int = 3
  negative_slope: float = 0.2
  upsample_mode: str = 'bilinear'
  sigmoid: bool = True
  dtype: Any = jnp.float32

  @property
  def num_scales(self) -> int:
    return len(self.channels_down)

  def _bn_act(self, x: jax.Array) -> jax.Array:
    x = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)(x)
    return nn.leaky_relu(x, self.negative_slope)

  def _scale(self, x: jax.Array, i: int) -> jax.Array:
    deeper = ReflectConv(self.channels_down[i], self.kernel_down, stride=2, dtype=self.dtype)(x)
    deeper = self._bn_act(deeper)
    deeper = ReflectConv(self.channels_down[i], self.kernel_down, dtype=self.dtype)(deeper)
    deeper = self._bn_act(deeper)
    if i + 1 < self.num_scales:
      deeper = self._scale(deeper, i + 1)
    deeper = upsample_x2(deeper, self.upsample_mode)
    if self.channels_skip[i]:
      skip = self._bn_act(ReflectConv(self.channels_skip[i], 1, dtype=self.dtype)(x))
      h = min(skip.shape[1], deeper.shape[1])
      w = min(skip.shape[2], deeper.shape[2])
      deeper = jnp.concatenate([center_crop(skip, h, w), center_crop(deeper, h, w)], axis=-1)
    y = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)(deeper)
    y = self._bn_act(ReflectConv(self.channels_up[i], self.kernel_up, dtype=self.dtype)(y))
    return self._bn_act(ReflectConv(self.channels_up[i], 1, dtype=self.dtype)(y))

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    """Maps noise to an image.

    Args:
      z: (N, H, W, D) input noise; H and W multiples of 2**num_scales.

    Returns:
      (N, H, W, out_channels) float32, in (0, 1) when `sigmoid` is set.
    """
    chex.assert_rank(z, 4)
    if not len(self.channels_down) == len(self.channels_up) == len(self.channels_skip):
      raise ValueError('channels_down, channels_up and channels_skip need equal lengths')
    y = ReflectConv(self.out_channels, 1, dtype=self.dtype)(self._scale(z, 0))
    return jax.nn.sigmoid(y) if self.sigmoid else y


def make_noise(
    key: jax.Array,
    shape: tuple[int, int],
    depth: int,
    *,
    var: float = 0.01,
    method: str = 'noise',
) -> jax.Array:
  """The fixed input of a generator.

  Args:
    key: PRNG key.
    shape: (H, W) canvas size.
    depth: number of channels D.
    var: the noise is uniform in (-var/2, var/2) ('noise' method; unused by
      'meshgrid').
    method: 'noise' or 'meshgrid' (channels alternate the x and y coordinates
      in [0, 1], repeated to fill D channels).

  Returns:
    (1, H, W, D) float32.
  """
  h, w = shape
  if method == 'noise':
    return jax.random.uniform(key, (1, h, w, depth), jnp.float32, -var / 2, var / 2)
  if method == 'meshgrid':
    yy, xx = np.meshgrid(np.arange(h) / max(h - 1, 1), np.arange(w) / max(w - 1, 1), indexing='ij')
    grid = np.stack([xx, yy], axis=-1)[None].astype(np.float32)
    if depth != 2:
      reps = -(-depth // 2)
      grid = np.concatenate([grid] * reps, axis=-1)[..., :depth]
    return jnp.asarray(grid)
  raise ValueError(f'unknown noise method {method!r}')


def make_video_noise(
    key: jax.Array,
    shape: tuple[int, int],
    depth: int,
    num_frames: int,
    *,
    var: float = 0.01,
    correlation: float = 0.8,
    method: str = 'noise',
) -> jax.Array:
  """Temporally coherent inputs for the frames of a clip.

  Frame 0 is `make_noise`; frame f is frame f-1 times `correlation` plus an
  increment, fresh uniform noise of the same range times
  sqrt(1 - correlation^2): a stationary (AR(1)) walk, so every frame's input
  has the same statistics, neighbouring frames' inputs are correlated by
  `correlation` and frames k apart by correlation^k. The generators then get
  inputs that change smoothly along the clip yet tell every frame apart. (The
  official leftover helper `get_video_noise` adds increments in (0, var) to the
  previous frame: a drift whose later frames are ever more alike, which we
  measured to degrade the later frames' masks.)

  Args:
    key: PRNG key.
    shape: (H, W) canvas size.
    depth: number of channels D.
    num_frames: F.
    var: range of the noise (`make_noise`).
    correlation: correlation of neighbouring frames' inputs, in [0, 1].
    method: frame 0's method, 'noise' or 'meshgrid' ('meshgrid' frames are
      the grid walking away by uniform increments of range `var`).

  Returns:
    (F, H, W, D) float32.
  """
  base_key, walk_key = jax.random.split(key)
  frames = [make_noise(base_key, shape, depth, var=var, method=method)[0]]
  fresh = jax.random.uniform(walk_key, (num_frames - 1, *shape, depth), jnp.float32, -var / 2, var / 2)
  scale = math.sqrt(max(0.0, 1.0 - correlation**2))
  for increment in fresh:
    frames.append(correlation * frames[-1] + scale * increment)
  return jnp.stack(frames)


def perturb(z: jax.Array, key: jax.Array, sigma: jax.Array) -> jax.Array:
  """The per-iteration input perturbation: z + N(0, 1) * sigma."""
  return z + jax.random.normal(key, z.shape, z.dtype) * sigma


def perturbation_sigma(step: jax.Array, num_steps: int, sigma_step: float) -> jax.Array:
  """The official perturbation schedule (segmentation, textures).

  sigma(it) = sigma_step * (it // 100) for it < 1000, then sigma_step; 0 at the
  last step.
  """
  sigma = jnp.where(step < 1000, sigma_step * (step // 100), sigma_step)
  return jnp.where(step == num_steps - 1, 0.0, sigma).astype(jnp.float32)


def generator_from_config(gen_config, *, out_channels: int, **overrides) -> SkipGenerator:
  """A `SkipGenerator` from a config's `generator` section (fields may be overridden)."""
  fields = dict(
      channels_down=tuple(gen_config.channels_down),
      channels_up=tuple(gen_config.channels_up),
      channels_skip=tuple(gen_config.channels_skip),
      kernel_down=gen_config.kernel_down,
      kernel_up=gen_config.kernel_up,
      negative_slope=gen_config.negative_slope,
      upsample_mode=gen_config.upsample_mode,
      dtype=jnp.dtype(gen_config.dtype),
  )
  fields.update(overrides)
  return SkipGenerator(out_channels=out_channels, **fields)


def noise_from_config(gen_config, key: jax.Array, shape: tuple[int, int]) -> jax.Array:
  """A generator input from a config's `generator` section: (1, H, W, input_depth)."""
  return make_noise(key, shape, gen_config.input_depth, var=gen_config.noise_var, method=gen_config.noise_method)


def video_noise_from_config(
    gen_config, key: jax.Array, shape: tuple[int, int], *, num_frames: int, correlation: float
) -> jax.Array:
  """`make_video_noise` from a config's `generator` section: (F, H, W, input_depth)."""
  return make_video_noise(
      key,
      shape,
      gen_config.input_depth,
      num_frames,
      var=gen_config.noise_var,
      correlation=correlation,
      method=gen_config.noise_method,
  )


def apply_generators(
    generators: Mapping[str, nn.Module],
    params: Any,
    batch_stats: Any,
    inputs: Mapping[str, jax.Array],
) -> tuple[dict[str, jax.Array], Any]:
  """Runs each named generator on its input (train-mode BatchNorm).

  Returns:
    (outputs, new_batch_stats), both keyed like `inputs`.
  """
  outputs, new_stats = {}, {}
  for name, z in inputs.items():
    out, updates = generators[name].apply(
        {'params': params[name], 'batch_stats': batch_stats[name]}, z, mutable=['batch_stats']
    )
    outputs[name] = out
    new_stats[name] = updates['batch_stats']
  return outputs, {**batch_stats, **new_stats}


def init_generators(
    generators: Mapping[str, nn.Module], inputs: Mapping[str, jax.Array], key: jax.Array
) -> tuple[Any, Any]:
  """Initialises every generator with its own key folded from `key`.

  One jitted program for all of them: run eagerly, every initialiser of every
  parameter shape is compiled on its own (about twenty small programs, 10-30 s
  of a cold start on a 2-core CPU). It runs once, so it is compiled to compile
  fast (`compile_cache.run_once_options`).
  """
  inputs = dict(inputs)
  if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((key, inputs))):
    # Inside a traced function: part of its program (compiler options are top-level only).
    return _init_fn(generators)(key, inputs)
  return _init_program(generators)(key, inputs)


def generator_shapes(
    generators: Mapping[str, nn.Module], inputs: Mapping[str, jax.Array], key: jax.Array
) -> tuple[Any, Any]:
  """The shapes and dtypes (`jax.ShapeDtypeStruct`s) of what `init_generators` returns, without running it.

  Traces the same jitted program, so a later `init_generators` does not trace it again.
  """
  return jax.eval_shape(_init_program(generators), key, dict(inputs))


def _init_fn(generators: Mapping[str, nn.Module]):
  """init(key, inputs) -> (params, batch_stats) of every generator, each with its own key folded from `key`."""

  def init(key, inputs):
    params, batch_stats = {}, {}
    for i, name in enumerate(sorted(generators)):
      variables = generators[name].init(jax.random.fold_in(key, i), inputs[name])
      params[name] = variables.get('params', {})  # A module may hold only state.
      batch_stats[name] = variables.get('batch_stats', {})
    return params, batch_stats

  return init


def _init_program(generators: Mapping[str, nn.Module]):
  """`_init_fn` jitted, one function per generator configuration: another restart or image of the same size
  reuses its trace and compiled program."""
  cache_key = repr(sorted((name, repr(module)) for name, module in generators.items()))
  jitted = _INIT_PROGRAMS.pop(cache_key, None)
  if jitted is None:
    jitted = jax.jit(_init_fn(generators), compiler_options=compile_cache.run_once_options())
  _INIT_PROGRAMS[cache_key] = jitted  # Most recently used last.
  while len(_INIT_PROGRAMS) > 8:
    _INIT_PROGRAMS.pop(next(iter(_INIT_PROGRAMS)))
  return jitted


# `init_generators`' jitted programs by generator configuration, least recently used first.
_INIT_PROGRAMS: dict[str, Any] = {}


class ConstantColour(nn.Module):
  """One learned RGB colour (0.5 grey at init) as a layer the size of its input.

  A watermark of one colour (`watermark.watermark_model='colour'`): W cannot
  copy the image, so "the whole box is watermark" (M = 1, W = I) is no solution.

  The colour is sigmoid(gain * p) for the parameters p: Adam moves p by about
  the learning rate per step, and at 1e-3 the logit of a white or black
  watermark (about +-5) would take thousands of steps without the gain.
  """

  out_channels: int = 3
  gain: float = 20.0
  num_scales: int = 0  # No downsampling: any canvas will do.

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    """(N, H, W, D) noise (only its shape is used) -> (N, H, W, out_channels) of one colour."""
    chex.assert_rank(z, 4)
    p = self.param('colour', nn.initializers.zeros, (self.out_channels,))
    return jnp.broadcast_to(jax.nn.sigmoid(self.gain * p), (*z.shape[:-1], self.out_channels))


def batched_generator(generator: SkipGenerator, runs: int) -> nn.Module:
  """`runs` independent copies of a generator, mapped over a leading run axis.

  Parameters and BatchNorm statistics get a leading axis of size `runs` (each
  copy initialised with its own key), so (runs, N, H, W, D) noise gives
  (runs, N, H, W, C) outputs with every run's BatchNorm on its own batch.
  """
  fields = {
      f.name: getattr(generator, f.name) for f in dataclasses.fields(generator) if f.name not in ('parent', 'name')
  }
  cls = nn.vmap(
      type(generator),
      variable_axes={'params': 0, 'batch_stats': 0},
      split_rngs={'params': True},
      in_axes=0,
      out_axes=0,
      axis_size=runs,
  )
  return cls(**fields)


class InputHolder(nn.Module):
  """Holds the generators' noise inputs as state instead of constants of the compiled step.

  Its one variable, in the engine's non-trainable collection ('batch_stats';
  nothing ever updates it), is the dict of noise inputs it is initialised with,
  and the losses read the noise from there. Runs that differ only in their
  noise then share one compiled step (`engine` memoises it per Stage), which
  saves a compile of every stage for every run after the first (the watermark task uses it).
  """

  @nn.compact
  def __call__(self, noise: dict[str, jax.Array]) -> dict[str, jax.Array]:
    return self.variable('batch_stats', 'inputs', lambda: noise).value

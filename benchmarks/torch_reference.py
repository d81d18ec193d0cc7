"""A PyTorch reference of one Double-DIP optimisation step, for speed comparisons.

Our own PyTorch code (torch is an optional benchmark dependency, see
requirements-bench.txt) of what the official Double-DIP code runs every
iteration, on the same problems as our tasks:

- the official DIP "skip" network, built as in `models/skip.py` of the official
  code (nested `nn.Sequential`s, `Concat` of the skip and deeper branches,
  reflection padding, strided-convolution downsampling, BatchNorm in training
  mode, LeakyReLU 0.2, bilinear x2 upsampling, 1x1 convolutions after each
  upsampling block, a 1x1 head and a sigmoid; PyTorch's default initialisation);
- 'segmentation': fg, bg (3 channels, one shared noise) and mask (1 channel)
  generators, scales [8, 16, 32], kernel 3, with step 2 of
  `ddip_jax/tasks/segmentation.py`: hint terms, 0.5 L1 reconstruction and the
  ramped GrayLoss, inputs perturbed every step;
- 'transparency': R, T (3 channels) and two alpha generators (1 channel, centre
  pixel), scales [8, 16, 32, 64, 128], skip [0, 0, 0, 4, 4], kernel 5, with the
  two-mixtures loss of `ddip_jax/tasks/transparency.py` (MSE of both mixtures,
  0.1 exclusion loss, alpha prior);

then backward and one Adam step over all generators. The reconstruction PSNR
is computed on the device every step, as our engine does (no host sync).

`load_flax_variables` copies a `ddip_jax.models.SkipGenerator`'s parameters
into the network, so tests can check that both compute the same images.
"""

from collections.abc import Mapping, Sequence
import math
from typing import Any

import numpy as np
import torch
from torch import nn

ARCHITECTURES = {
    # name: (channels_down = channels_up, channels_skip, kernel)
    'segmentation': ((8, 16, 32), (0, 0, 0), 3),
    'transparency': ((8, 16, 32, 64, 128), (0, 0, 0, 4, 4), 5),
}


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Module:
  """The official `conv(..., pad='reflection')`: ReflectionPad2d((k-1)//2) + Conv2d."""
  pad = (kernel - 1) // 2
  conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding=0, bias=True)
  return nn.Sequential(nn.ReflectionPad2d(pad), conv) if pad else conv


def _conv2d(module: nn.Module) -> nn.Conv2d:
  return module if isinstance(module, nn.Conv2d) else module[-1]


class Concat(nn.Module):
  """The official `Concat`: runs each branch and concatenates along channels (centre-cropped)."""

  def __init__(self, *branches: nn.Module):
    super().__init__()
    self.branches = nn.ModuleList(branches)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    outs = [branch(x) for branch in self.branches]
    h = min(o.shape[2] for o in outs)
    w = min(o.shape[3] for o in outs)
    outs = [
        o[:, :, (o.shape[2] - h) // 2 : (o.shape[2] - h) // 2 + h, (o.shape[3] - w) // 2 : (o.shape[3] - w) // 2 + w]
        for o in outs
    ]
    return torch.cat(outs, dim=1)


class Skip(nn.Sequential):
  """The official DIP "skip" encoder-decoder (`models/skip.py`), NCHW.

  Attributes:
    flax_convs, flax_bns: the Conv2d / BatchNorm2d modules in the order in
      which `ddip_jax.models.SkipGenerator` creates its `ReflectConv_<i>` and
      `BatchNorm_<i>` submodules (for `load_flax_variables`).
  """

  def __init__(
      self,
      *,
      in_channels: int = 2,
      out_channels: int = 3,
      channels: Sequence[int] = (8, 16, 32),
      channels_skip: Sequence[int] = (0, 0, 0),
      kernel: int = 3,
      negative_slope: float = 0.2,
  ):
    super().__init__()
    num_scales = len(channels)
    per_scale = []  # (down convs, down bns, skip conv, skip bn, concat bn, up convs, up bns) per scale.
    model_tmp, depth = self, in_channels
    for i in range(num_scales):
      act = lambda: nn.LeakyReLU(negative_slope, inplace=True)  # pylint: disable=cell-var-from-loop
      deeper, skip = nn.Sequential(), nn.Sequential()
      model_tmp.append(Concat(skip, deeper) if channels_skip[i] else deeper)
      k = channels[i + 1] if i + 1 < num_scales else channels[i]
      concat_bn = nn.BatchNorm2d(channels_skip[i] + k)
      model_tmp.append(concat_bn)
      skip_conv = skip_bn = None
      if channels_skip[i]:
        skip_conv, skip_bn = _conv(depth, channels_skip[i], 1), nn.BatchNorm2d(channels_skip[i])
        skip.extend([skip_conv, skip_bn, act()])
      down = [_conv(depth, channels[i], kernel, 2), _conv(channels[i], channels[i], kernel)]
      down_bns = [nn.BatchNorm2d(channels[i]), nn.BatchNorm2d(channels[i])]
      for conv, bn in zip(down, down_bns):
        deeper.extend([conv, bn, act()])
      deeper_main = nn.Sequential()
      if i + 1 < num_scales:
        deeper.append(deeper_main)
      deeper.append(nn.Upsample(scale_factor=2, mode='bilinear', align_corners=False))
      up = [_conv(channels_skip[i] + k, channels[i], kernel), _conv(channels[i], channels[i], 1)]
      up_bns = [nn.BatchNorm2d(channels[i]), nn.BatchNorm2d(channels[i])]
      for conv, bn in zip(up, up_bns):
        model_tmp.extend([conv, bn, act()])
      per_scale.append((down, down_bns, skip_conv, skip_bn, concat_bn, up, up_bns))
      depth, model_tmp = channels[i], deeper_main
    head = _conv(channels[0], out_channels, 1)
    self.extend([head, nn.Sigmoid()])
    # SkipGenerator's creation order: the head, then each scale's down branch,
    # the deeper scales, its skip branch, the concat BN and its up branch.
    convs, bns = [head], []
    for down, down_bns, skip_conv, skip_bn, _, _, _ in per_scale:
      convs += down
      bns += down_bns
    for _, _, skip_conv, skip_bn, concat_bn, up, up_bns in reversed(per_scale):
      convs += ([skip_conv] if skip_conv is not None else []) + up
      bns += ([skip_bn] if skip_bn is not None else []) + [concat_bn] + up_bns
    self.flax_convs = [_conv2d(c) for c in convs]
    self.flax_bns = bns


def load_flax_variables(model: Skip, variables: Mapping[str, Any]) -> None:
  """Copies a `SkipGenerator`'s {'params', 'batch_stats'} into `model` (same architecture)."""
  params, stats = variables['params'], variables.get('batch_stats', {})
  with torch.no_grad():
    for i, conv in enumerate(model.flax_convs):
      p = params[f'ReflectConv_{i}']
      conv.weight.copy_(torch.from_numpy(np.asarray(p['kernel']).transpose(3, 2, 0, 1).copy()))
      conv.bias.copy_(torch.from_numpy(np.array(p['bias'])))
    for i, bn in enumerate(model.flax_bns):
      p = params[f'BatchNorm_{i}']
      bn.weight.copy_(torch.from_numpy(np.array(p['scale'])))
      bn.bias.copy_(torch.from_numpy(np.array(p['bias'])))
      if f'BatchNorm_{i}' in stats:
        bn.running_mean.copy_(torch.from_numpy(np.array(stats[f'BatchNorm_{i}']['mean'])))
        bn.running_var.copy_(torch.from_numpy(np.array(stats[f'BatchNorm_{i}']['var'])))


# The official losses (net/losses.py), NCHW.


def extended_l1(a, b, mask):
  return torch.mean(torch.abs(mask * a - mask * b)) / torch.clamp(torch.mean(torch.abs(mask)), min=1e-12)


def gray_loss(m):
  return 1.0 / torch.clamp(torch.mean(torch.abs(m - 0.5)), min=1e-6)


def exclusion_loss(a, b, levels: int = 3):
  """ExclusionLoss; the official 9 per-pair means per direction as one einsum."""

  def pair_terms(ga, gb):
    sa = torch.square(2.0 * torch.sigmoid(ga) - 1.0)
    sb = torch.square(2.0 * torch.sigmoid(gb) - 1.0)
    count = ga.shape[0] * ga.shape[2] * ga.shape[3]
    return torch.sum((torch.einsum('njhw,nihw->ij', sa, sb) / count) ** 0.25)

  sum_x = sum_y = 0.0
  for level in range(levels):
    if level:
      a, b = nn.functional.avg_pool2d(a, 2), nn.functional.avg_pool2d(b, 2)
    sum_x = sum_x + pair_terms(a[:, :, 1:] - a[:, :, :-1], b[:, :, 1:] - b[:, :, :-1])
    sum_y = sum_y + pair_terms(a[..., 1:] - a[..., :-1], b[..., 1:] - b[..., :-1])
  pairs = levels * a.shape[1] ** 2
  return (sum_x / pairs + sum_y / pairs) / 2.0


def psnr(a, b):
  return -10.0 * torch.log10(torch.clamp(torch.mean(torch.square(a - b)), min=1e-10))


class StepProblem:
  """One task's generators, inputs, loss and Adam, ready to `step()`.

  Args:
    task: 'segmentation' or 'transparency'.
    size: image side (square images).
    seed: torch seed of the weights, noise and synthetic data.
  """

  def __init__(self, task: str, size: int, *, seed: int = 0):
    torch.manual_seed(seed)
    channels, skip, kernel = ARCHITECTURES[task]
    self.task, self.step_index = task, 0
    shape = (1, 2, size, size)
    # Synthetic data: timings do not depend on the pixel values.
    if task == 'segmentation':
      self.nets = {
          'fg': Skip(out_channels=3, channels=channels, channels_skip=skip, kernel=kernel),
          'bg': Skip(out_channels=3, channels=channels, channels_skip=skip, kernel=kernel),
          'mask': Skip(out_channels=1, channels=channels, channels_skip=skip, kernel=kernel),
      }
      layers_noise = torch.rand(shape) * 0.1 - 0.05
      self.noise = {'fg': layers_noise, 'bg': layers_noise, 'mask': torch.rand(shape) * 0.1 - 0.05}
      self.image = torch.rand(1, 3, size, size)
      hint = torch.zeros(1, 1, size, size)
      self.fg_hint = hint.clone()
      self.fg_hint[..., size // 3 : 2 * size // 3, size // 3 : 2 * size // 3] = 1
      self.bg_hint = hint.clone()
      self.bg_hint[..., : size // 8, :] = 1
    else:
      self.nets = {
          n: Skip(
              out_channels=3 if n in ('reflection', 'transmission') else 1,
              channels=channels,
              channels_skip=skip,
              kernel=kernel,
          )
          for n in ('alpha1', 'alpha2', 'reflection', 'transmission')
      }
      self.noise = {n: torch.rand(shape) * 0.01 - 0.005 for n in self.nets}
      self.images = [torch.rand(1, 3, size, size), torch.rand(1, 3, size, size)]
    for net in self.nets.values():
      net.train()
    self.optimizer = torch.optim.Adam([p for net in self.nets.values() for p in net.parameters()], lr=1e-3)

  def loss(self):
    """(loss, reconstruction PSNR) of the current step (with autograd)."""
    it = self.step_index
    if self.task == 'segmentation':
      sigma = 0.001 * (it // 100) if it < 1000 else 0.001
      noisy = {n: z + torch.randn_like(z) * sigma for n, z in self.noise.items()}
      out = {n: net(noisy[n]) for n, net in self.nets.items()}
      fg, bg, m = out['fg'], out['bg'], out['mask']
      recon = m * fg + (1 - m) * bg
      loss = 0.5 * torch.mean(torch.abs(recon - self.image)) + 0.001 * (min(it, 1000) // 100) * gray_loss(m)
      if it <= 1000:
        loss = loss + extended_l1(fg, self.image, self.fg_hint) + extended_l1(bg, self.image, self.bg_hint)
      return loss, psnr(recon.detach(), self.image)
    out = {n: net(self.noise[n]) for n, net in self.nets.items()}
    r, t = out['reflection'], out['transmission']
    h, w = r.shape[2] // 2, r.shape[3] // 2
    alphas = [out[a][:, :, h : h + 1, w : w + 1] * 0.9 + 0.05 for a in ('alpha1', 'alpha2')]
    recons = [a * r + (1 - a) * t for a in alphas]
    loss = sum(torch.mean(torch.square(x - img)) for x, img in zip(recons, self.images))
    loss = loss + 0.1 * exclusion_loss(r, t)
    if it < 1000:
      loss = loss + 0.5 * sum(torch.mean(torch.square(a - 0.5)) for a in alphas)
    return loss, psnr(recons[0].detach(), self.images[0])

  def step(self) -> torch.Tensor:
    """One optimisation step: forward, loss, backward, Adam. Returns the PSNR (a tensor, not synced)."""
    self.optimizer.zero_grad(set_to_none=True)
    loss, value = self.loss()
    loss.backward()
    self.optimizer.step()
    self.step_index += 1
    return value


def parameter_count(problem: StepProblem) -> int:
  return sum(p.numel() for net in problem.nets.values() for p in net.parameters())


if __name__ == '__main__':
  for task in ARCHITECTURES:
    problem = StepProblem(task, 128)
    values = [float(problem.step()) for _ in range(3)]
    print(
        f'{task}: {parameter_count(problem)} parameters, PSNR after 3 steps {values[-1]:.2f}, '
        f'finite {all(math.isfinite(v) for v in values)}'
    )

"""The PyTorch reference step of benchmarks/ computes what ddip_jax computes (skipped without torch)."""

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

from ddip_jax import losses
from ddip_jax import models

try:
  import torch  # pylint: disable=g-import-not-at-top
  from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top
except ImportError:  # torch is an optional benchmark dependency.
  torch = None


def _nchw(x) -> 'torch.Tensor':
  return torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())


@absltest.skipIf(torch is None, 'torch is not installed (requirements-bench.txt)')
class TorchReferenceTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    torch.set_num_threads(1)  # OpenMP threads crawl when the test machine's cores are busy.

  def test_skip_network_matches_skip_generator(self):
    # A small network with all the benchmarked generators' features (scales
    # with and without skip branches, kernel 5's reflection padding), on a
    # non-square image: it compiles faster than the full-size ones.
    out_channels, channels, skip, kernel, shape = 1, (4, 8, 8), (0, 2, 2), 5, (32, 48)
    gen = models.SkipGenerator(
        out_channels=out_channels,
        channels_down=channels,
        channels_up=channels,
        channels_skip=skip,
        kernel_down=kernel,
        kernel_up=kernel,
    )
    z = models.make_noise(jax.random.key(1), shape, 2, var=1.0)
    variables = jax.jit(gen.init)(jax.random.key(0), z)  # Compiled whole: op by op is slower here.
    ours, _ = jax.jit(lambda v, z: gen.apply(v, z, mutable=['batch_stats']))(variables, z)
    net = torch_reference.Skip(out_channels=out_channels, channels=channels, channels_skip=skip, kernel=kernel)
    torch_reference.load_flax_variables(net, variables)
    theirs = net(_nchw(z)).detach().numpy().transpose(0, 2, 3, 1)
    self.assertGreater(float(jnp.std(ours)), 0.01)
    np.testing.assert_allclose(theirs, ours, atol=2e-5)

  def test_losses_match(self):
    keys = jax.random.split(jax.random.key(0), 3)
    a, b = (jax.random.uniform(k, (1, 16, 20, 3)) for k in keys[:2])
    mask = (jax.random.uniform(keys[2], (1, 16, 20, 1)) > 0.5).astype(jnp.float32)
    ours = jax.jit(
        lambda a, b, mask: [
            losses.extended_l1(a, b, mask),
            losses.gray_loss(mask * 0.3 + 0.2),
            losses.exclusion_loss(a, b),
            losses.psnr(a, b),
        ]
    )(a, b, mask)
    a, b, mask = _nchw(a), _nchw(b), _nchw(mask)
    theirs = [
        torch_reference.extended_l1(a, b, mask),
        torch_reference.gray_loss(mask * 0.3 + 0.2),
        torch_reference.exclusion_loss(a, b),
        torch_reference.psnr(a, b),
    ]
    pairs = zip(ours, theirs)
    for ours, theirs in pairs:
      np.testing.assert_allclose(float(theirs), float(ours), rtol=1e-5)

  def test_step_runs_and_changes_the_weights(self):
    problem = torch_reference.StepProblem('segmentation', 32)
    before = [p.detach().clone() for p in problem.nets['mask'].parameters()]
    values = [float(problem.step()) for _ in range(2)]
    self.assertTrue(np.isfinite(values).all())
    after = list(problem.nets['mask'].parameters())
    self.assertTrue(any(not torch.equal(x, y) for x, y in zip(before, after)))


if __name__ == '__main__':
  absltest.main()

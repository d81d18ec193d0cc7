"""Tests of ddip_jax.config_check: nonsense values are refused, naming the field."""

from absl.testing import absltest
from absl.testing import parameterized

from configs import default
from ddip_jax import config_check
from ddip_jax import tasks


def _config():
  config = default.get_config()
  config.image = 'in.png'
  return config


def _set(config, field, value):
  *parents, leaf = field.split('.')
  for name in parents:
    config = config[name]
  config[leaf] = value


class ValidateTest(parameterized.TestCase):

  def test_default_is_valid(self):
    tasks.validate(_config())

  @parameterized.parameters(
      ('num_steps', 0),
      ('num_steps', -5),
      ('learning_rate', 0.0),
      ('learning_rate', -1e-3),
      ('learning_rate', float('nan')),
      ('task', 'nope'),
      ('max_side', -1),
      ('generator.channels_down', ()),
      ('generator.channels_up', ()),
      ('generator.channels_skip', (0, 0)),
      ('generator.channels_down', (8, 0, 32)),
      ('generator.kernel_down', 4),
      ('generator.input_depth', 0),
      ('loop.steps_per_call', 0),
      ('loop.check_every', 0),
      ('loop.checkpoint_every', -1),
      ('loop.strategy', 'fast'),
      ('restarts', 0),
  )
  def test_nonsense_is_refused_naming_the_field(self, field, value):
    config = _config()
    _set(config, field, value)
    with self.assertRaises(config_check.ConfigError) as ctx:
      tasks.validate(config)
    self.assertStartsWith(str(ctx.exception), f'config.{field} = ')
    self.assertNotIn('\n', str(ctx.exception))

  @parameterized.parameters(
      ('learning_rate', float('inf'), 'must be a finite number'),
      ('early_stop_psnr', float('nan'), 'must be a finite number'),
      ('generator.noise_var', -1.0, 'must be positive'),
      ('generator.noise_var', 0.0, 'must be positive'),
      ('generator.negative_slope', -0.2, 'must be >= 0'),
      ('segmentation.recon_weight', -0.5, 'must be >= 0'),
      ('segmentation.sigma_step', -0.001, 'must be >= 0'),
      ('segmentation.hint_phase', -1, 'must be >= 0'),
      ('dehaze.airlight_rgb', (0.5, float('nan'), 0.5), 'must be a finite number'),
      ('generator.channels_down', ('(4,x)',), 'must be whole numbers'),
      ('generator.channels_skip', (0, 0.5, 0), 'must be whole numbers'),
  )
  def test_numbers_are_finite_and_in_range(self, field, value, message):
    config = _config()
    _set(config, field, value)
    with self.assertRaises(config_check.ConfigError) as ctx:
      tasks.validate(config)
    self.assertStartsWith(str(ctx.exception), f'config.{field} = ')
    self.assertIn(message, str(ctx.exception))

  def test_every_float_field_must_be_finite(self):
    # A generic pass: a field added later is covered too.
    fields = [(f, v) for f, v in config_check.numbers(_config()) if isinstance(v, float)]
    self.assertGreater(len(fields), 30)
    for field, _ in fields:
      for bad in (float('nan'), float('inf'), -float('inf')):
        config = _config()
        _set(config, field, bad)
        with self.assertRaisesRegex(
            config_check.ConfigError, f'^config.{field} = .*must be a finite number', msg=field
        ):
          tasks.validate(config)

  def test_missing_image_is_refused(self):
    with self.assertRaisesRegex(config_check.ConfigError, 'config.image = None: an input image path'):
      tasks.validate(default.get_config())

  def test_inputs_replace_the_image(self):
    config = default.get_config()
    config.inputs = 'photos/*.png'
    tasks.validate(config)

  def test_checkpoints_can_be_turned_off(self):
    config = _config()
    config.loop.checkpoint_every = 0
    tasks.validate(config)


if __name__ == '__main__':
  absltest.main()

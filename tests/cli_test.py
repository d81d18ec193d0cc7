"""Tests of ddip_jax.cli: the command line parsed in-process, each mistake one line."""

import os

from absl import flags
from absl.testing import absltest
from absl.testing import parameterized
from ml_collections import config_flags

from ddip_jax import cli

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse(*args: str):
  """Parses `main.py <args>` with main.py's config flag on fresh flags; returns the config."""
  argv = ['main.py', *args]
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file(
      'config', None, 'Task config file.', flag_values=flag_values, lock_config=True, sys_argv=argv
  )
  flags.DEFINE_string('workdir', None, 'Output folder.', flag_values=flag_values)
  cli.parse(argv, flag_values, default_config='configs/zebra.py')
  return flag_values['config'].value


class ParseTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    cwd = os.getcwd()
    os.chdir(_REPO)  # Config paths are relative to the repository, as in the README.
    self.addCleanup(os.chdir, cwd)

  @parameterized.named_parameters(
      ('missing_config_file', ['--config=configs/nope.py'], '--config=configs/nope.py: no such config file'),
      (
          'missing_config_file_and_overrides',
          ['--config=configs/nope.py', '--config.num_steps=2'],
          '--config=configs/nope.py: no such config file',
      ),
      ('config_folder', ['--config=configs'], '--config=configs: is a directory, not a config file'),
      (
          'config_file_that_fails',
          ['--config=configs/zebra.py:oops'],
          '--config=configs/zebra.py:oops: cannot load it (TypeError: get_config() takes 0 positional arguments '
          'but 1 was given)',
      ),
      (
          'unknown_field',
          ['--config.nosuchfield=3'],
          '--config.nosuchfield: no such config field; the fields are listed in configs/default.py',
      ),
      (
          'misspelt_field',
          ['--config.num_step=3'],
          '--config.num_step: no such config field; did you mean ' '--config.num_steps?',
      ),
      (
          'field_of_another_section',
          ['--config.hint_steps=3'],
          '--config.hint_steps: no such config field; did you '
          'mean --config.segmentation.hint_steps or --config.watermark.hint_steps',
      ),
      (
          'misspelt_section',
          ['--config=configs/dehaze.py', '--config.dehze.passes=1'],
          '--config.dehze.passes: no such config field; did you mean --config.dehaze.passes',
      ),
      (
          'field_of_another_task',
          ['--config.dehaze.passes=3'],
          "--config.dehaze.passes is a field of task 'dehaze'; "
          "this config runs task 'segmentation', which reads segmentation.* and the shared fields",
      ),
      (
          'field_of_another_task_for_video',
          ['--config=configs/video.py', '--config.watermark.runs=2'],
          "--config.watermark.runs is a field of task 'watermark'; this config runs task 'video', which reads video.* "
          'and segmentation.*',
      ),
      ('word_for_an_int', ['--config.num_steps=abc'], '--config.num_steps=abc: not a whole number'),
      ('float_for_an_int', ['--config.num_steps=1e3'], '--config.num_steps=1e3: not a whole number'),
      ('word_for_a_float', ['--config.learning_rate=fast'], '--config.learning_rate=fast: not a number'),
      ('word_for_a_bool', ['--config.progress=maybe'], '--config.progress=maybe: not true or false'),
      ('unknown_flag', ['--workdri=out'], "Unknown command line flag 'workdri'. Did you mean: workdir ?"),
      (
          'extra_argument',
          ['--config.num_steps=2', 'results/x'],
          "unexpected argument 'results/x': flags are written --name=value (--helpshort lists them)",
      ),
  )
  def test_mistake_is_one_line(self, args, message):
    with self.assertRaises(cli.UsageError) as ctx:
      _parse(*args)
    self.assertStartsWith(str(ctx.exception), message)
    self.assertNotIn('\n', str(ctx.exception))

  def test_default_config_and_overrides(self):
    config = _parse('--config.num_steps=7', '--config.generator.channels_down=(4, 8)')
    self.assertEqual((config.image, config.num_steps, config.generator.channels_down), ('data/zebra.png', 7, (4, 8)))

  @parameterized.parameters('None', 'none', '')
  def test_none_or_nothing_unsets_an_optional_field(self, value):
    config = _parse(f'--config.gt_mask={value}', f'--config.fg_hint={value}')
    self.assertIsNone(config.gt_mask)
    self.assertIsNone(config.fg_hint)
    self.assertIsNone(_parse('--config=configs/watermark.py', f'--config.watermark.images={value}').watermark.images)

  def test_none_is_only_unset_for_optional_fields(self):
    config = _parse('--config.task=None')
    self.assertEqual(config.task, 'None')  # config_check then refuses it as an unknown task.

  def test_the_demo_ground_truth_is_dropped_for_another_input(self):
    with self.assertLogs('absl', 'WARNING') as logs:
      config = _parse('--config=configs/video.py', '--config.image=clip.gif')
    self.assertIsNone(config.gt_mask)
    self.assertIn(
        "config.gt_mask = 'data/video/horse/masks' is the ground truth of configs/video.py's own input, "
        "not of config.image = 'clip.gif': not used",
        logs.output[0],
    )
    config = _parse('--config=configs/watermark.py', '--config.image=mine.png')
    self.assertEqual((config.watermark.gt_clean, config.watermark.hint), (None, 'data/watermark_box.png'))
    config = _parse('--config=configs/transparency.py', '--config.transparency.image2=b.png')
    self.assertEqual((config.transparency.gt_layer1, config.transparency.gt_layer2), (None, None))
    config = _parse('--config.inputs=photos/*.jpg')
    self.assertIsNone(config.gt_mask)

  def test_the_ground_truth_stays_with_its_input_or_when_given(self):
    self.assertEqual(_parse().gt_mask, 'data/zebra_mask.png')
    self.assertEqual(_parse('--config.image=data/zebra.png').gt_mask, 'data/zebra_mask.png')
    self.assertEqual(_parse('--config.image=mine.png', '--config.gt_mask=mine_mask.png').gt_mask, 'mine_mask.png')
    config = _parse('--config=configs/watermark_many.py', '--config.num_steps=5')
    self.assertEqual(config.watermark.eval_box, 'data/watermark_box.png')


if __name__ == '__main__':
  absltest.main()

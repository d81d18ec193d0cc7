"""Every `main.py` command of the README runs, so the documentation cannot drift from the code.

The commands are read from the README's fenced code blocks and run as a user
would type them (from a folder with the repository's configs/ and data/ and the
files the README's examples name: my_photo.jpg, my_frames/, clip.gif,
photos/*.jpg, extra.png), with tiny settings appended: one step per stage, a
one-scale generator and images of at most 32 px, so that each runs in
seconds. The commands for several hosts cannot run here; they are listed in
_SKIPPED, and the test fails if the README's list of them changes.
"""

import os
import re
import shlex
import subprocess
import sys
import tempfile

from absl.testing import absltest
import numpy as np
from PIL import Image

from ddip_jax import clip_io
from ddip_jax import image_io
from ddip_jax import writing

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TINY = [
    '--config.num_steps=1',
    '--config.segmentation.hint_steps=1',
    '--config.max_side=32',
    '--config.progress=false',
    '--config.loop.strategy=step',
    '--config.generator.channels_down=(4,)',
    '--config.generator.channels_up=(4,)',
    '--config.generator.channels_skip=(0,)',
]
# Need other hosts (jax.distributed): not run, listed so that a change to them shows.
_SKIPPED = [  # As `readme_commands` gives them (quotes off).
    'python main.py --config=configs/default.py --config.inputs=photos/*.jpg --workdir=results/photos '
    '--coordinator_address=coordinator:1234 --num_processes=2 --process_id=0',
]
_DISTRIBUTED = ('--coordinator_address', '--num_processes', '--process_id', '--distributed')


def readme_commands(text: str) -> list[str]:
  """The `main.py` command lines of the shell code blocks of `text` (continuations joined, comments off)."""
  commands = []
  for language, block in re.findall(r'^```([a-z]*)\n(.*?)^```', text, re.S | re.M):
    if language in ('python', 'text'):  # Not shell: the Python API's example, the layout.
      continue
    for line in block.replace('\\\n', ' ').splitlines():
      line = ' '.join(shlex.split(line, comments=True))  # Normalised; a comment line becomes empty.
      if 'main.py' in shlex.split(line):
        commands.append(line)
  return commands


def _blob_image(height: int, width: int, shift: int = 0) -> np.ndarray:
  """A red disc on a green and grey background."""
  yy, xx = np.mgrid[0:height, 0:width]
  disc = ((yy - height / 2) / (height / 4)) ** 2 + ((xx - width / 3 - shift) / (height / 4)) ** 2 <= 1
  background = np.stack([0.3 + 0.2 * xx / width, 0.6 - 0.2 * yy / height, np.full(xx.shape, 0.35)], -1)
  return np.where(disc[..., None], np.array([0.9, 0.15, 0.1]), background).astype(np.float32)


def _user_files(folder: str) -> None:
  """The files the README's examples name, as a user would have them."""
  Image.fromarray(image_io.to_uint8(_blob_image(48, 64))).save(os.path.join(folder, 'my_photo.jpg'), quality=95)
  os.makedirs(os.path.join(folder, 'photos'))
  for k in range(2):
    Image.fromarray(image_io.to_uint8(_blob_image(48, 64, 4 * k))).save(
        os.path.join(folder, 'photos', f'photo{k}.jpg'), quality=95
    )
  writing.save_image(os.path.join(folder, 'extra.png'), _blob_image(48, 64, 8))
  frames = [_blob_image(48, 64, 3 * k) for k in range(12)]
  for k, frame in enumerate(frames):
    writing.save_image(os.path.join(folder, 'my_frames', f'frame_{k:02d}.png'), frame)
  clip_io.save_gif(os.path.join(folder, 'clip.gif'), np.stack(frames[:8]))


class ReadmeTest(absltest.TestCase):

  def test_skipped_commands_are_the_distributed_ones(self):
    with open(os.path.join(_REPO, 'README.md'), encoding='utf-8') as f:
      commands = readme_commands(f.read())
    self.assertGreaterEqual(len(commands), 7)
    self.assertEqual([c for c in commands if any(flag in c for flag in _DISTRIBUTED)], _SKIPPED)

  def test_every_main_py_command_of_the_readme_runs(self):
    with open(os.path.join(_REPO, 'README.md'), encoding='utf-8') as f:
      commands = [c for c in readme_commands(f.read()) if c not in _SKIPPED]
    with tempfile.TemporaryDirectory() as folder:
      for name in ('configs', 'data', 'main.py'):
        os.symlink(os.path.join(_REPO, name), os.path.join(folder, name))
      _user_files(folder)
      for command in commands:
        args = shlex.split(command)
        args = [sys.executable, *args[args.index('main.py') :], *_TINY]
        proc = subprocess.run(
            args,
            cwd=folder,
            env=dict(os.environ, PYTHONPATH=_REPO),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        with self.subTest(command):
          self.assertEqual(proc.returncode, 0, msg=f'{command}\n{proc.stderr[-3000:]}')
          self.assertRegex(proc.stdout, r'(^|\n)done: ', msg=command)
          self.assertNotIn('error:', proc.stderr, msg=command)


if __name__ == '__main__':
  absltest.main()

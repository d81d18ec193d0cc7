"""The web page treats every request as hostile (`ddip_jax.app_safety`), tested as a client on loopback would.

Unit tests of the allow-list, then the page itself on a free loopback port, driven
through Gradio's own client (what any script reaching the port can send): a config
file, a flag file, a server path, an oversized upload, a file outside the uploads
are refused with one line and run nothing; serving beyond loopback needs a flag.
The HTTP part is skipped without Gradio (requirements-app.txt).
"""

import os
import subprocess
import sys
import tempfile
import time
import unittest

from absl.testing import absltest
from absl.testing import parameterized

import app_browser
from ddip_jax import app_runs
from ddip_jax import app_safety
from ddip_jax import cli

_ALLOWED = app_safety.allowed_fields(cli.load_config_file(os.path.join(app_runs.REPO, app_runs.PHOTO_CONFIG)))
_EVIL = """import pathlib
pathlib.Path({marker!r}).write_text('ran')
from configs import default
def get_config():
  return default.get_config()
"""


class AllowListTest(parameterized.TestCase):

  def test_plain_overrides_pass(self):
    extra = (
        '--config.generator.channels_down=(4,) --config.loop.strategy=step --config.learning_rate=1e-3 '
        '--config.segmentation.respect_hints=false "--config.generator.channels_up=(4, 8)"'
    )
    self.assertEqual(
        app_safety.page_overrides(extra, _ALLOWED),
        [
            '--config.generator.channels_down=(4,)',
            '--config.loop.strategy=step',
            '--config.learning_rate=1e-3',
            '--config.segmentation.respect_hints=false',
            '--config.generator.channels_up=(4, 8)',
        ],
    )

  @parameterized.named_parameters(
      ('config_file', '--config=/tmp/evil.py', 'is not --config.<field>=<value>'),
      ('config_file_space', '--config /tmp/evil.py', 'is not --config.<field>=<value>'),
      ('flagfile', '--flagfile=/etc/passwd', 'is not --config.<field>=<value>'),
      ('other_flag', '--workdir=/', 'is not --config.<field>=<value>'),
      ('image', '--config.image=/etc/passwd', 'config.image cannot be set from the page'),
      ('hint', '--config.fg_hint=/root/.ssh/id_rsa', 'config.fg_hint cannot be set from the page'),
      ('inputs', '--config.inputs=@/dev/zero', 'config.inputs cannot be set from the page'),
      ('task', '--config.task=dehaze', 'config.task cannot be set from the page'),
      ('ground_truth', '--config.watermark.gt_clean=x.png', 'cannot be set from the page'),
      ('path_as_choice', '--config.segmentation.auto_hints=../etc', 'takes a plain choice'),
      ('path_as_number', '--config.seed=/etc/passwd', 'takes a plain number'),
      ('code_as_tuple', '--config.generator.channels_down=(__import__("os"),)', 'takes a plain tuple'),
      ('unknown', '--config.no_such_field=1', 'cannot be set from the page'),
  )
  def test_anything_else_is_refused(self, extra, message):
    with self.assertRaisesRegex(cli.UsageError, f'^more config overrides: .*{message}'):
      app_safety.page_overrides(extra, _ALLOWED)

  def test_no_file_field_is_allowed(self):
    from ddip_jax import config_check  # pylint: disable=g-import-not-at-top

    self.assertEmpty(set(_ALLOWED) & {*config_check.INPUT_FILE_FIELDS, *config_check.INPUT_FIELDS})
    self.assertIn('num_steps', _ALLOWED)
    self.assertIn('segmentation.auto_hints', _ALLOWED)

  def test_settings_must_be_whole_numbers(self):
    self.assertEqual(app_safety.setting_args({'seed': 3.0, 'num_steps': None, 'max_side': ''}), ['--config.seed=3'])
    for bad in ('1; rm -rf /', 2.5, True, float('inf')):
      with self.assertRaisesRegex(cli.UsageError, r'^setting seed: .* is not a whole number'):
        app_safety.setting_args({'seed': bad})

  def test_uploaded_file_must_be_in_the_upload_folder(self):
    with tempfile.TemporaryDirectory() as folder:
      inside = os.path.join(folder, 'up', 'a.png')
      os.makedirs(os.path.dirname(inside))
      open(inside, 'w').close()
      self.assertEqual(app_safety.uploaded_file(inside, os.path.join(folder, 'up')), os.path.realpath(inside))
      for outside in ('/etc/passwd', os.path.join(folder, 'up', '..', 'b.png'), os.path.join(folder, 'up')):
        with self.assertRaisesRegex(cli.UsageError, 'not one uploaded to this page'):
          app_safety.uploaded_file(outside, os.path.join(folder, 'up'))
      self.assertIsNone(app_safety.uploaded_file(None, folder))

  def test_loopback_and_auth(self):
    for host in ('127.0.0.1', '127.0.0.5', 'localhost', '::1'):
      self.assertTrue(app_safety.is_loopback(host), host)
    for host in ('0.0.0.0', '192.168.1.2', '::', 'example.org'):
      self.assertFalse(app_safety.is_loopback(host), host)
    self.assertEqual(app_safety.auth_from_env('ann:s3:cr'), ('ann', 's3:cr'))
    self.assertIsNone(app_safety.auth_from_env(''))
    with self.assertRaisesRegex(cli.UsageError, 'user:password'):
      app_safety.auth_from_env('ann')

  def test_prune_runs_deletes_old_run_folders_only(self):
    with tempfile.TemporaryDirectory() as runs:
      old = os.path.join(runs, 'segmentation-20260101-000000-abcdef')
      new = os.path.join(runs, 'dehaze-20260101-000001-abcdef')
      other = os.path.join(runs, 'my_notes')
      for path in (old, new, other):
        os.makedirs(path)
      now = time.time()
      os.utime(old, (now - 7200, now - 7200))
      os.utime(other, (now - 7200, now - 7200))
      self.assertEqual(app_safety.prune_runs(runs, 3600, now=now), [old])
      self.assertEqual(sorted(os.listdir(runs)), ['dehaze-20260101-000001-abcdef', 'my_notes'])
      self.assertEqual(app_safety.prune_runs(runs, 0, now=now + 1e6), [])


_MISSING = None
try:
  import gradio_client  # pylint: disable=g-import-not-at-top,unused-import
except ImportError:
  _MISSING = 'gradio is not installed (requirements-app.txt)'


@unittest.skipIf(_MISSING, f'HTTP test: {_MISSING}')
class HostileRequestsTest(absltest.TestCase):
  """The page on loopback, sent what a hostile client would send."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tmp = tempfile.mkdtemp(prefix='ddip_app_security_')
    cls.runs_dir = os.path.join(cls.tmp, 'runs')
    cls.server = app_browser.serving(cls.runs_dir, '--max_upload_mb=1')
    cls.url = cls.server.__enter__()

  @classmethod
  def tearDownClass(cls):
    cls.server.__exit__(None, None, None)
    super().tearDownClass()

  def client(self):
    from gradio_client import Client  # pylint: disable=g-import-not-at-top

    return Client(self.url, verbose=False)

  def dehaze(self, extra: str) -> str:
    """The Dehazing tab's Run (no file: its demo) with `extra` overrides; the status it ends with."""
    outputs = self.client().predict(None, None, None, None, None, None, extra, api_name='/run_2')
    return outputs[0]

  def test_a_config_file_is_never_run(self):
    marker = os.path.join(self.tmp, 'ran')
    evil = os.path.join(self.tmp, 'evil.py')
    with open(evil, 'w') as f:
      f.write(_EVIL.format(marker=marker))
    for extra in (f'--config={evil}', f'--config {evil}', f'--flagfile={evil}'):
      status = self.dehaze(extra)
      self.assertStartsWith(status, 'error: more config overrides: ')
    # Automatic hints go the same way.
    client = self.client()
    client.predict(api_name='/load_demo')
    status = client.predict(None, None, None, None, None, None, f'--config={evil}', api_name='/lambda')[1]
    self.assertStartsWith(status, 'error: ')
    self.assertFalse(os.path.exists(marker))

  def test_no_server_file_is_read(self):
    status = self.dehaze('--flagfile=/etc/passwd')
    self.assertStartsWith(status, 'error: more config overrides: ')
    self.assertNotIn('root', status)
    status = self.dehaze(f'--config.image={app_browser.ZEBRA}')
    self.assertEqual(
        status,
        'error: more config overrides: config.image cannot be set from the page (files come '
        'only through its upload boxes and strokes)',
    )
    # A hint field naming a file gets the same line whether or not the file exists.
    self.assertEqual(
        self.dehaze('--config.fg_hint=/etc/passwd').replace('fg_hint', 'X'),
        self.dehaze('--config.fg_hint=/no/such/file').replace('fg_hint', 'X'),
    )
    # A refused run leaves no folder behind.
    self.assertEqual(os.listdir(self.runs_dir), [])

  def test_a_file_payload_outside_the_uploads_is_refused(self):
    import httpx  # pylint: disable=g-import-not-at-top  # Gradio's own dependency.
    # Raw HTTP, as a script would send it (Gradio's client would upload the file first).
    api = self.url.rstrip('/') + '/gradio_api/call/load_photo'
    for path in ('/etc/passwd', app_browser.ZEBRA):
      sent = httpx.post(api, json={'data': [{'path': path, 'meta': {'_type': 'gradio.FileData'}}]}, timeout=30)
      answer = httpx.get(f'{api}/{sent.json()["event_id"]}', timeout=60).text
      self.assertStartsWith(answer, 'event: error')
      self.assertNotIn('root', answer)
      self.assertNotIn('zebra', answer)

  def test_an_oversized_upload_is_refused(self):
    import httpx  # pylint: disable=g-import-not-at-top

    upload = self.url.rstrip('/') + '/gradio_api/upload'
    small = httpx.post(upload, files={'files': ('a.png', b'x' * 1000)}, timeout=30)
    self.assertEqual(small.status_code, 200)
    # Raw HTTP: Gradio's client would refuse it before sending.
    big = httpx.post(upload, files={'files': ('big.png', b'x' * (2**20 + 1000))}, timeout=60)
    self.assertEqual(big.status_code, 413, big.text[:200])


class ServingTest(absltest.TestCase):

  def test_beyond_loopback_needs_a_flag(self):
    result = subprocess.run(
        [sys.executable, '-m', 'ddip_jax.app', '--host=0.0.0.0', '--port=0'],
        cwd=app_runs.REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if 'needs Gradio' in result.stderr:
      self.skipTest('needs gradio')
    self.assertEqual(result.returncode, 2)
    self.assertStartsWith(result.stderr, 'error: --host=0.0.0.0 serves other machines too: add --allow_remote')


if __name__ == '__main__':
  absltest.main()

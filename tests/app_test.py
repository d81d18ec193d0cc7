"""The web app (`ddip_jax.app`): its runs' helpers (`app_runs`), and the page driven in headless Chromium.

The browser test starts `python -m ddip_jax.app` on a free port, uploads the
zebra, paints a foreground stroke on the zebra and a background stroke along
its border with the mouse, runs a tiny configuration, and checks the files the run
wrote: the hint PNGs hold the strokes where they were painted (against the
zebra's ground-truth mask), the mask keeps the foreground stroke's pixels, the
zip and the transparent cut-out are there. A text file uploaded instead of a
photo shows the command line's one-line error. It is skipped where Gradio,
Selenium or Chromium is missing (requirements-app.txt; apt-get install
chromium chromium-driver).
"""

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import types
import unittest
import zipfile

from absl.testing import absltest
import numpy as np
from PIL import Image

import app_browser
from ddip_jax import app_runs
from ddip_jax import app_widgets
from ddip_jax import cli
from ddip_jax import hints as hints_lib
from ddip_jax import image_io

_ZEBRA_MASK = os.path.join(app_browser.REPO, 'data', 'zebra_mask.png')
# A tiny run: a one-scale generator, a few steps, 64 px (the page's Settings and its extra arguments).
_TINY_SETTINGS = {'num_steps': 4, 'segmentation.hint_steps': 4, 'max_side': 64}
_TINY_EXTRA = ('--config.generator.channels_down=(4,) --config.generator.channels_up=(4,) '
               '--config.generator.channels_skip=(0,) --config.loop.strategy=step')


class HelpersTest(absltest.TestCase):

  def test_strokes_to_hints_by_colour_and_alpha(self):
    layer = np.zeros((4, 6, 4), np.uint8)
    layer[0, :2] = (255, 0, 0, 255)  # Red: foreground.
    layer[1, :2] = (10, 20, 240, 200)  # Blueish: background.
    layer[2, :2] = (255, 0, 0, 20)  # The brush's faint edge: nothing.
    fg, bg = app_runs.strokes_to_hints([layer], (4, 6))
    np.testing.assert_array_equal(np.argwhere(fg), [[0, 0], [0, 1]])
    np.testing.assert_array_equal(np.argwhere(bg), [[1, 0], [1, 1]])

  def test_strokes_on_a_smaller_canvas_are_resized_to_the_photo(self):
    layer = np.zeros((2, 3, 4), np.uint8)
    layer[1, 2] = (255, 0, 0, 255)
    fg, bg = app_runs.strokes_to_hints([layer], (4, 6))
    self.assertTrue(fg[2:, 4:].all())
    self.assertEqual(fg.sum(), 4)
    self.assertFalse(bg.any())

  def test_hints_to_layer_round_trips(self):
    fg = np.zeros((5, 7)); fg[1:3, 2:4] = 1
    bg = np.zeros((5, 7)); bg[4] = 1
    back = app_runs.strokes_to_hints([app_runs.hints_to_layer(fg, bg)], (5, 7))
    np.testing.assert_array_equal(back[0], fg > 0)
    np.testing.assert_array_equal(back[1], bg > 0)

  def test_args_parse_as_main_py_parses_them(self):
    args = app_runs.segmentation_args(photo=None, fg_hint=None, bg_hint=None,
                                      settings={'num_steps': 7, 'seed': None}, extra='--config.max_side=64')
    self.assertEqual(args, ['--config=configs/zebra.py', '--config.num_steps=7', '--config.max_side=64'])
    cwd = os.getcwd()
    os.chdir(app_runs.REPO)
    try:
      config = app_runs.parse_config(args)
      self.assertEqual((config.num_steps, config.max_side, config.gt_mask), (7, 64, 'data/zebra_mask.png'))
      with self.assertRaisesRegex(cli.UsageError, r'^--config.num_step: no such config field; did you mean'):
        app_runs.parse_config(['--config=configs/zebra.py', '--config.num_step=3'])
      with self.assertRaisesRegex(ValueError, r'num_steps = 0: must be at least 1'):
        app_runs.parse_config(['--config=configs/zebra.py', '--config.num_steps=0'])
    finally:
      os.chdir(cwd)
    command = app_runs.command_line(args, os.path.join(app_runs.REPO, 'results', 'x'))
    self.assertEqual(shlex.split(command)[:2], ['python', 'main.py'])
    self.assertTrue(command.endswith('--workdir=results/x'))

  def test_automatic_hints_follow_the_pages_settings(self):
    yy, xx = np.mgrid[:64, :96]
    photo = np.where(((yy - 32) ** 2 + (xx - 48) ** 2 < 15 ** 2)[..., None], [0.9, 0.2, 0.1], [0.2, 0.6, 0.3])
    photo = photo.astype(np.float32)
    cwd = os.getcwd()
    os.chdir(app_runs.REPO)
    try:
      def hints_with(extra):
        return app_runs.automatic_hints(photo, app_runs.segmentation_args(
            photo='photo.png', fg_hint=None, bg_hint=None, settings={'max_side': 64}, extra=extra))

      fg, bg = hints_with('')
      border_fg, border_bg = hints_with('--config.segmentation.auto_hints=border')
      with self.assertRaisesRegex(ValueError, r'segmentation.auto_hints'):
        hints_with('--config.segmentation.auto_hints=magic')
      with self.assertRaisesRegex(cli.UsageError, r'config.segmentation.auto_hint cannot be set from the page'):
        hints_with('--config.segmentation.auto_hint=border')
    finally:
      os.chdir(cwd)
    self.assertEqual(fg.shape, (64, 96))
    self.assertTrue(fg[32, 48] and not fg[0, 0] and bg[0, 0] and not bg[32, 48])  # 'object': the disc.
    # 'border' (the override), not what 'object' found.
    working, _ = image_io.working_image(photo, 64, path='the photo')
    want_fg, want_bg = hints_lib.automatic_hints(working, 'border')
    np.testing.assert_array_equal(border_fg, image_io.resize_image(want_fg, (64, 96)) > 0.5)
    np.testing.assert_array_equal(border_bg, image_io.resize_image(want_bg, (64, 96)) > 0.5)
    self.assertFalse(np.array_equal(border_fg, fg))

  def test_a_run_of_a_tiny_photo_ends_with_the_command_lines_message(self):
    folder = tempfile.mkdtemp(prefix='ddip_app_tiny_')
    photo = os.path.join(folder, 'tiny.png')
    Image.fromarray(np.zeros((6, 9, 3), np.uint8)).save(photo)
    cwd = os.getcwd()
    os.chdir(app_runs.REPO)
    try:
      config = app_runs.parse_config(app_runs.segmentation_args(photo=photo, fg_hint=None, bg_hint=None, settings={}))
      run = app_runs.Run(config, os.path.join(folder, 'output')).start()
      self.assertTrue(run.wait(120))
    finally:
      os.chdir(cwd)
    self.assertRegex(run.error, r"^'.*tiny\.png' is 9x6: too small, the generators need sides of at least 8 pixels$")
    self.assertIsNone(run.metrics)

  def test_task_tabs_args_give_all_their_files_or_none(self):
    transparency = next(tab for tab in app_runs.TASK_TABS if tab.title == 'Transparency')
    self.assertEqual(app_runs.task_args(transparency, {}, settings={'seed': 2}),
                     ['--config=configs/transparency.py', '--config.seed=2'])
    self.assertEqual(app_runs.task_args(transparency, {'image': '/x/a.png', 'transparency.image2': '/x/b.png'},
                                        settings={}),
                     ['--config=configs/transparency.py', '--config.image=/x/a.png',
                      '--config.transparency.image2=/x/b.png'])
    with self.assertRaisesRegex(cli.UsageError, r'^give the second mixture too \(or no file, for the demo\)$'):
      app_runs.task_args(transparency, {'image': '/x/a.png'}, settings={})
    for tab in app_runs.TASK_TABS:  # Every tab's demo parses.
      cwd = os.getcwd()
      os.chdir(app_runs.REPO)
      try:
        self.assertEqual(app_runs.parse_config(app_runs.task_args(tab, {}, settings={})).task,
                         os.path.basename(tab.config)[:-3])
      finally:
        os.chdir(cwd)

  def test_without_gradio_one_error_line(self):
    code = "import sys; sys.modules['gradio'] = None; from ddip_jax import app; sys.exit(app.main([]))"
    done = subprocess.run([sys.executable, '-c', code], cwd=app_runs.REPO, capture_output=True, text=True,
                          timeout=120)
    self.assertEqual(done.returncode, 2)
    self.assertEqual(done.stderr, 'error: the web app needs Gradio: pip install -r requirements-app.txt\n')

  def test_run_counts_stages_and_optimisations(self):
    state = types.SimpleNamespace(psnr=np.float32(20.0), best={'fg': np.zeros((1, 2, 2, 3))})

    def observe(run, calls):
      seen = []
      for name, total, done in calls:
        self.assertIsNone(run._observe(types.SimpleNamespace(name=name, num_steps=total), done, state))
        seen.append((run.snapshot.stage_index, run.snapshot.part, run.snapshot.done))
      return seen

    # Two stages, then the same again: the next optimisation (restarts, video windows).
    self.assertEqual(observe(app_runs.Run(None, ''), [('step1', 5, 2), ('step1', 5, 4), ('step2', 5, 2),
                                                     ('step2', 5, 5), ('step1', 5, 2), ('step2', 5, 2)]),
                     [(1, 1, 2), (1, 1, 4), (2, 1, 2), (2, 1, 5), (1, 2, 2), (2, 2, 2)])
    run = app_runs.Run(None, '')  # One stage, twice (dehazing passes): its steps start over.
    self.assertEqual(observe(run, [('pass', 3, 2), ('pass', 3, 3), ('pass', 3, 1)]), [(1, 1, 2), (1, 1, 3), (1, 2, 1)])
    self.assertEqual(run.snapshot.describe()[:56], 'stage 1 (pass, optimisation 2): step 1/3, PSNR 20.00 dB')
    run.stop()
    self.assertEqual(run._observe(types.SimpleNamespace(name='pass', num_steps=3), 2, state), 'stop button')

  def test_watermark_args_paint_the_box_around_the_strokes(self):
    folder = app_runs.new_run_folder(tempfile.mkdtemp(), 'watermark')
    photo = os.path.join(folder, 'mine.png')
    Image.fromarray(np.zeros((6, 9, 3), np.uint8)).save(photo)
    layer = np.zeros((6, 9, 4), np.uint8)
    layer[1, 2] = layer[2, 4] = (255, 0, 0, 255)
    args = app_runs.watermark_args(folder, photo=photo, layers=[layer], settings={'seed': 1})
    box = os.path.join(folder, 'input', 'box.png')
    copy = os.path.join(folder, 'input', 'photo.png')
    self.assertEqual(args, ['--config=configs/watermark.py', f'--config.image={copy}', f'--config.watermark.hint={box}',
                            '--config.seed=1'])
    np.testing.assert_array_equal(np.argwhere(image_io.load_mask(box, shape=(6, 9)) > 0.5),
                                  [[1, 2], [1, 3], [1, 4], [2, 2], [2, 3], [2, 4]])
    with self.assertRaisesRegex(cli.UsageError, r'^paint over the watermark'):
      app_runs.watermark_args(folder, photo=photo, layers=[], settings={})

  def test_the_editor_shows_a_large_photo_at_most_editor_side(self):
    if app_widgets.gr is None:
      self.skipTest('needs gradio (requirements-app.txt)')
    editor = app_widgets.editor(np.zeros((3000, 4000, 3), np.float32), (app_runs.FG_COLOUR, app_runs.BG_COLOUR))
    side = app_widgets.EDITOR_SIDE
    with Image.open(editor.value['background']['path']) as shown:
      self.assertEqual(shown.size, (side, side * 3 // 4))
    self.assertEqual(editor.brush.default_size, side * 3 // 4 // 40)
    # Strokes painted on the smaller canvas mark the photo's own pixels.
    layer = np.zeros((1200, 1600, 4), np.uint8)
    layer[600:610, 800:810] = (*app_runs.FG_COLOUR, 255)
    fg, _ = app_runs.strokes_to_hints([layer], (3000, 4000))
    self.assertTrue(fg[1500:1525, 2000:2025].all())
    self.assertEqual(fg.sum(), 25 * 25)

  def test_rgba_cutout(self):
    cut = app_runs.rgba_cutout(np.full((2, 2, 3), 0.5, np.float32), np.array([[1.0, 0.0], [0.0, 1.0]]))
    self.assertEqual(cut.dtype, np.uint8)
    np.testing.assert_array_equal(cut[..., 3], [[255, 0], [0, 255]])


_MISSING = app_browser.missing()


@unittest.skipIf(_MISSING, f'browser test: {_MISSING}')
class BrowserTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.runs_dir = tempfile.mkdtemp(prefix='ddip_app_test_')
    cls.timings = {}
    start = time.monotonic()
    cls.server = app_browser.serving(cls.runs_dir)
    cls.url = cls.server.__enter__()
    cls.browser = app_browser.browser()
    cls.driver = cls.browser.__enter__()
    cls.timings['start'] = time.monotonic() - start

  @classmethod
  def tearDownClass(cls):
    cls.browser.__exit__(None, None, None)
    cls.server.__exit__(None, None, None)
    print(f'browser test timings (s): {cls.timings}')
    super().tearDownClass()

  def test_a_text_file_gets_the_command_lines_message(self):
    page = app_browser.Page(self.driver, self.url)
    path = os.path.join(self.runs_dir, 'notes.txt')
    with open(path, 'w') as f:
      f.write('not a photo\n')
    page.upload(path)
    status = page.wait_status('error:', 30)
    with self.assertRaises(image_io.InputError) as cli_error:
      image_io.load_image(path)
    # The same words as main.py's `error:` line; the path is Gradio's copy of the upload.
    self.assertRegex(status, r"^error: cannot read '.*notes\.txt': not a recognised image file$")
    self.assertTrue(str(cli_error.exception).endswith(status.split(': ', 2)[-1]))
    page.run()  # With no photo.
    expected = 'error: upload a photo or pick the zebra first'
    page.wait_for(lambda: page.status() == expected, 30, expected)

  def test_demo_automatic_hints_and_stop(self):
    start = time.monotonic()
    page = app_browser.Page(self.driver, self.url)
    page.find('#seg_demo').click()
    page.wait_status('demo data/zebra.png', 30)
    page.find('#seg_auto').click()
    page.wait_status('automatic hints drawn', 60)
    # Far more steps than the test waits for: it stops the run.
    page.set_settings({'num_steps': 100000, 'segmentation.hint_steps': 100000, 'max_side': 64}, _TINY_EXTRA)
    page.run()
    page.wait_for(lambda: 'step ' in page.find('#seg_progress').text, 120, 'progress')
    page.wait_for(lambda: page.driver.find_elements(page.by.CSS_SELECTOR, '#seg_mask img'), 30, 'a preview')
    page.find('#seg_stop').click()
    status = page.wait_status('stopped', 60)
    self.timings['stop'] = time.monotonic() - start
    self.assertStartsWith(status, 'stopped: the best result so far: outputs in ')
    command = shlex.split(page.text('seg_command'))
    self.assertIn('--config=configs/zebra.py', command)  # The demo's own config: its ground truth scores it.
    workdir = os.path.join(app_runs.REPO, next(a for a in command if a.startswith('--workdir=')).split('=', 1)[1])
    with open(os.path.join(workdir, 'metrics.json')) as f:
      metrics = json.load(f)
    self.assertStartsWith(metrics['status'], 'stopped: interrupted (stop button)')
    self.assertIn('iou', metrics)
    # The automatic hints, drawn as strokes, were run as the user's hint files.
    self.assertEqual(metrics['hints']['fg_hint']['source'], app_runs.relative(
        os.path.join(os.path.dirname(workdir), 'input', 'fg_hint.png')))

  def test_strokes_run_and_outputs(self):
    start = time.monotonic()
    page = app_browser.Page(self.driver, self.url)
    page.upload(app_browser.ZEBRA)
    page.wait_status('photo zebra.png', 30)
    page.wait_for(lambda: page.driver.find_elements(page.by.CSS_SELECTOR, '#seg_editor canvas'), 10, 'the canvas')
    time.sleep(1)  # The photo is drawn on the canvas.
    box = page.displayed_photo()
    page.stroke(app_browser.FG_STROKE, colour=0, box=box)
    page.stroke(app_browser.BG_STROKE, colour=1, box=box)
    page.set_settings(_TINY_SETTINGS, _TINY_EXTRA)
    self.timings['draw'] = time.monotonic() - start
    page.run()
    status = page.wait_status('done', 150)
    self.timings['run'] = time.monotonic() - start - self.timings['draw']
    self.assertStartsWith(status, 'done: outputs in ')
    page.wait_for(lambda: page.text('seg_command'), 10, 'the command')
    command = shlex.split(page.text('seg_command'))
    workdir = os.path.join(app_runs.REPO, next(a for a in command if a.startswith('--workdir=')).split('=', 1)[1])
    folder = os.path.dirname(workdir)

    # The strokes became hint PNGs at the photo's size, where they were painted.
    truth = image_io.load_mask(_ZEBRA_MASK, shape=(192, 256)) > 0.5
    fg_hint = image_io.load_mask(os.path.join(folder, 'input', 'fg_hint.png'), shape=(192, 256)) > 0.5
    bg_hint = image_io.load_mask(os.path.join(folder, 'input', 'bg_hint.png'), shape=(192, 256)) > 0.5
    self.assertGreater(fg_hint.sum(), 100)
    self.assertGreater(bg_hint.sum(), 100)
    self.assertGreater(truth[fg_hint].mean(), 0.9)
    self.assertLess(truth[bg_hint].mean(), 0.05)
    self.assertIn(f'--config.fg_hint={app_runs.relative(os.path.join(folder, "input", "fg_hint.png"))}', command)

    # The run's outputs: the mask keeps the fg stroke's pixels as foreground, the bg stroke's as background.
    mask = image_io.load_mask(os.path.join(workdir, 'mask_binary.png'), shape=(192, 256)) > 0.5
    self.assertTrue(mask[fg_hint].all())
    self.assertFalse(mask[bg_hint].any())
    cutout = Image.open(os.path.join(folder, 'cutout.png'))
    self.assertEqual((cutout.mode, cutout.size), ('RGBA', (256, 192)))
    with zipfile.ZipFile(os.path.join(folder, 'outputs.zip')) as archive:
      names = set(archive.namelist())
    base = os.path.basename(folder)
    for name in ('output/mask.png', 'output/fg.png', 'output/bg.png', 'output/metrics.json', 'cutout.png',
                 'command.txt', 'input/fg_hint.png'):
      self.assertIn(f'{base}/{name}', names)
    # The page shows the layers.
    for elem_id in ('seg_fg', 'seg_bg', 'seg_mask', 'seg_cutout'):
      page.wait_for(lambda e=elem_id: page.driver.find_elements(page.by.CSS_SELECTOR, f'#{e} img'), 10, elem_id)


if __name__ == '__main__':
  absltest.main()

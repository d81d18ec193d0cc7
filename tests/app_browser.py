"""Drives the web app (`ddip_jax.app`) in headless Chromium, as a person would: for its test and its screenshots.

Debian's `chromium` and `chromium-driver` (apt-get install chromium
chromium-driver) with the `selenium` package; the driver's path is given, so
Selenium Manager downloads nothing.
"""

import collections
import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
CHROMEDRIVER = shutil.which('chromedriver') or '/usr/bin/chromedriver'
ZEBRA = os.path.join(REPO, 'data', 'zebra.png')
# Strokes on the zebra, as (x, y) fractions of the photo: along its body (foreground), and a loop
# along the photo's border (background), as the README advises.
FG_STROKE = [(0.36, 0.53), (0.45, 0.52), (0.55, 0.53)]
BG_STROKE = [
    (0.03, 0.03),
    (0.97, 0.03),
    (0.975, 0.5),
    (0.97, 0.975),
    (0.5, 0.975),
    (0.03, 0.975),
    (0.025, 0.5),
    (0.03, 0.06),
]


def missing() -> str | None:
  """What this machine lacks to drive the page (None: nothing)."""
  for module in ('gradio', 'selenium'):
    try:
      __import__(module)
    except ImportError:
      return f'{module} is not installed (pip install -r requirements-app.txt)'
  for path in (CHROMIUM, CHROMEDRIVER):
    if not os.access(path, os.X_OK):
      return f'{path} is missing (apt-get install chromium chromium-driver)'
  return None


@contextlib.contextmanager
def serving(runs_dir: str, *args: str, timeout: float = 120.0) -> Iterator[str]:
  """Starts `python -m ddip_jax.app` (with `args`) on a free port in a subprocess; yields its URL; stops it."""
  process = subprocess.Popen(
      [sys.executable, '-m', 'ddip_jax.app', '--port=0', f'--runs_dir={runs_dir}', *args],
      cwd=REPO,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
  )
  try:
    deadline, lines = time.monotonic() + timeout, []
    for line in process.stdout:  # The app prints its URL once it serves.
      lines.append(line)
      if 'web app: http' in line:
        url = line.split('web app: ', 1)[1].split()[0]
        break
      if time.monotonic() > deadline:
        raise TimeoutError('the app did not start:\n' + ''.join(lines))
    else:
      raise RuntimeError(f'the app exited ({process.wait()}):\n' + ''.join(lines))
    # Keep reading its output, or a full pipe would block the app.
    threading.Thread(target=collections.deque, args=(process.stdout, 0), daemon=True).start()
    yield url
  finally:
    process.terminate()
    try:
      process.wait(30)
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()


@contextlib.contextmanager
def browser(*, width: int = 1400, height: int = 1000):
  """A headless Chromium (Selenium WebDriver), closed on exit."""
  from selenium import webdriver  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top

  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for arg in (
      '--headless=new',
      '--no-sandbox',
      '--disable-dev-shm-usage',
      f'--window-size={width},{height}',
      '--enable-unsafe-swiftshader',
  ):  # The editor's canvas is WebGL: software rendering.
    options.add_argument(arg)
  driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
  try:
    yield driver
  finally:
    driver.quit()


class Page:
  """The segmentation tab of the app in a browser."""

  def __init__(self, driver, url: str):
    from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top

    self.driver, self.by = driver, By
    driver.get(url)
    self.wait_for(lambda: driver.find_elements(By.ID, 'seg_run'), 60, 'the page')

  def find(self, css: str):
    return self.driver.find_element(self.by.CSS_SELECTOR, css)

  def wait_for(self, condition, seconds: float, what: str):
    """Polls `condition` until it is true (returns it) or `seconds` pass."""
    from selenium.common.exceptions import StaleElementReferenceException  # pylint: disable=g-import-not-at-top

    deadline = time.monotonic() + seconds
    while True:
      try:
        value = condition()
      except StaleElementReferenceException:  # The page re-rendered what it was reading: read it again.
        value = None
      if value:
        return value
      if time.monotonic() > deadline:
        raise TimeoutError(f'waited {seconds} s for {what}; status: {self.status()!r}')
      time.sleep(0.25)

  def read(self, reading):
    """`reading()`, read again while the page re-renders what it reads (a stale element)."""
    from selenium.common.exceptions import StaleElementReferenceException  # pylint: disable=g-import-not-at-top

    for _ in range(40):
      try:
        return reading()
      except StaleElementReferenceException:
        time.sleep(0.25)
    return reading()

  def status(self) -> str:
    return self.read(lambda: self.find('#seg_status textarea').get_attribute('value') or '')

  def wait_status(self, prefix: str, seconds: float) -> str:
    """Waits for the status line to start with `prefix` (or with 'error:'); returns it."""
    status = self.wait_for(
        lambda: (s := self.status()).startswith((prefix, 'error:')) and s, seconds, f'status {prefix!r}'
    )
    return status

  def upload(self, path: str) -> None:
    """Chooses `path` in the photo box, as a user's file dialog would."""
    self.find('#seg_upload input[type=file]').send_keys(os.path.abspath(path))

  def canvas(self):
    return self.driver.find_elements(self.by.CSS_SELECTOR, '#seg_editor canvas')[-1]

  def stroke(self, points: list[tuple[float, float]], *, colour: int, box: tuple[float, float, float, float]) -> None:
    """Paints a stroke through `points`, given as (x, y) fractions of the photo's width and height.

    Args:
      points: the stroke's points.
      colour: 0 red (foreground), 1 blue (background): the swatch to pick.
      box: where the photo is on the page (`displayed_photo`, read before any stroke covers it).
    """
    from selenium.webdriver.common.action_chains import ActionChains  # pylint: disable=g-import-not-at-top

    self.find('#seg_editor button[aria-label="Color"]').click()
    self.wait_for(
        lambda: self.driver.find_elements(self.by.CSS_SELECTOR, '#seg_editor button.color'), 10, 'the colour swatches'
    )
    self.driver.find_elements(self.by.CSS_SELECTOR, '#seg_editor button.color')[colour].click()
    # Close the swatches (they may cover the photo): a click outside the editor does.
    self.find('h1').click()
    self.wait_for(
        lambda: not any(
            b.is_displayed() for b in self.driver.find_elements(self.by.CSS_SELECTOR, '#seg_editor button.color')
        ),
        10,
        'the swatches to close',
    )
    canvas = self.canvas()
    # Selenium moves from the centre of the element's part in view: all of it must be in view.
    self.driver.execute_script('arguments[0].scrollIntoView({block: "center"});', canvas)
    time.sleep(0.3)
    rect = canvas.rect
    actions = ActionChains(self.driver, duration=20)

    def offset(point):  # From the canvas's centre, as Selenium 4 moves.
      x = box[0] + point[0] * box[2] - rect['x']
      y = box[1] + point[1] * box[3] - rect['y']
      return int(round(x - rect['width'] / 2)), int(round(y - rect['height'] / 2))

    actions.move_to_element_with_offset(canvas, *offset(points[0])).click_and_hold()
    for point in points[1:]:
      actions.move_to_element_with_offset(canvas, *offset(point))
    actions.release().perform()

  def displayed_photo(self) -> tuple[float, float, float, float]:
    """(left, top, width, height) of the photo on the page, in CSS pixels.

    The editor scales and centres the photo in its canvas as it sees fit; it is
    found in a screenshot of the canvas.
    """
    import io  # pylint: disable=g-import-not-at-top

    import numpy as np  # pylint: disable=g-import-not-at-top
    from PIL import Image  # pylint: disable=g-import-not-at-top
    from scipy import ndimage  # pylint: disable=g-import-not-at-top

    canvas = self.canvas()
    # A canvas partly scrolled out of view (after Settings, say) gives a cropped screenshot.
    self.driver.execute_script('arguments[0].scrollIntoView({block: "center"});', canvas)
    time.sleep(0.3)
    shot = np.asarray(Image.open(io.BytesIO(canvas.screenshot_as_png)).convert('RGB'))
    # The canvas is under the editor's tool bars: the photo is the largest region that is not white.
    regions, _ = ndimage.label((shot < 248).any(-1))
    sizes = np.bincount(regions.ravel())
    sizes[0] = 0
    rows, cols = np.nonzero(regions == sizes.argmax())
    rect = canvas.rect
    scale = rect['width'] / shot.shape[1]  # Screenshot pixels per CSS pixel.
    return (
        rect['x'] + cols.min() * scale,
        rect['y'] + rows.min() * scale,
        (cols.max() + 1 - cols.min()) * scale,
        (rows.max() + 1 - rows.min()) * scale,
    )

  def set_settings(self, values: dict[str, object], extra: str = '') -> None:
    """Opens Settings and types the fields' values (`ddip_jax.app_cutout.SETTINGS` names) and extra arguments."""
    self.find('#seg_settings button').click()  # The accordion's header (Gradio's footer has a Settings too).
    for field, value in values.items():
      box = self.wait_for(
          lambda f=field: self.driver.find_elements(self.by.CSS_SELECTOR, f'#seg_{f.replace(".", "_")} input'),
          10,
          field,
      )[0]
      box.clear()
      box.send_keys(str(value))
    if extra:
      self.find('#seg_extra textarea').send_keys(extra)
    self.find('#seg_settings button').click()  # Closes it: the typed values are sent when a box loses focus.

  def run(self) -> None:
    self.find('#seg_run').click()

  def image_src(self, elem_id: str) -> str | None:
    """The URL of the picture an image box shows (None: none)."""

    def reading():
      found = self.driver.find_elements(self.by.CSS_SELECTOR, f'#{elem_id} img')
      return (found[0].get_attribute('src') or None) if found else None

    return self.read(reading)

  def image(self, elem_id: str):
    """The picture an image box shows, as a uint8 array (read from the page's server, as the browser reads it)."""
    import io  # pylint: disable=g-import-not-at-top
    import urllib.request  # pylint: disable=g-import-not-at-top

    import numpy as np  # pylint: disable=g-import-not-at-top
    from PIL import Image  # pylint: disable=g-import-not-at-top

    with urllib.request.urlopen(self.image_src(elem_id), timeout=30) as answer:
      return np.asarray(Image.open(io.BytesIO(answer.read())).convert('RGB'))

  def wait_new_image(self, elem_id: str, old: str | None, seconds: float) -> str:
    """Waits for the image box to show another picture than `old` (a URL); returns its URL."""
    return self.wait_for(
        lambda: (src := self.image_src(elem_id)) and src != old and src, seconds, f'a new picture in #{elem_id}'
    )

  def text(self, elem_id: str) -> str:
    return self.read(lambda: self.find(f'#{elem_id} textarea').get_attribute('value') or '')

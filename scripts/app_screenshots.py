r"""Screenshots of the web app before and after a run on the zebra, for the README.

  python scripts/app_screenshots.py [--out=docs] [--during=30]

Drives the page as `tests/app_test.py` does (headless Chromium, Debian's
chromium and chromium-driver): uploads data/zebra.png, paints a foreground
stroke on the zebra and a background stroke along the border, waits for the
instant preview and saves `<out>/app_before.png`, runs with the page's defaults
(200 + 200 steps with painted hints, under a minute on 2 CPU cores), optionally
saves `<out>/app_during.png` that many seconds into the run, and saves
`<out>/app_after.png` once it is done (the mask on the photo and the cut-out).
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tests'))
import app_browser  # pylint: disable=g-import-not-at-top,wrong-import-position


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--out', default=os.path.join(app_browser.REPO, 'docs'), help='Folder of the screenshots.')
  parser.add_argument('--during', type=float, default=0, help='Seconds into the run for app_during.png (0: none).')
  parser.add_argument('--extra', default='', help='More config overrides typed into the page.')
  args = parser.parse_args()
  missing = app_browser.missing()
  if missing:
    print(f'error: {missing}', file=sys.stderr)
    return 2
  with (
      app_browser.serving(tempfile.mkdtemp(prefix='ddip_app_shots_')) as url,
      app_browser.browser(width=1400, height=1250) as driver,
  ):
    page = app_browser.Page(driver, url)
    page.upload(app_browser.ZEBRA)
    page.wait_status('photo zebra.png', 30)
    time.sleep(1)  # The photo is drawn on the canvas.
    box = page.displayed_photo()
    page.stroke(app_browser.FG_STROKE, colour=0, box=box)
    page.stroke(app_browser.BG_STROKE, colour=1, box=box)
    if args.extra:
      page.set_settings({}, args.extra)
    page.wait_new_image('seg_overlay', None, 60)  # The strokes' preview.
    time.sleep(1)
    driver.save_screenshot(os.path.join(args.out, 'app_before.png'))
    start = time.monotonic()
    page.run()
    if args.during:
      time.sleep(args.during)
      driver.save_screenshot(os.path.join(args.out, 'app_during.png'))
    status = page.wait_status('done', 1800)
    page.wait_for(lambda: driver.find_elements(page.by.CSS_SELECTOR, '#seg_cutout img'), 30, 'the cut-out')
    time.sleep(2)  # The images load.
    driver.save_screenshot(os.path.join(args.out, 'app_after.png'))
    print(f'{status}  ({time.monotonic() - start:.0f} s)')
  return 0 if status.startswith('done') else 1


if __name__ == '__main__':
  sys.exit(main())

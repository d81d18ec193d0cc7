"""What the web page takes from a request: an allow-list, not a deny-list.

The page serves whoever reaches its port. A request may set only the settings
the page shows and the config fields of `allowed_fields` with plain values (a
number, true/false, a tuple of numbers, or a name among a field's choices): no
flag but `--config.<field>=<value>`, no config file, no field that names a file
(the page's own uploads and strokes are its only files). Uploads are taken only
from Gradio's upload folder, under a size limit. Run folders older than a limit
are deleted, and a run that made no result leaves nothing behind.
Nothing here needs Gradio.
"""

import ipaddress
import os
import re
import shlex
import shutil
import time
from typing import Any

import ml_collections

from ddip_jax import cli

# String fields a request may set, each to a plain name (the config's checks then refuse an unknown one).
CHOICE_FIELDS = (
    'generator.upsample_mode',
    'generator.noise_method',
    'segmentation.auto_hints',
    'segmentation.grow_hints',
    'transparency.mixture',
    'transparency.alpha',
    'transparency.unmix',
    'transparency.unmix_select',
    'dehaze.airlight',
    'dehaze.transmission_prior',
    'video.auto_hints',
    'watermark.batch_runs',
    'watermark.keep_from',
    'watermark.watermark_model',
    'watermark.clean_from',
    'watermark.stroke_polarity',
    'loop.strategy',
)
# Fields of another kind a request may not set although their values are plain.
_NOT_FROM_PAGE = ('task', 'progress', 'generator.dtype', 'loop.cpu_convolutions', 'loop.checkpoint_every')
MAX_OVERRIDES = 32  # Arguments in the "More config overrides" box.
_NUMBER = r'[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?'
_PLAIN = {
    'number': re.compile(_NUMBER),
    'bool': re.compile(r'(?i:true|false)'),
    'tuple': re.compile(rf'\(\s*({_NUMBER}\s*(,\s*{_NUMBER}\s*)*,?\s*)?\)'),
    'choice': re.compile(r'[A-Za-z0-9_]{1,40}'),
}
_OVERRIDE = re.compile(r'--config\.([a-z0-9_.]{1,80})=(.{0,200})', re.DOTALL)


def allowed_fields(defaults: ml_collections.ConfigDict, prefix: str = '') -> dict[str, str]:
  """Dotted field -> its kind ('number', 'bool', 'tuple', 'choice') for every field a request may set.

  Numbers, booleans and tuples of numbers of `defaults` (configs/default.py):
  none of them can name a file; strings only in CHOICE_FIELDS.
  """
  fields = {}
  for name, value in defaults.items():
    field = f'{prefix}{name}'
    if field in _NOT_FROM_PAGE:
      continue
    if isinstance(value, ml_collections.ConfigDict):
      fields.update(allowed_fields(value, f'{field}.'))
    elif isinstance(value, bool):
      fields[field] = 'bool'
    elif isinstance(value, (int, float)):
      fields[field] = 'number'
    elif isinstance(value, tuple) and value and all(isinstance(v, (int, float)) for v in value):
      fields[field] = 'tuple'
    elif isinstance(value, str) and field in CHOICE_FIELDS:
      fields[field] = 'choice'
  return fields


def page_overrides(extra: str | None, allowed: dict[str, str]) -> list[str]:
  """The `--config.<field>=<value>` arguments of the overrides box, each checked against `allowed`.

  Args:
    extra: the box's text, split as a shell would.
    allowed: `allowed_fields`.

  Raises:
    cli.UsageError: anything else (another flag, a config file, a field not
      allowed, a value that is not plain), in one line.
  """
  try:
    tokens = shlex.split(extra or '')
  except ValueError as err:
    raise cli.UsageError(f'more config overrides: {err}') from err
  if len(tokens) > MAX_OVERRIDES:
    raise cli.UsageError(f'more config overrides: at most {MAX_OVERRIDES} arguments')
  args = []
  for token in tokens:
    match = _OVERRIDE.fullmatch(token)
    if not match:
      raise cli.UsageError(
          f'more config overrides: {_short(token)} is not --config.<field>=<value> '
          '(the page takes no other flag and no config file)'
      )
    field, value = match.groups()
    kind = allowed.get(field)
    if kind is None:
      raise cli.UsageError(
          f'more config overrides: config.{field} cannot be set from the page (files come only '
          'through its upload boxes and strokes)'
      )
    if not _PLAIN[kind].fullmatch(value.strip()):
      raise cli.UsageError(f'more config overrides: config.{field} takes a plain {kind}, not {_short(value)}')
    args.append(f'--config.{field}={value.strip()}')
  return args


def setting_args(settings: dict[str, Any]) -> list[str]:
  """`--config.<field>=<int>` for the page's number boxes (None or '': the config's value).

  Raises:
    cli.UsageError: a value that is not a whole number.
  """
  args = []
  for field, value in settings.items():
    if value is None or value == '':
      continue
    try:
      number = float(value)
      if isinstance(value, bool) or not number.is_integer():
        raise ValueError
    except (TypeError, ValueError, OverflowError):
      raise cli.UsageError(f'setting {field}: {_short(str(value))} is not a whole number') from None
    args.append(f'--config.{field}={int(number)}')
  return args


def uploaded_file(path: str | None, upload_folder: str) -> str | None:
  """`path` if it is a regular file in Gradio's `upload_folder` (where the page's uploads land), else an error.

  Raises:
    cli.UsageError: a path elsewhere on the server.
  """
  if not path:
    return None
  real, folder = os.path.realpath(path), os.path.realpath(upload_folder)
  if not real.startswith(folder + os.sep) or not os.path.isfile(real):
    raise cli.UsageError('the file is not one uploaded to this page')
  return real


def is_loopback(host: str) -> bool:
  """Whether `host` serves this machine only (localhost, 127.0.0.0/8, ::1)."""
  if host == 'localhost':
    return True
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return False


def auth_from_env(value: str | None) -> tuple[str, str] | None:
  """(user, password) from DDIP_APP_AUTH='user:password'; None when unset.

  Raises:
    cli.UsageError: set without a ':' or with an empty part.
  """
  if not value:
    return None
  user, _, password = value.partition(':')
  if not user or not password:
    raise cli.UsageError('DDIP_APP_AUTH must be user:password')
  return user, password


def prune_runs(runs_dir: str, max_age_s: float, *, now: float | None = None) -> list[str]:
  """Deletes the run folders in `runs_dir` last changed more than `max_age_s` ago; returns them.

  Only folders the page made (`<kind>-<date>-<time>-<id>`); `max_age_s` <= 0 keeps all.
  """
  if max_age_s <= 0 or not os.path.isdir(runs_dir):
    return []
  now = time.time() if now is None else now
  removed = []
  for name in sorted(os.listdir(runs_dir)):
    path = os.path.join(runs_dir, name)
    if not re.fullmatch(r'[a-z_]+-\d{8}-\d{6}-[0-9a-f]{6}', name) or not os.path.isdir(path):
      continue
    if now - os.path.getmtime(path) > max_age_s:
      shutil.rmtree(path, ignore_errors=True)
      removed.append(path)
  return removed


def _short(text: str, limit: int = 60) -> str:
  return repr(text if len(text) <= limit else text[:limit] + '...')

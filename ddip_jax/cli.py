"""The command line into a config: every mistake one line, 'None' unsets, ground truth follows its input.

`parse` (absl's `flags_parser` for `app.run`, through `parse_or_exit`) parses
the flags, the config file and its `--config.<field>=<value>` overrides, and
turns every mistake (a config file that is missing or does not load, an
unknown field, with the closest field names, a value of the wrong type, an
unknown flag, an extra argument) into a `UsageError` of one line. On the parsed
config it then applies two rules:

- An optional field (a `config_dict.placeholder`, e.g. `gt_mask`, `fg_hint`,
  `watermark.images`) given as `None` or as nothing (`--config.gt_mask=None`,
  `--config.gt_mask=`) is unset.
- Ground truth follows its input. The evaluation-only fields
  (`config_check.GROUND_TRUTH_FIELDS`: masks, clean images, layers, the metric
  box) that a config file sets describe that file's own input (its demo). When
  the command line changes the input (`config_check.INPUT_FIELDS`: `image`,
  `inputs`, `transparency.image2`, `watermark.images`) but not such a field,
  the field is unset with a warning naming it, instead of scoring (or failing
  on) your image against the demo's ground truth.
"""

import difflib
import importlib.util
import os
import re
import sys

from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_dict
from ml_collections import config_flags

from ddip_jax import config_check
from ddip_jax import errors

CONFIG_FLAG = 'config'
# absl's words for a value of the wrong type, and ours.
_VALUE_PROBLEMS = (
    (r'invalid literal for int\(\)', 'not a whole number'),
    (r'could not convert string to float', 'not a number'),
    (r'Non-boolean argument', 'not true or false'),
)


UsageError = errors.UsageError


def _one_line(text: str) -> str:
  """The gist of a message that may span lines (of a traceback: its last line)."""
  lines = [line.strip() for line in str(text).splitlines() if line.strip()]
  return lines[-1] if lines else ''


def _config_argument(argv: list[str]) -> str | None:
  """The `--config` value of `argv` (the last one given), or None."""
  path = None
  for i, arg in enumerate(argv[1:], start=1):
    match = re.match(rf'--?{CONFIG_FLAG}(=(.*))?$', arg)
    if match:
      path = match.group(2) if match.group(1) else (argv[i + 1] if i + 1 < len(argv) else '')
  return path


def load_config_file(path: str) -> ml_collections.ConfigDict:
  """The config a `--config` value names (`file.py` or `file.py:argument`), as the file makes it.

  Raises:
    UsageError: the file is missing or does not load.
  """
  file = path.split(':', 1)[0]
  if not os.path.isfile(file):
    raise UsageError(
        f'--{CONFIG_FLAG}={path}: '
        + ('is a directory, not a config file' if os.path.isdir(file) else 'no such config file')
    )
  try:
    spec = importlib.util.spec_from_file_location('ddip_jax_config_file', file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(*path.split(':', 1)[1:])
    if not isinstance(config, ml_collections.ConfigDict):
      raise TypeError(f'get_config() returned {type(config).__name__}, not a ConfigDict')
  except Exception as err:  # pylint: disable=broad-except  # Whatever executing the file raises.
    hint = ' (run main.py from the repository root)' if isinstance(err, ModuleNotFoundError) else ''
    reason = err.strerror if isinstance(err, OSError) and err.strerror else _one_line(f'{type(err).__name__}: {err}')
    raise UsageError(f'--{CONFIG_FLAG}={path}: cannot load it ({reason}){hint}') from err
  return config


def _fields(config: ml_collections.ConfigDict, prefix: str = '') -> list[str]:
  """Every dotted field name of `config`, sections included (before their fields)."""
  names = []
  for name, value in config.items():
    names.append(f'{prefix}{name}')
    if isinstance(value, ml_collections.ConfigDict):
      names += _fields(value, f'{prefix}{name}.')
  return names


def unknown_field(argv: list[str], config: ml_collections.ConfigDict) -> str | None:
  """A message for the first `--config.<field>` override of `argv` that `config` has no field for."""
  known = _fields(config)
  fields = [name for name in known if not isinstance(config_check.get_field(config, name), ml_collections.ConfigDict)]
  for arg in argv[1:]:
    match = re.match(rf'--?(?:no)?{CONFIG_FLAG}\.([^=]+)', arg)
    if not match or match.group(1) in known:
      continue
    field = match.group(1)
    leaf = field.rsplit('.', 1)[-1]
    # The same name in another section first, then names spelt alike.
    close = [name for name in fields if name.rsplit('.', 1)[-1] == leaf]
    close += [name for name in difflib.get_close_matches(field, fields, n=3, cutoff=0.6) if name not in close]
    advice = (
        f'did you mean {" or ".join(f"--{CONFIG_FLAG}.{name}" for name in close[:3])}?'
        if close
        else 'the fields are listed in configs/default.py'
    )
    return f'--{CONFIG_FLAG}.{field}: no such config field; {advice}'
  return None


def _flag_error(err: Exception) -> str:
  """absl's message for a bad flag, as one line of ours."""
  text = str(err)
  match = re.match(r'flag (--[^=\s]+)=(.*?): (.*)$', text, re.S)
  if not match:
    return f'{_one_line(text)} (--helpshort lists the flags)'
  flag, value, problem = match.groups()
  for pattern, words in _VALUE_PROBLEMS:
    if re.search(pattern, problem):
      return f'{flag}={value}: {words}'
  return f'{flag}={value}: {_one_line(problem)}'


def _means_unset(value) -> bool:
  if isinstance(value, str):
    return value.strip().lower() in ('', 'none')
  return isinstance(value, tuple) and all(v is None or _means_unset(v) for v in value)


def unset_empty_optionals(config: ml_collections.ConfigDict) -> None:
  """Unsets every optional field (a placeholder) whose value is 'None', '' or a tuple of those."""
  for name, value in config.items(preserve_field_references=True):
    if isinstance(value, ml_collections.ConfigDict):
      unset_empty_optionals(value)
    elif isinstance(value, config_dict.FieldReference) and value.get() is not None and _means_unset(value.get()):
      config[name] = None


def drop_foreign_ground_truth(
    config: ml_collections.ConfigDict,
    file_config: ml_collections.ConfigDict,
    overridden: set[str],
    config_path: str,
    *,
    warn: bool = True,
) -> None:
  """Unsets the config file's ground truths when the command line changed the input they describe.

  Says so as a warning (`warn`), else in the log's info lines (the API, whose callers are told in its docs).
  """
  changed = [
      f
      for f in config_check.INPUT_FIELDS
      if config_check.get_field(config, f) != config_check.get_field(file_config, f)
  ]
  if not changed:
    return
  for field in config_check.GROUND_TRUTH_FIELDS:
    value = config_check.get_field(config, field)
    if value and field not in overridden:
      section, _, leaf = field.rpartition('.')
      (config_check.get_field(config, section) if section else config)[leaf] = None
      log = logging.warning if warn else logging.info
      log(
          "config.%s = %r is the ground truth of %s's own input, not of config.%s = %r: not used "
          '(give --config.%s=PATH to score against yours)',
          field,
          value,
          config_path,
          changed[0],
          config_check.get_field(config, changed[0]),
          field,
      )


def parse(argv: list[str], flag_values: flags.FlagValues = flags.FLAGS, *, default_config: str) -> list[str]:
  """Parses `argv` into `flag_values`, then applies the rules above.

  `flag_values` has a `--config` flag defined by `config_flags.DEFINE_config_file`
  with no default (a default would be loaded, with the command line's
  overrides, when the flag is defined, where a mistake cannot be caught):
  without `--config` in `argv`, `default_config` is used.

  Returns:
    [argv[0]]: the program name, as `app.run` passes it to `main`.

  Raises:
    UsageError: any mistake on the command line, in one line.
  """
  if _config_argument(argv) is None:
    argv = [argv[0], f'--{CONFIG_FLAG}={default_config}', *argv[1:]]
  try:
    rest = flag_values(argv)
  except Exception as err:  # pylint: disable=broad-except  # absl and ml_collections raise many kinds.
    file_config = load_config_file(_config_argument(argv))
    unknown = unknown_field(argv, file_config)
    if unknown:
      raise UsageError(unknown) from err
    if isinstance(err, flags.Error):
      raise UsageError(_flag_error(err)) from err
    raise UsageError(f'cannot parse the command line ({_one_line(f"{type(err).__name__}: {err}")})') from err
  if len(rest) > 1:
    raise UsageError(f'unexpected argument {rest[1]!r}: flags are written --name=value (--helpshort lists them)')
  path = flag_values[CONFIG_FLAG].config_filename
  config = flag_values[CONFIG_FLAG].value
  if not isinstance(config, ml_collections.ConfigDict):  # ml_collections defers a missing file's error.
    load_config_file(path)  # Says why, if it fails again.
    raise UsageError(f'--{CONFIG_FLAG}={path}: cannot load it')
  unset_empty_optionals(config)
  overridden = set(config_flags.get_override_values(flag_values[CONFIG_FLAG]))
  foreign = config_check.foreign_field(config, overridden)
  if foreign:
    raise UsageError(f'--{foreign}')
  if overridden & set(config_check.INPUT_FIELDS):
    drop_foreign_ground_truth(config, load_config_file(path), overridden, path)
  return rest


def parse_or_exit(argv: list[str], *, default_config: str) -> list[str]:
  """`parse` for `app.run`: a mistake prints one `error:` line and exits with status 2."""
  try:
    return parse(argv, default_config=default_config)
  except UsageError as err:
    print(f'error: {err}', file=sys.stderr)
    sys.exit(2)

"""The Python API's config: a task's demo config or the caller's, the call's inputs set, keyword overrides checked.

  config = api_config.make_config('zebra', None, {'image': 'photo.png'}, {'num_steps': 300})

Overrides are dotted field names (`{'segmentation.hint_steps': 500}`) or nested
dicts (`{'segmentation': {'hint_steps': 500}}`), checked as the command line's
`--config.<field>=` (`cli.unknown_field`); numpy values become Python ones.
"""

from collections.abc import Mapping
import os
import sys
from typing import Any

import ml_collections
import numpy as np

from ddip_jax import cli
from ddip_jax import config_check

ConfigError = config_check.ConfigError
# The config files (configs/*.py) live beside the package, in the repository.
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def flat_overrides(overrides: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
  """{'a': {'b': 1}, 'c.d': 2} -> {'a.b': 1, 'c.d': 2}."""
  flat = {}
  for name, value in overrides.items():
    if isinstance(value, Mapping):
      flat.update(flat_overrides(value, f'{prefix}{name}.'))
    else:
      flat[f'{prefix}{name}'] = value
  return flat


def _set_field(config: ml_collections.ConfigDict, field: str, value: Any) -> None:
  """Sets dotted `field` of `config`, as `--config.<field>=<value>` would.

  Raises:
    ConfigError: no such field, or a value of the wrong type.
  """
  unknown = cli.unknown_field(['', f'--{cli.CONFIG_FLAG}.{field}=x'], config)
  if unknown or isinstance(config_check.get_field(config, field), ml_collections.ConfigDict):
    raise ConfigError(unknown or f'{field} is a config section: give its fields (e.g. as a dict)')
  section, _, leaf = field.rpartition('.')
  parent = config_check.get_field(config, section) if section else config
  value = _plain(value)
  if isinstance(value, bool) and parent.get_type(leaf) in (int, float):  # bool is an int to Python, not to us.
    raise ConfigError(f'config.{field} = {value!r}: expected a number, not a bool')
  try:
    parent[leaf] = value
  except (TypeError, ValueError) as err:
    raise ConfigError(f'config.{field} = {value!r}: {err}') from err


def _plain(value: Any) -> Any:
  """numpy scalars as Python numbers, lists and arrays as tuples of them, as the command line gives values."""
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, (list, np.ndarray)):
    return tuple(_plain(v) for v in value)
  return value


def make_config(
    demo: str, config: ml_collections.ConfigDict | str | None, inputs: Mapping[str, Any], overrides: Mapping[str, Any]
) -> ml_collections.ConfigDict:
  """The config of an API call: `config` (default: configs/<demo>.py), the inputs set, then `overrides`.

  Args:
    demo: the config file the task's function uses by default, e.g. 'zebra'.
    config: None, a config file ('file.py' or 'file.py:argument') or a ConfigDict (copied).
    inputs: dotted field -> value for the call's inputs (e.g. {'image': path}).
    overrides: dotted fields or nested dicts, as `--config.<field>=` on the command line.

  Returns:
    The config, with the ground truths of the original input unset unless
    `overrides` give them (`cli.drop_foreign_ground_truth`).

  Raises:
    ConfigError: an override names no field or has a bad type, or the file does not load.
  """
  if not (config is None or isinstance(config, (str, os.PathLike, ml_collections.ConfigDict))):
    raise ConfigError(f'config={config!r}: expected a config file (path) or an ml_collections.ConfigDict')
  if config is None or isinstance(config, (str, os.PathLike)):
    path = os.fspath(config) if config is not None else os.path.join(REPOSITORY, 'configs', f'{demo}.py')
    if REPOSITORY not in sys.path:
      sys.path.append(REPOSITORY)  # The config files import `configs.default`.
    try:
      file_config = cli.load_config_file(path)
    except cli.UsageError as err:
      raise ConfigError(str(err)) from err
  else:
    path, file_config = '<config>', config
  result = ml_collections.ConfigDict(file_config.to_dict())
  flat = flat_overrides(overrides)
  for field, value in {**inputs, **flat}.items():
    _set_field(result, field, value)
  foreign = config_check.foreign_field(result, set(flat))
  if foreign:
    raise ConfigError(foreign)
  cli.unset_empty_optionals(result)
  cli.drop_foreign_ground_truth(result, file_config, set(flat), path, warn=False)
  return result

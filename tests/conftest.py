"""pytest setup: command-line runs in the tests keep JAX's compilation cache in a temporary folder.

`main.py` keeps compiled programs in `$XDG_CACHE_HOME/ddip_jax/xla` by default;
pointing XDG_CACHE_HOME (inherited by the tests' subprocesses) at a fresh folder
keeps the user's cache untouched and makes every test session start cold.
"""

import os
import shutil
import tempfile

_CACHE_HOME = tempfile.mkdtemp(prefix='ddip_jax_test_cache_')
os.environ['XDG_CACHE_HOME'] = _CACHE_HOME


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  shutil.rmtree(_CACHE_HOME, ignore_errors=True)

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


# The fast tier (`pytest -m "not slow"`, a few minutes) leaves out these: end-to-end runs of main.py, the
# README's commands, the golden runs, the browser and HTTP tests, multi-process batches. CI runs everything.
_SLOW_FILES = ('readme_test.py', 'golden_test.py', 'main_test.py', 'app_security_test.py', 'batch_test.py')
_SLOW_CLASSES = ('BrowserTest', 'EndToEndTest', 'MovingCameraTest', 'BatchedTest', 'CutoutTest', 'ResumeTest')
_SLOW_TESTS = (
    'test_other_data_of_the_same_shapes_reuses_the_compiled_step',
    'test_chunking_does_not_change_results',
    'test_a_second_restart_reuses_the_compiled_steps',
    'test_batchnorm_uses_batch_statistics',
)


def pytest_collection_modifyitems(config, items):
  del config
  import pytest  # pylint: disable=g-import-not-at-top

  for item in items:
    cls = getattr(item, 'cls', None)
    if (
        item.path.name in _SLOW_FILES
        or (cls is not None and cls.__name__ in _SLOW_CLASSES)
        or item.name.startswith(_SLOW_TESTS)
    ):
      item.add_marker(pytest.mark.slow)

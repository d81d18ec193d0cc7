"""Every error ddip_jax raises for its user: one module, one base class.

`Error` is what the command line prints as one `error:` line (exit 2), what a
batch records for an image before going on, and what the web page shows; its
message is one printable line. The modules that raise these re-export them
under their old names (`image_io.InputError`, `engine.NumericalError`, ...).
"""

from typing import Any


class Error(Exception):
  """An error of ddip_jax's user's making, or of their machine's (bad input, config, disk; NaN/Inf)."""


class InputError(Error, ValueError):
  """A user-supplied file or array cannot be used."""


class ConfigError(Error, ValueError):
  """A config field has an invalid value."""


class UsageError(Error, ValueError):
  """The command line is wrong."""


class CheckpointError(Error, ValueError):
  """A checkpoint file cannot be read or belongs to another run."""


class OutputError(Error, OSError):
  """A result cannot be written (disk full, no permission, ...)."""


class WorkdirBusy(InputError):
  """Another run (process) owns the workdir."""


class Stopped(Error):
  """The optimisation ended before its last step.

  Attributes:
    result: an `engine.Result` with the best outputs so far (`best` is empty
      when there are none yet) and the metrics of the stages run, the last one partial.
    partial: what a task finished from `result` (`resume.solve`), None when nothing.
  """

  result: Any
  partial: Any = None


class NumericalError(Stopped, RuntimeError):
  """The loss or the parameters became NaN or infinite."""


class Interrupted(Stopped):
  """A stop was requested (Ctrl-C, SIGTERM); the state was checkpointed first.

  Attributes:
    reason: what `stop` returned, e.g. 'SIGTERM'.
  """

  def __init__(self, message: str, reason: str):
    super().__init__(message)
    self.reason = reason


class Terminated(BaseException):
  """SIGTERM arrived outside an optimisation (`resume.terminating`): what KeyboardInterrupt is to Ctrl-C."""

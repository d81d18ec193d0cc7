"""What an optimisation tells those who listen: one event type, one list of hooks.

`engine.optimize` sends an `Event` to its hooks at each stage's start, after
every compiled call of steps, at every check point and at each stage's end.
The progress bar, a caller's progress function (`ddip_jax.segment(progress=...)`),
the web page's progress and previews, Ctrl-C / SIGTERM (`resume.stop_on_signals`)
and a test's record of the losses are all hooks. A hook returns None, or a
reason (a string) after a 'step' event to stop the run cleanly: the engine
saves its checkpoint, keeps the best result so far and raises `Interrupted`.

Hooks reach a run two ways: the caller of `engine.optimize` passes them, and a
front end that does not call the engine itself (the web page runs what
`main.py` runs) wraps its call in `listening(...)`: every optimisation in that
block, in this thread, sends its events to those hooks too. `part(...)` names
the optimisation the events belong to ('restart 2', 'pass 1', 'window 3'), so
that a listener can tell one optimisation of a run from the next.
"""

from collections.abc import Callable, Iterator, Sequence
import contextlib
import contextvars
import dataclasses
from typing import Any

# The kinds of event, in the order a stage sends them: 'start' once (the state before its first step, or a
# resumed one), 'step' after every compiled call, 'check' at every check point (after the NaN/Inf check: every
# `LoopOptions.check_every` steps and at the stage's last step), 'end' once (also when the stage stops early).
KINDS = ('start', 'step', 'check', 'end')


@dataclasses.dataclass(frozen=True)
class Event:
  """One moment of an optimisation.

  Attributes:
    kind: one of `KINDS`.
    part: which optimisation of the run ('' for the only one; `part`).
    stage: the stage's name.
    stage_index: its index among the problem's stages.
    num_stages: how many stages the problem has.
    done: the stage's steps done.
    total: the stage's steps.
    state: the `engine.TrainState` (its buffers are donated to the next
      compiled call: copy what you keep).
  """

  kind: str
  part: str
  stage: str
  stage_index: int
  num_stages: int
  done: int
  total: int
  state: Any


Hook = Callable[[Event], str | None]

_LISTENING: contextvars.ContextVar[tuple[Hook, ...]] = contextvars.ContextVar('ddip_jax_hooks', default=())
_PART: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar('ddip_jax_part', default=())


@contextlib.contextmanager
def listening(*hooks: Hook) -> Iterator[None]:
  """Sends the events of every optimisation run in this block, in this thread, to `hooks` too.

  A new thread starts with none (a server's worker observes its own runs only).
  """
  token = _LISTENING.set(_LISTENING.get() + tuple(hooks))
  try:
    yield
  finally:
    _LISTENING.reset(token)


@contextlib.contextmanager
def part(name: str) -> Iterator[None]:
  """Names the optimisations run in this block (nested blocks join their names: 'restart 2 / pass 1')."""
  token = _PART.set(_PART.get() + (name,))
  try:
    yield
  finally:
    _PART.reset(token)


def current_part() -> str:
  """The name of the optimisation this thread runs now ('' outside `part` blocks)."""
  return ' / '.join(_PART.get())


def active(hooks: Sequence[Hook] = ()) -> tuple[Hook, ...]:
  """`hooks`, then those of the `listening` blocks this thread is in."""
  return tuple(hooks) + _LISTENING.get()


def send(hooks: Sequence[Hook], event: Event) -> str | None:
  """Gives `event` to every hook (all of them, in order); returns the first reason to stop, if any."""
  reasons = [hook(event) for hook in hooks]
  return next((r for r in reasons if r), None)


def stopping_when(stop: Callable[[], str | None]) -> Hook:
  """A hook that asks `stop()` after every compiled call (e.g. a signal's or a stop button's flag)."""

  def hook(event: Event) -> str | None:
    return stop() if event.kind == 'step' else None

  return hook


def at_checks(on_check: Callable[[str, Any], None]) -> Hook:
  """A hook that calls `on_check(stage name, state)` at every check point."""

  def hook(event: Event) -> None:
    if event.kind == 'check':
      on_check(event.stage, event.state)

  return hook

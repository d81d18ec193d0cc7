"""An interactive cut-out: strokes in, a mask back in seconds; each correction continues the last result.

  cut = ddip_jax.Cutout(photo)                     # (H, W, 3) array; nothing runs yet
  result = cut.add(fg=inside, bg=outside)          # the first result: the strokes' schedule (200 + 200 steps)
  cut.preview(fg=click)                            # the mask hint growth alone gives (a fraction of a second)
  result = cut.add(fg=click)                       # a correction: `correction_steps` more steps
  result.mask, result.alpha, result.cutout         # binary mask, soft-edged alpha, RGBA cut-out

Everything stays in memory: the photo is read once, the generators' parameters
and Adam's moments are carried from one call to the next, and a correction's
step is the program the first result compiled (new hints are data, not code:
`engine.optimize(start=...)`), so it runs without compiling. Each call grows all
strokes so far into dense hints (`grow.dense_hints`), as `segment()` grows a
user's hint files, and the decomposition goes on from where it was with them.

A user's strokes are constraints: the core of every stroke ends on its side of
the final mask (a stroke's rim, where a wide brush spills over the object's
edge, is left to the image); a later stroke of the other colour overrides an
earlier one where they cross. Each answer's mask is Double-DIP's snapped to the
photo's colour edges (`grow.snap`: one GrabCut started from it, the cores
fixed; `snap=False` keeps the thresholded mask).
"""

from collections.abc import Callable
import dataclasses
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from scipy import ndimage

from ddip_jax import api
from ddip_jax import array_inputs
from ddip_jax import compile_cache
from ddip_jax import engine
from ddip_jax import fgbg
from ddip_jax import filters
from ddip_jax import grow
from ddip_jax import hints as hints_lib
from ddip_jax import image_io
from ddip_jax import models
from ddip_jax import resume
from ddip_jax import steps
from ddip_jax.tasks import segmentation

# A stroke's core: its pixels at least this fraction of the stroke's half-width inside it.
CORE_FRACTION = 0.5


@dataclasses.dataclass(frozen=True)
class CutoutResult:
  """One answer of a `Cutout`, at the photo's size.

  Attributes:
    mask: (H, W) float32 in {0, 1}: the object; what `cutout` keeps and a download holds.
    alpha: (H, W) float32 in [0, 1]: `mask` with a soft edge (the refined soft
      mask within `Cutout.edge` of the mask's boundary); strokes' cores stay 0 / 1.
    soft_mask: (H, W) the refined soft mask Double-DIP drew.
    fg, bg: (H, W, 3) the two layers.
    steps: optimisation steps this answer ran.
    seconds: its wall time.
  """

  mask: np.ndarray
  alpha: np.ndarray
  soft_mask: np.ndarray
  fg: np.ndarray
  bg: np.ndarray
  steps: int
  seconds: float
  photo: np.ndarray = dataclasses.field(repr=False, default=None)

  @property
  def cutout(self) -> np.ndarray:
    """(H, W, 4) uint8 RGBA: the photo with `alpha` as its transparency."""
    return np.concatenate([image_io.to_uint8(self.photo), image_io.to_uint8(self.alpha)[..., None]], -1)


def stroke_core(stroke: np.ndarray) -> np.ndarray:
  """The core of each painted region: pixels at least CORE_FRACTION of its half-width from its rim.

  A dab or a thin stroke is all core (a pixel or two wide); a wide brush's rim,
  which may spill over the object's edge, is not.

  Args:
    stroke: (H, W) bool.

  Returns:
    (H, W) bool, inside `stroke`, non-empty in every region of it.
  """
  if not stroke.any():
    return stroke.copy()
  depth = ndimage.distance_transform_edt(stroke)
  labels, count = ndimage.label(stroke)
  deepest = ndimage.maximum(depth, labels, np.arange(1, count + 1))
  needed = np.concatenate([[np.inf], np.maximum(1.0, CORE_FRACTION * np.asarray(deepest))])
  return stroke & (depth >= np.minimum(needed[labels], depth.max()))


def shrink_strokes(stroke: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  """A bool (H, W) stroke map at `shape`: nearest neighbour when enlarged (a page's smaller canvas); when shrunk,
  a pixel is marked where the resized stroke covers more than 2% of it (thin strokes survive).

  Not the hint files' shrinking rule (`image_io.resize_mask`: any pixel of the block): with it, 2 of the 24
  photos of data/segbench lost most of their first result (docs/segmentation.md)."""
  stroke = np.asarray(stroke) > 0.5
  if stroke.shape == tuple(shape):
    return stroke
  if stroke.shape[0] > shape[0] or stroke.shape[1] > shape[1]:
    return image_io.resize_image(stroke.astype(np.float32), shape) > 0.02
  return image_io.resize_mask(stroke, shape) > 0.5


class Cutout:
  """An interactive cut-out of one photo (module docstring).

  Attributes:
    config: the config (`configs/default.py` with the overrides given).
    photo: (H, W, 3) float32, the photo at full size.
    image: its working-resolution copy (`max_side`).
    correction_steps: steps a correction runs.
    edge: the soft edge's half-width in pixels of the photo.
    result: the last `CutoutResult` (None before the first `add`).
  """

  def __init__(
      self,
      image: array_inputs.ImageLike,
      *,
      config: ml_collections.ConfigDict | str | None = None,
      correction_steps: int = 60,
      snap: bool = True,
      progress: bool = False,
      **overrides: Any,
  ):
    """Takes the photo and the config; compiles and runs nothing yet.

    Args:
      image: (H, W, 3) uint8 or float in [0, 1] (gray and RGBA as `segment` takes them), or a path.
      config: a config file or ConfigDict (default: configs/default.py, a user's photo's).
      correction_steps: optimisation steps of each correction (`add` after the first).
      snap: snap each answer's mask to the photo's colour edges (`grow.snap`: one GrabCut from Double-DIP's
        mask, the strokes' cores fixed); False: Double-DIP's thresholded mask as it is.
      progress: show a progress bar.
      **overrides: config fields, as `segment`'s (e.g. seed=1, max_side=256).

    Raises:
      InputError, ConfigError: as `segment`.
    """
    if image is None:
      raise image_io.InputError('image is None: expected an (H, W, 3) array or a path')
    if isinstance(image, np.ndarray):
      photo = array_inputs.as_float_image(image, 'image', channels=True)
    else:
      photo = image_io.load_image(image)
    self.config = api.make_config('default', config, {}, overrides)
    if self.config.task != 'segmentation':
      raise api.ConfigError(f'config.task = {self.config.task!r}: a cut-out is a segmentation')
    segmentation.validate(self.config)
    if int(correction_steps) < 1 or isinstance(correction_steps, bool):
      raise api.ConfigError(f'correction_steps = {correction_steps!r}: must be at least 1')
    self.photo = photo
    self.image, _ = image_io.working_image(
        photo, self.config.max_side, path='the photo', min_side=2 ** len(self.config.generator.channels_down)
    )
    self.correction_steps = int(correction_steps)
    self.snap = bool(snap)
    self.edge = max(1, round(0.005 * max(photo.shape[:2])))
    self.result: CutoutResult | None = None
    shape = self.image.shape[:2]
    self._fg, self._bg = np.zeros(shape, bool), np.zeros(shape, bool)  # The strokes so far, working size.
    self._fg_core, self._bg_core = np.zeros(photo.shape[:2], bool), np.zeros(photo.shape[:2], bool)
    self._noise_key, self._train_key = jax.random.split(jax.random.key(self.config.seed))
    self._state: engine.TrainState | None = None
    self._problem: engine.Problem | None = None  # The first result's.
    self._calls = 0
    self._progress = progress

  def compile_ahead(self) -> threading.Thread:
    """Starts compiling the first result's step for this photo on a background thread, and returns the thread.

    A page calls it when the photo loads: XLA compiles while the user paints
    (the compile is most of a cold first result on a CPU), and `add` finds the
    program compiled (`compile_cache`: the same program on other hints). It
    assumes painted strokes (their learning rate); automatic hints compile anew.
    """
    config = segmentation.with_schedule(self.config, user_hints=True)
    shape = self.image.shape[:2]
    options = self._options(config)
    strategy, per_call = steps.resolve_strategy(options)

    def build():
      empty = np.zeros(shape, np.float32)
      problem = segmentation.build_problem(config, self.image, empty, empty, self._noise_key)
      params, stats = models.generator_shapes(problem.generators, problem.inputs, jax.random.key(0))
      stage = problem.stages[0]
      state = steps.abstract_state(problem, stage, params, stats, options.num_perturbations)
      key = jax.random.fold_in(self._train_key, 1)
      chunk = steps.stage_chunk(
          stage,
          options.num_perturbations,
          strategy,
          min(per_call, stage.num_steps),
          state,
          key,
          compile_cache.compiler_options(options),
      )
      compile_cache.compile_ahead(chunk, state, key)
      models.init_generators(problem.generators, problem.inputs, jax.random.key(0))

    thread = compile_cache.thread_in_this_context(build, 'ddip_jax-cutout-ahead')
    thread.start()
    return thread

  def _options(self, config: ml_collections.ConfigDict) -> engine.LoopOptions:
    return dataclasses.replace(resume.loop_options(config), progress=self._progress)

  def _merged(self, fg, bg, replace: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The strokes so far with `fg`, `bg` (full size, any may be None) added (`replace`: instead of them):
    working fg, bg, full-size cores."""
    full = self.photo.shape[:2]
    strokes = []
    for stroke in (fg, bg):
      stroke = (
          np.zeros(full, bool)
          if stroke is None
          else array_inputs.as_float_image(stroke, 'stroke', channels=False) > 0.5
      )
      if stroke.shape != full:
        raise image_io.InputError(f"a stroke map of shape {stroke.shape} on a photo of {full}: give the photo's (H, W)")
      strokes.append(stroke)
    fg, bg = strokes
    shape = self.image.shape[:2]
    fg_work, bg_work = shrink_strokes(fg, shape), shrink_strokes(bg, shape)
    fg_core, bg_core = stroke_core(fg), stroke_core(bg)
    if replace:
      return fg_work & ~bg_work, bg_work & ~fg_work, fg_core & ~bg, bg_core & ~fg
    return (
        (self._fg & ~bg_work) | fg_work,
        (self._bg & ~fg_work) | bg_work,
        (self._fg_core & ~bg) | fg_core,
        (self._bg_core & ~fg) | bg_core,
    )

  def _hints(self, fg: np.ndarray, bg: np.ndarray):
    """(fg_hint, bg_hint, enforced, grown mask) from the working-size strokes, as `segment` grows hint files; once
    there is a result, grown from it (`grow.dense_hints`'s `start`): a correction changes the mask near the click."""
    seg = self.config.segmentation
    user = {name: hint.astype(np.float32) for name, hint in (('fg_hint', fg), ('bg_hint', bg)) if hint.any()}
    fg_hint, bg_hint, _ = hints_lib.complete_hints(
        self.image, user, {n: {'source': 'the strokes'} for n in user}, method=seg.auto_hints
    )
    start = None
    if self.result is not None:
      start = grow.corrected_start(
          self.image,
          image_io.resize_image(self.result.mask, self.image.shape[:2]) > 0.5,
          new_fg=fg & ~self._fg,
          new_bg=bg & ~self._bg,
          fg=fg,
          bg=bg,
      )
    fg_hint, bg_hint, enforced, _, grown = segmentation.grown_hints(
        self.image, fg_hint, bg_hint, seg, user_fg='fg_hint' in user, user_bg='bg_hint' in user, start=start
    )
    return fg_hint, bg_hint, enforced, grown

  def preview(self, fg: np.ndarray | None = None, bg: np.ndarray | None = None, *, replace: bool = False) -> np.ndarray:
    """The mask hint growth alone gives with these strokes added (`replace`: with these strokes only); nothing is
    kept: (H, W) bool, in a fraction of a second."""
    fg_work, bg_work, fg_core, bg_core = self._merged(fg, bg, replace)
    if not (fg_work.any() or bg_work.any()):
      return np.zeros(self.photo.shape[:2], bool)
    grown = self._hints(fg_work, bg_work)[3]
    mask = image_io.resize_image(grown.astype(np.float32), self.photo.shape[:2]) > 0.5
    return (mask | fg_core) & ~bg_core

  def add(
      self,
      fg: np.ndarray | None = None,
      bg: np.ndarray | None = None,
      *,
      replace: bool = False,
      stop: Callable[[], str | None] | None = None,
  ) -> CutoutResult:
    """Adds strokes and returns the refined cut-out: the first call runs the strokes' schedule, later ones
    continue it for `correction_steps` steps.

    Args:
      fg, bg: (H, W) bool or [0, 1] maps of the photo's size: the pixels painted
        as object (fg) and as background (bg) in this call; None: none. With no
        stroke at all, the first call's hints are automatic, as `segment`'s.
      replace: the strokes are now `fg` and `bg` only (e.g. a page whose editor
        holds all strokes, some undone), not these added to the earlier ones.
      stop: polled after every step; a reason (a string) stops the optimisation
        early and keeps its best result so far (`engine.Interrupted` is not raised).

    Raises:
      InputError: a stroke map of another shape.
      NumericalError: the optimisation diverged (the previous result stays).
    """
    start = time.perf_counter()
    fg_work, bg_work, fg_core, bg_core = self._merged(fg, bg, replace)
    user = fg_work.any() or bg_work.any()
    fg_hint, bg_hint, enforced, _ = self._hints(fg_work, bg_work)
    config = segmentation.with_schedule(self.config, user_hints=bool(user))
    key = jax.random.fold_in(self._train_key, self._calls)
    if self._state is None:
      problem = segmentation.build_problem(config, self.image, fg_hint, bg_hint, self._noise_key)
    else:  # A correction: the first result's step 2 (its compiled program) on the new hints, for a few steps.
      fg_data, bg_data = (jnp.asarray(h, jnp.float32)[None, ..., None] for h in (fg_hint, bg_hint))
      stage = fgbg.correction_stage(self._problem.stages[-1], fg_data, bg_data, self.correction_steps)
      problem = dataclasses.replace(
          self._problem, stages=[dataclasses.replace(stage, learning_rate=config.learning_rate)]
      )
    options = self._options(config)
    try:
      result = engine.optimize(problem, key=key, options=options, stop=stop, start=self._state)
    except engine.Interrupted as err:
      result = err.result
    except engine.NumericalError:
      self._state = None  # Its buffers went to the failed run: the next call starts afresh.
      raise
    if not result.best:  # Stopped before any step: nothing new.
      self._state = result.state
      return self.result
    if self._state is None:
      self._problem = problem  # Its last stage is what corrections continue.
    self._state, self._calls = result.state, self._calls + 1
    self._fg, self._bg, self._fg_core, self._bg_core = fg_work, bg_work, fg_core, bg_core
    self.result = self._answer(
        result,
        fg_hint,
        enforced,
        steps=sum(s['steps'] for s in result.metrics['stages'].values()),
        seconds=time.perf_counter() - start,
    )
    return self.result

  def _answer(
      self, result: engine.Result, fg_hint: np.ndarray, enforced, *, steps: int, seconds: float
  ) -> CutoutResult:
    best = {name: np.asarray(value)[0] for name, value in result.best.items()}
    images = fgbg.full_size_layers(self.photo, best, fg_hint, self.config.segmentation, enforced)
    mask = (images['mask_binary'] > 0.5) | self._fg_core
    mask &= ~self._bg_core
    if self.snap:
      mask = grow.snap(self.photo, mask, self._fg_core, self._bg_core)
    # The soft edge: the refined soft mask in a band along the mask's boundary.
    band = filters.box_mean(mask.astype(np.float32), self.edge)
    near_edge = (band > 0.0) & (band < 1.0)
    # On the mask's side at least 0.5 and below it off it: the alpha thresholded is the mask (a snapped edge may
    # run beside Double-DIP's).
    soft = np.where(mask, np.maximum(images['mask'], 0.5), np.minimum(images['mask'], 0.49))
    alpha = np.where(near_edge, soft, mask).astype(np.float32)
    alpha[self._fg_core], alpha[self._bg_core] = 1.0, 0.0
    return CutoutResult(
        mask=mask.astype(np.float32),
        alpha=alpha,
        soft_mask=images['mask'],
        fg=images['fg'],
        bg=images['bg'],
        steps=steps,
        seconds=round(seconds, 3),
        photo=self.photo,
    )

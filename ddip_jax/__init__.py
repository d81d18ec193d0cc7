"""ddip_jax: Double-DIP (unsupervised image decomposition via coupled deep image priors) in JAX.

The Python API (`ddip_jax/api.py`): `segment`, `separate`, `dehaze`, `remove_watermark`,
`decompose_video`, each returning numpy layers and metrics; their errors `InputError`, `ConfigError`
(bad input or config), `NumericalError` and `Interrupted` (a run stopped early). `Cutout`
(`ddip_jax/cutout.py`): an interactive cut-out whose corrections continue the last result in memory.
`hooks` (`ddip_jax/hooks.py`): `hooks.listening(hook)` hears every event of the runs in its block.
"""

from ddip_jax.api import ConfigError
from ddip_jax.api import decompose_video
from ddip_jax.api import dehaze
from ddip_jax.api import Dehazing
from ddip_jax.api import InputError
from ddip_jax.api import Interrupted
from ddip_jax.api import NumericalError
from ddip_jax.api import remove_watermark
from ddip_jax.api import segment
from ddip_jax.api import Segmentation
from ddip_jax.api import separate
from ddip_jax.api import Separation
from ddip_jax.api import VideoDecomposition
from ddip_jax.api import WatermarkRemoval
from ddip_jax.cutout import Cutout
from ddip_jax.cutout import CutoutResult
from ddip_jax import hooks  # pylint: disable=g-bad-import-order  # The module itself, for `hooks.listening`.

__version__ = '0.1.0'

"""Double-DIP applications. Each task module exposes `run(config, workdir) -> metrics` and may expose
`validate(config)`, raising `config_check.ConfigError` for its own fields."""

from ddip_jax.tasks import dehaze
from ddip_jax.tasks import segmentation
from ddip_jax.tasks import transparency
from ddip_jax.tasks import video
from ddip_jax.tasks import watermark

TASKS = {
    'dehaze': dehaze,
    'segmentation': segmentation,
    'transparency': transparency,
    'video': video,
    'watermark': watermark,
}

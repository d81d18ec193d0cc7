r"""Runs a Double-DIP task from a config file: `ddip_jax/command.py` (also the `ddip-jax` command).

python main.py --config=configs/zebra.py [--config.num_steps=500] [--workdir=DIR]
python main.py --config=configs/zebra.py --config.inputs='photos/*.jpg' --workdir=DIR  # Many images.
"""

from ddip_jax import command

if __name__ == '__main__':
  command.run()

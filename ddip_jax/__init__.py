"""ddip_jax: Double-DIP (unsupervised image decomposition via coupled deep image priors) in JAX."""

__version__ = '0.1.0'

"""fer: facial-expression recognition with small CNNs in JAX/Flax."""

__version__ = "0.1.0"

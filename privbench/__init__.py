"""privbench: benchmark model-inversion attacks and defenses for collaborative (split) inference."""

__version__ = "0.1.0"

"""Task models that privbench can split: built-in CNNs, torchvision classifiers and detectors, user modules."""

from privbench.models import builtin_cnn, custom, detection, torchvision_models  # noqa: F401  (registrations)
from privbench.models.base import ModelSpec  # noqa: F401

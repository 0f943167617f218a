"""Task models that privbench can split: built-in CNNs, torchvision classifiers and user modules."""

from privbench.models import builtin_cnn, custom, torchvision_models  # noqa: F401  (registrations)
from privbench.models.base import ModelSpec  # noqa: F401

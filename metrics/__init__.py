"""Metrics: privacy (what a reconstruction reveals), utility (the task), rate. One module per family."""

from privbench.errors import MetricUnavailable  # noqa: F401
from privbench.metrics import (  # noqa: F401  (registrations)  # noqa: F401, I001
    attack_accuracy,
    attributes,
    detection,
    identity,
    image_quality,
    perceptual,
    plates,
    utility,
)
from privbench.metrics.base import Metric, MetricContext, PrivacyInputs, Score  # noqa: F401

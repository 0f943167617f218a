"""Metrics: privacy (what a reconstruction reveals), utility (the task), rate. One module per family."""

from privbench.metrics import image_quality, utility  # noqa: F401  (registrations)
from privbench.metrics.base import Metric, MetricContext, MetricUnavailable, PrivacyInputs, Score  # noqa: F401

"""Datasets: synthetic (generated, cached) and real ones loaded from local paths."""

import privbench.data.coco  # noqa: F401  (registrations)
import privbench.data.real  # noqa: F401  (registrations)
from privbench.data import synthetic  # noqa: F401  (registrations)
from privbench.data.base import Dataset, ImageSet, concat  # noqa: F401

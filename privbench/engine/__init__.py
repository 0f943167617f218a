"""The engine: a run as a graph of artifacts (DESIGN §9); see :mod:`privbench.engine.graph`."""

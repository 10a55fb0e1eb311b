"""Anomalous sound detection (DCASE Task 2) with PyTorch Lightning and Hydra."""

from asd import resolvers  # noqa: F401  (registers the configs' resolvers)

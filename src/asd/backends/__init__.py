"""Scoring back-ends: turn per-clip representations from any frontend into anomaly scores.

A frontend gives each clip a matrix of row vectors (AE reconstruction errors per frame, or
one embedding row); a back-end is fitted on the normal training clips, one state per
section, and scores test clips. Any frontend can meet any back-end.
"""

from asd.backends.base import BackendConfigError, ScoringBackend, build_backend, cross_fitted_scores
from asd.backends.classifier import ClassifierScoreBackend
from asd.backends.fusion import FusionBackend
from asd.backends.knn import KNNBackend
from asd.backends.lof import LOFBackend
from asd.backends.mahalanobis import MahalanobisBackend
from asd.backends.mse import MSEBackend
from asd.backends.selective_mahalanobis import SelectiveMahalanobisBackend
from asd.backends.standardised_error import StandardisedErrorBackend

__all__ = [
    "BackendConfigError",
    "ScoringBackend",
    "build_backend",
    "cross_fitted_scores",
    "MSEBackend",
    "SelectiveMahalanobisBackend",
    "StandardisedErrorBackend",
    "MahalanobisBackend",
    "KNNBackend",
    "LOFBackend",
    "ClassifierScoreBackend",
    "FusionBackend",
]

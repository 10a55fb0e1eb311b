"""Selective Mahalanobis scoring (DCASE 2023-2025 baseline 'MAHALA' mode).

Per section, one Gaussian per domain is fitted on the training rows (for the AE: per-frame
reconstruction-error vectors). A clip's score is the mean over its rows of the Mahalanobis
distance, taking the smaller of the source and target models, so that the few target
clips get a model of their own instead of looking anomalous under the source one.
Covariances are Ledoit-Wolf shrunk: the target domain has far fewer rows than dimensions.
"""

from __future__ import annotations

import numpy as np
from sklearn.covariance import LedoitWolf

from asd.backends.base import ScoringBackend


class MahalanobisBackend(ScoringBackend):
    def fit_section(self, representations, domains):
        models = []
        for domain in sorted(set(domains)):
            rows = np.concatenate([r for r, d in zip(representations, domains) if d == domain]).astype(np.float64)
            if len(rows) < 2:
                continue  # one row gives no covariance; the other domain's model still scores
            estimate = LedoitWolf().fit(rows)
            models.append((estimate.location_, estimate.precision_))
        if not models:
            raise ValueError("Mahalanobis back-end needs at least two training rows in some domain")
        return models

    def score_clip(self, rows: np.ndarray, state) -> list[float]:
        distances = []
        for mean, precision in state:
            centred = rows - mean
            squared = np.sum((centred @ precision) * centred, axis=1)
            distances.append(float(np.mean(np.sqrt(np.maximum(squared, 0.0)))))
        return distances

"""Selective standardised error: each dimension's error magnitude measured against its own spread.

The MSE score adds up squared errors as they are, so the few mel bands the autoencoder reconstructs
worst (loud, noisy, or changed by the target domain's operating condition) decide every clip's
score, and an anomaly in a band it reconstructs well is drowned. Here, per section and domain, each
dimension of the rows' absolute values (for the AE: each mel band of each stacked frame of the
reconstruction error) gets the mean and standard deviation of the training clips; a clip's score
under a domain is the mean over its rows and dimensions of the squared standardised magnitude, a
diagonal Mahalanobis distance that needs no covariance matrix (the ten target clips give hundreds of
rows, enough for a mean and a spread per dimension, not for a full covariance). The clip's score is
the smaller of the two domains', as in the baseline's selective Mahalanobis, so that a target clip is
measured against the target's own errors.
"""

from __future__ import annotations

import numpy as np

from asd.backends.base import ScoringBackend

#: floor of a dimension's standard deviation: a dimension that never varied in training would divide by zero
MIN_STD = 1e-12


class StandardisedErrorBackend(ScoringBackend):
    def fit_section(self, representations, domains):
        moments = []
        for domain in ("source", "target"):
            chosen = [r for r, d in zip(representations, domains) if d == domain]
            n_rows = sum(len(r) for r in chosen)
            if n_rows < 2:
                continue  # one row gives no spread; the other domain's moments still score
            # two passes clip by clip: a float64 copy of a section's AE error rows would take hundreds of MB
            mean = sum(np.abs(np.asarray(r, dtype=np.float64)).sum(axis=0) for r in chosen) / n_rows
            squares = sum(((np.abs(np.asarray(r, dtype=np.float64)) - mean) ** 2).sum(axis=0) for r in chosen)
            std = np.maximum(np.sqrt(squares / (n_rows - 1)), MIN_STD)
            moments.append((mean, std))
        if not moments:
            raise ValueError("standardised-error back-end needs at least two training rows in some domain")
        return moments

    def score_clip(self, rows: np.ndarray, state) -> list[float]:
        magnitudes = np.abs(rows)
        return [float(np.mean(((magnitudes - mean) / std) ** 2)) for mean, std in state]

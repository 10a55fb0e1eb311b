"""Local outlier factor (scikit-learn's ``LocalOutlierFactor`` in novelty mode), domain-wise.

Per section, one LOF model per domain is fitted on the normal training rows; a row's score is its
local outlier factor (how much sparser its neighbourhood is than its neighbours' own: about 1 for
inliers, larger for outliers) under the domain that finds it least outlying, and a clip's score is
the mean over its rows. Like the density-normalised kNN, it compares a row with the local density
of the bank, so the sparse target bank is not at a disadvantage.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import VALID_METRICS, LocalOutlierFactor

from asd.backends.base import ScoringBackend, checked_choice, checked_integer, min_over_domains


class LOFBackend(ScoringBackend):
    def __init__(self, n_neighbors: int = 20, metric: str = "cosine"):
        super().__init__()
        self.n_neighbors = checked_integer("n_neighbors", n_neighbors)
        self.metric = checked_choice("metric", metric, sorted(VALID_METRICS["brute"]))

    def fit_section(self, representations, domains):
        banks = {}
        for domain in sorted(set(domains)):
            rows = np.concatenate([r for r, d in zip(representations, domains) if d == domain]).astype(np.float64)
            if len(rows) < 2:
                continue  # one row has no neighbourhood; the other domain still scores
            banks[domain] = rows
        if not banks:
            raise ValueError("LOF needs at least two training rows in some domain")
        return banks

    def score_section(self, representations, state) -> tuple[np.ndarray, np.ndarray]:
        # the fitted sklearn objects are rebuilt here from the banks: the saved state stays plain arrays
        queries = np.concatenate(representations).astype(np.float64)
        per_domain = []
        for bank in state.values():
            model = LocalOutlierFactor(
                n_neighbors=min(self.n_neighbors, len(bank) - 1), metric=self.metric, novelty=True
            )
            per_domain.append(-model.fit(bank).score_samples(queries))
        return min_over_domains(per_domain, representations)

    def score_clip(self, rows, state) -> float:
        return float(self.score_section([rows], state)[0][0])

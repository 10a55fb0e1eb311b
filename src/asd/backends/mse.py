"""Mean squared value of the rows: the DCASE AE baseline's score on reconstruction errors."""

from __future__ import annotations

import numpy as np

from asd.backends.base import ScoringBackend


class MSEBackend(ScoringBackend):
    domain_wise = False
    needs_fit = False

    def fit_section(self, representations, domains):
        return None

    def score_clip(self, rows: np.ndarray, state) -> float:
        return float(np.mean(rows**2))

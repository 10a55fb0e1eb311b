"""The classifier's own anomaly score: how unsure the attribute classifier is of the clip's section.

Rows are class logits. Per section, the back-end records which classes the section's training
clips are predicted as (the section's attribute classes); a clip's score is the negative
log-softmax of its most probable class among them, averaged over rows. A normal clip
looks like one of its section's classes; an anomalous one does not.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from asd.backends.base import ScoringBackend


class ClassifierScoreBackend(ScoringBackend):
    domain_wise = False
    needs_logits = True

    def fit_section(self, representations, domains):
        return np.unique(np.concatenate([np.argmax(r, axis=1) for r in representations]))

    def score_clip(self, rows: np.ndarray, state) -> float:
        log_probabilities = log_softmax(rows, axis=1)[:, state]
        return float(np.mean(-np.max(log_probabilities, axis=1)))

"""Decision thresholds fitted on training scores, as the DCASE baselines do."""

from __future__ import annotations

import numpy as np
import scipy.stats


def fit_gamma_threshold(train_scores, percentile: float = 0.9) -> float:
    """The ``percentile`` quantile of a gamma distribution fitted to the training scores.

    Falls back to the empirical quantile where the fit degenerates (constant scores,
    non-finite parameters), so a threshold always exists.
    """
    scores = np.asarray(train_scores, dtype=float)
    if len(scores) >= 3 and np.ptp(scores) > 0:
        with np.errstate(all="ignore"):
            shape, loc, scale = scipy.stats.gamma.fit(scores)
            threshold = scipy.stats.gamma.ppf(percentile, shape, loc=loc, scale=scale)
        if np.isfinite(threshold):
            return float(threshold)
    return float(np.quantile(scores, percentile))

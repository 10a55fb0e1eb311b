"""Decision thresholds fitted on training scores, as the DCASE baselines do."""

from __future__ import annotations

import numpy as np
import scipy.stats

#: Below this Kolmogorov-Smirnov p-value the gamma fit is rejected for the empirical quantile.
GAMMA_FIT_MIN_P_VALUE = 0.01


def fit_gamma_threshold(train_scores, percentile: float = 0.9) -> float:
    """The ``percentile`` quantile of a gamma distribution fitted to the training scores, as the
    DCASE baselines decide.

    Where the gamma does not describe the scores (a Kolmogorov-Smirnov test rejects it, as for the
    two humps of source and target clips under selective Mahalanobis, whose fitted quantile can lie
    far outside the data), or the fit degenerates (constant scores, non-finite parameters), the
    empirical quantile is used instead, so a threshold always exists and lies within the data.
    """
    scores = np.asarray(train_scores, dtype=float)
    if len(scores) >= 3 and np.ptp(scores) > 0:
        with np.errstate(all="ignore"):
            parameters = scipy.stats.gamma.fit(scores)
            threshold = scipy.stats.gamma.ppf(percentile, *parameters)
            fits = scipy.stats.kstest(scores, "gamma", args=parameters).pvalue >= GAMMA_FIT_MIN_P_VALUE
        if fits and np.isfinite(threshold):
            return float(threshold)
    return float(np.quantile(scores, percentile))

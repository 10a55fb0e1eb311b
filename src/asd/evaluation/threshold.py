"""Decision thresholds fitted on training scores, as the DCASE baselines do, and the domain whose
threshold judges a clip that a domain-blind score gives no domain (:class:`NearestDomain`)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np
import scipy.stats

from asd.vocabulary import DOMAINS, indices_by_section

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


def conformal_threshold(scores, percentile: float = 0.9) -> float:
    """The ⌈(n + 1) ``percentile``⌉-th smallest of ``n`` out-of-sample scores (the largest, where that
    rank exceeds ``n``): a new clip whose score is exchangeable with them exceeds it with probability at
    most 1 - ``percentile``, whatever their distribution (split conformal prediction)."""
    ordered = np.sort(np.asarray(scores, dtype=float))
    rank = math.ceil((len(ordered) + 1) * percentile)
    return float(ordered[min(rank, len(ordered)) - 1])


def decision_threshold(scores, percentile: float = 0.9) -> float:
    """A section's threshold for one domain: the gamma fit's ``percentile`` quantile, as the DCASE
    baselines decide, but never below :func:`conformal_threshold`. Fitted to a section's ten target
    clips, the gamma's quantile lies too low so often that new normal clips exceed it ~18 % of the time
    at ``percentile`` 0.9, even where the scores are gamma-distributed; the order statistic (there, the
    largest of the ten) bounds that share. Where clips are many (90 or 990 source clips) the two agree."""
    return max(fit_gamma_threshold(scores, percentile), conformal_threshold(scores, percentile))


def _clip_directions(representations: Sequence[np.ndarray]) -> np.ndarray:
    means = np.stack([np.asarray(rows, dtype=np.float64).mean(axis=0) for rows in representations])
    return means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)


class NearestDomain:
    """Per section, the domain of the training clip nearest to a clip (cosine of the clips' mean
    representation rows): the domain a domain-blind score (MSE, the classifier's own score) is judged as.

    A domain-blind score puts the two domains on one scale, on which new normal target clips often
    score above anomalous source clips (the AE has seen ten target clips against 990 source ones), so
    no one threshold serves both: it flags nearly every normal target clip, or no source clip. The
    domain-wise back-ends know which of their models judged a clip; this gives a domain-blind one the
    same without the clip's domain label (hidden in evaluation data): the nearest training clip's.
    State: per section, the unit mean-row vectors of its source and of its target training clips.
    """

    def __init__(self, state: dict[Hashable, list[np.ndarray]] | None = None):
        self.state = state or {}

    @classmethod
    def fit(
        cls, representations: Sequence[np.ndarray], domains: Sequence[str], sections: Sequence[Hashable]
    ) -> NearestDomain:
        state = {}
        for section, indices in indices_by_section(sections).items():
            directions = _clip_directions([representations[i] for i in indices])
            section_domains = np.asarray([domains[i] for i in indices])
            state[section] = [directions[section_domains == domain] for domain in DOMAINS]
        return cls(state)

    def estimate(self, representations: Sequence[np.ndarray], sections: Sequence[Hashable]) -> np.ndarray:
        """0 (source) or 1 (target) per clip; 0 in a section without target training clips."""
        judged = np.zeros(len(representations), dtype=int)
        if not len(representations):
            return judged
        directions = _clip_directions(representations)
        for i, section in enumerate(sections):
            source, target = self.state.get(section, [np.empty((0, 0))] * 2)
            if len(source) and len(target):
                judged[i] = int((target @ directions[i]).max() > (source @ directions[i]).max())
        return judged

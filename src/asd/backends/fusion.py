"""Score fusion: several back-ends on the same representations, combined after normalisation.

Each member's scores live on its own scale (a mean squared error, a squared Mahalanobis norm, a
cosine distance). Per section, each member's scores are z-normalised by the mean and standard
deviation of its **out-of-sample** training scores (:func:`cross_fitted_scores`: in-sample scores of a
memory bank are zero), then combined: ``mean`` (the usual fusion), ``max`` (anomalous if any member
says so) or ``min`` (the most forgiving member, as "min over back-ends z-normalised on their training
scores" in the back-end comparison of arXiv 2606.19269).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from asd.backends.base import ScoringBackend, checked_choice, cross_fitted_scores

COMBINE = {"mean": np.mean, "max": np.max, "min": np.min}


def z_normaliser(training_scores: np.ndarray) -> tuple[float, float]:
    """(mean, standard deviation) of out-of-sample training scores; a constant score gets 1e-12."""
    return float(np.mean(training_scores)), float(max(np.std(training_scores), 1e-12))


class FusionBackend(ScoringBackend):
    def __init__(self, members: Sequence[ScoringBackend], combine: str = "mean"):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"backend.members: fusion needs at least two back-ends, got {len(members)}")
        self.members = list(members)
        self.combine = checked_choice("combine", combine, sorted(COMBINE))
        self.needs_logits = any(m.needs_logits for m in self.members)
        self.domain_wise = any(m.domain_wise for m in self.members)

    def fit(self, representations, domains, sections) -> None:
        sections_array = np.asarray(sections)
        normalisers: dict[Hashable, list[tuple[float, float]]] = {s: [] for s in dict.fromkeys(sections)}
        for member in self.members:
            member.fit(representations, domains, sections)
            training, _ = cross_fitted_scores(member, representations, domains, sections)
            for section in normalisers:
                normalisers[section].append(z_normaliser(training[sections_array == section]))
        self.states = normalisers

    def score_with_models(self, representations, sections) -> tuple[np.ndarray, np.ndarray]:
        """The combined scores; a clip's model is the one most of the domain-wise members judged it by
        (ties: the lower index, the source domain), 0 where no member is domain-wise."""
        missing = sorted(set(sections) - set(self.states))
        if missing:
            raise KeyError(f"back-end was not fitted on section {missing[0]!r}; fitted: {sorted(self.states)}")
        normalised, votes = [], np.zeros((len(representations), 2), dtype=int)
        for i, member in enumerate(self.members):
            scores, models = member.score_with_models(representations, sections)
            mean = np.array([self.states[s][i][0] for s in sections])
            std = np.array([self.states[s][i][1] for s in sections])
            normalised.append((scores - mean) / std)
            if member.domain_wise:
                np.add.at(votes, (np.arange(len(models)), np.minimum(models, 1)), 1)
        return COMBINE[self.combine](np.stack(normalised), axis=0), votes.argmax(axis=1)

    def get_state(self) -> object:
        return {"normalisers": self.states, "members": [m.get_state() for m in self.members]}

    def set_state(self, state: object) -> None:
        self.states = state["normalisers"]
        for member, member_state in zip(self.members, state["members"]):
            member.set_state(member_state)

    def unfitted_copy(self) -> FusionBackend:
        return FusionBackend([m.unfitted_copy() for m in self.members], self.combine)

    def fit_section(self, representations, domains):  # fit() is overridden: members fit per section
        raise NotImplementedError

    def score_clip(self, rows, state):  # score() is overridden
        raise NotImplementedError

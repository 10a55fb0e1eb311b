"""The back-end interface and its per-section bookkeeping."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Hashable, Sequence

import numpy as np


class ScoringBackend(ABC):
    """Fitted per section on training clips; scores clips (higher = more anomalous).

    ``representations`` are one 2-D array (rows x dims) per clip; ``domains`` and
    ``sections`` give each clip's domain ("source"/"target"/"unknown") and section key
    (machine type and section, e.g. ``"fan/section_00"``, so that a model trained on several
    machine types still gets one back-end state per machine type's section).
    """

    #: Whether ``fit`` learns anything; a back-end without state can score unfitted.
    needs_fit: bool = True
    #: Whether the rows must be class logits (the classifier's own score), not embeddings or errors.
    needs_logits: bool = False

    def __init__(self):
        self.states: dict[Hashable, object] = {}

    def fit(self, representations: Sequence[np.ndarray], domains: Sequence[str], sections: Sequence[Hashable]) -> None:
        grouped: dict[Hashable, list[int]] = defaultdict(list)
        for i, section in enumerate(sections):
            grouped[section].append(i)
        self.states = {
            section: self.fit_section([representations[i] for i in idx], [domains[i] for i in idx])
            for section, idx in grouped.items()
        }

    def score(self, representations: Sequence[np.ndarray], sections: Sequence[Hashable]) -> np.ndarray:
        scores = np.empty(len(representations))
        grouped: dict[Hashable, list[int]] = defaultdict(list)
        for i, section in enumerate(sections):
            grouped[section].append(i)
        for section, idx in grouped.items():
            state = self.states.get(section)
            if state is None and self.needs_fit:
                raise KeyError(f"back-end was not fitted on section {section!r}; fitted: {sorted(self.states)}")
            scores[idx] = self.score_section([np.asarray(representations[i], dtype=np.float64) for i in idx], state)
        return scores

    def get_state(self) -> object:
        """What a saved system keeps of the fitted back-end (plain containers and arrays)."""
        return self.states

    def set_state(self, state: object) -> None:
        self.states = state

    def unfitted_copy(self) -> ScoringBackend:
        """The same settings, no fitted state: fitting it leaves this back-end untouched."""
        fresh = copy.copy(self)
        fresh.states = {}
        return fresh

    def score_section(self, representations: list[np.ndarray], state: object) -> np.ndarray:
        """Scores of one section's clips; back-ends that gain from batching override this."""
        return np.array([self.score_clip(rows, state) for rows in representations])

    @abstractmethod
    def fit_section(self, representations: list[np.ndarray], domains: list[str]) -> object:
        """Return the fitted state of one section."""

    @abstractmethod
    def score_clip(self, rows: np.ndarray, state: object) -> float:
        """Anomaly score of one clip's rows."""


def cross_fitted_scores(
    backend: ScoringBackend,
    representations: Sequence[np.ndarray],
    domains: Sequence[str],
    sections: Sequence[Hashable],
    folds: int = 5,
) -> np.ndarray:
    """Each clip's score from a copy of ``backend`` fitted without it: out-of-sample training scores.

    Clips are dealt to ``folds`` folds in order (clip i to fold i mod folds, per section, so the few
    target clips spread over all folds); each fold is scored by the back-end fitted on the others.
    Decision thresholds fitted on these scores mean what they say on new clips, where in-sample
    scores of a memory bank are zero. A back-end that learns nothing scores every clip as it is.
    """
    if not backend.needs_fit:
        return backend.score(representations, sections)
    fold_of = np.empty(len(representations), dtype=int)
    seen: dict[Hashable, int] = defaultdict(int)
    for i, section in enumerate(sections):
        fold_of[i] = seen[section] % folds
        seen[section] += 1
    too_small = sorted(str(s) for s, n in seen.items() if n < 2)
    if too_small:
        raise ValueError(
            f"out-of-sample training scores need at least 2 training clips per section; {too_small} have 1"
        )
    scores = np.empty(len(representations))
    for fold in range(folds):
        held_out = np.flatnonzero(fold_of == fold)
        if not len(held_out):
            continue
        kept = np.flatnonzero(fold_of != fold)
        fold_backend = backend.unfitted_copy()
        fold_backend.fit([representations[i] for i in kept], [domains[i] for i in kept], [sections[i] for i in kept])
        scores[held_out] = fold_backend.score([representations[i] for i in held_out], [sections[i] for i in held_out])
    return scores

"""The back-end interface and its per-section bookkeeping."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from typing import Sequence

import numpy as np


class ScoringBackend(ABC):
    """Fitted per section on training clips; scores clips (higher = more anomalous).

    ``representations`` are one 2-D array (rows x dims) per clip; ``domains`` and
    ``sections`` give each clip's domain ("source"/"target"/"unknown") and section number.
    """

    #: Whether ``fit`` learns anything; a back-end without state can score unfitted.
    needs_fit: bool = True

    def __init__(self):
        self.states: dict[int, object] = {}

    def fit(self, representations: Sequence[np.ndarray], domains: Sequence[str], sections: Sequence[int]) -> None:
        grouped: dict[int, list[int]] = defaultdict(list)
        for i, section in enumerate(sections):
            grouped[int(section)].append(i)
        self.states = {
            section: self.fit_section([representations[i] for i in idx], [domains[i] for i in idx])
            for section, idx in grouped.items()
        }

    def score(self, representations: Sequence[np.ndarray], sections: Sequence[int]) -> np.ndarray:
        scores = np.empty(len(representations))
        for i, (rows, section) in enumerate(zip(representations, sections)):
            state = self.states.get(int(section))
            if state is None and self.needs_fit:
                raise KeyError(f"back-end was not fitted on section {int(section):02d}; fitted: {sorted(self.states)}")
            scores[i] = self.score_clip(np.asarray(rows, dtype=np.float64), state)
        return scores

    @abstractmethod
    def fit_section(self, representations: list[np.ndarray], domains: list[str]) -> object:
        """Return the fitted state of one section."""

    @abstractmethod
    def score_clip(self, rows: np.ndarray, state: object) -> float:
        """Anomaly score of one clip's rows."""

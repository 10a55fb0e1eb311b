"""The back-end interface and its per-section bookkeeping."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Hashable, Sequence

import hydra
import numpy as np
from hydra.errors import InstantiationException

from asd.vocabulary import indices_by_section, machine_of


class BackendConfigError(ValueError):
    """A back-end parameter out of its range or of the wrong type; the message names the key."""


def checked_integer(key: str, value, minimum: int | None = 1) -> int:
    """``value`` as an int of at least ``minimum`` (None: any int), else an error naming ``backend.<key>``.
    Negative counts are refused here because numpy would take them: a slice to -3 keeps all but three."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise BackendConfigError(f"backend.{key} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise BackendConfigError(f"backend.{key} must be at least {minimum}, got {value!r}")
    return int(value)


def checked_fraction(key: str, value) -> float:
    """``value`` as a float in (0, 1], else an error naming ``backend.<key>``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0.0 < value <= 1.0:
        raise BackendConfigError(f"backend.{key} must be in (0, 1], got {value!r}")
    return float(value)


def checked_flag(key: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise BackendConfigError(f"backend.{key} must be true or false, got {value!r}")
    return bool(value)


def checked_choice(key: str, value, choices: Sequence[str]) -> str:
    if value not in choices:
        raise BackendConfigError(f"backend.{key} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def build_backend(config) -> ScoringBackend:
    """The back-end a config (``_target_`` and parameters) describes; a parameter out of range is a
    :class:`BackendConfigError` naming its key, not Hydra's wrapper around it."""
    try:
        return hydra.utils.instantiate(config)
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, BackendConfigError):
            cause = cause.__cause__
        if cause is not None:
            raise BackendConfigError(str(cause)) from None
        raise


def min_over_domains(row_scores: Sequence[np.ndarray], representations: Sequence[np.ndarray]):
    """(scores, model indices) of clips whose rows were scored under each domain's model
    (``row_scores[m]``: every row's score under model m): a clip's score is the mean over its rows of
    the smallest, its model the one that scores the clip's rows lowest on average."""
    per_model = np.asarray(row_scores)
    bounds = np.cumsum([0] + [len(r) for r in representations])[:-1]
    counts = np.array([len(r) for r in representations])
    scores = np.add.reduceat(per_model.min(axis=0), bounds) / counts
    models = (np.add.reduceat(per_model, bounds, axis=1) / counts).argmin(axis=0)
    return scores, models


class ScoringBackend(ABC):
    """Fitted per section on training clips; scores clips (higher = more anomalous).

    ``representations`` are one 2-D array (rows x dims) per clip; ``domains`` and
    ``sections`` give each clip's domain ("source"/"target"/"unknown") and section key
    (machine type and section, e.g. ``"fan/section_00"``, so that a model trained on several
    machine types still gets one back-end state per machine type's section). With
    ``pool_sections``, one state per machine type over all its sections instead (ASDKit's kNN
    scores so: on DCASE 2020-2022 data, six sections a type, the two differ).
    """

    #: Whether ``fit`` learns anything; a back-end without state can score unfitted.
    needs_fit: bool = True
    #: Whether the rows must be class logits (the classifier's own score), not embeddings or errors.
    needs_logits: bool = False
    #: Whether a section is scored under one model per domain (the smallest score counts).
    domain_wise: bool = True

    def __init__(self, pool_sections: bool = False):
        self.states: dict[Hashable, object] = {}
        self.pool_sections = checked_flag("pool_sections", pool_sections)

    def state_keys(self, sections: Sequence[Hashable]) -> Sequence[Hashable]:
        """What each clip's state is kept by: its section key, or its machine type's (``pool_sections``)."""
        return [machine_of(s) for s in sections] if self.pool_sections else sections

    def fit(self, representations: Sequence[np.ndarray], domains: Sequence[str], sections: Sequence[Hashable]) -> None:
        grouped = indices_by_section(self.state_keys(sections))
        self.states = {
            section: self.fit_section([representations[i] for i in idx], [domains[i] for i in idx])
            for section, idx in grouped.items()
        }

    def score(self, representations: Sequence[np.ndarray], sections: Sequence[Hashable]) -> np.ndarray:
        return self.score_with_models(representations, sections)[0]

    def score_with_models(
        self, representations: Sequence[np.ndarray], sections: Sequence[Hashable]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each clip's score and which of its section's models gave it: a domain-wise back-end scores a
        clip under one model per domain (source first) and keeps the smallest, and the index of that
        model (0 for a back-end with one model) says which domain the clip was judged as: the clip is
        decided by that domain's threshold (asd.models.base.decide), with no test label needed."""
        scores, models = np.empty(len(representations)), np.zeros(len(representations), dtype=int)
        grouped = indices_by_section(self.state_keys(sections))
        for section, idx in grouped.items():
            state = self.states.get(section)
            if state is None and self.needs_fit:
                raise KeyError(f"back-end was not fitted on section {section!r}; fitted: {sorted(self.states)}")
            rows = [np.asarray(representations[i], dtype=np.float64) for i in idx]
            scores[idx], models[idx] = self.score_section(rows, state)
        return scores, models

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

    def score_section(self, representations: list[np.ndarray], state: object) -> tuple[np.ndarray, np.ndarray]:
        """(scores, model indices) of one section's clips (see :meth:`score_with_models`); back-ends
        that gain from batching override this."""
        per_model = np.array([np.atleast_1d(self.score_clip(rows, state)) for rows in representations])
        return per_model.min(axis=1), per_model.argmin(axis=1)

    @abstractmethod
    def fit_section(self, representations: list[np.ndarray], domains: list[str]) -> object:
        """Return the fitted state of one section."""

    @abstractmethod
    def score_clip(self, rows: np.ndarray, state: object) -> float | Sequence[float]:
        """Anomaly score of one clip's rows, or its scores under each of the section's per-domain models
        (the smallest is the clip's score)."""


def cross_fitted_scores(
    backend: ScoringBackend,
    representations: Sequence[np.ndarray],
    domains: Sequence[str],
    sections: Sequence[Hashable],
    folds: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """Each clip's score from a copy of ``backend`` fitted without it: out-of-sample training scores,
    with the index of the model that gave each (:meth:`ScoringBackend.score_with_models`).

    Clips are dealt to ``folds`` folds in order (clip i to fold i mod folds, per section, so the few
    target clips spread over all folds); each fold is scored by the back-end fitted on the others.
    Decision thresholds fitted on these scores mean what they say on new clips, where in-sample
    scores of a memory bank are zero. A back-end that learns nothing scores every clip as it is.
    """
    if not backend.needs_fit:
        return backend.score_with_models(representations, sections)
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
    scores, models = np.empty(len(representations)), np.zeros(len(representations), dtype=int)
    for fold in range(folds):
        held_out = np.flatnonzero(fold_of == fold)
        if not len(held_out):
            continue
        kept = np.flatnonzero(fold_of != fold)
        fold_backend = backend.unfitted_copy()
        fold_backend.fit([representations[i] for i in kept], [domains[i] for i in kept], [sections[i] for i in kept])
        scores[held_out], models[held_out] = fold_backend.score_with_models(
            [representations[i] for i in held_out], [sections[i] for i in held_out]
        )
    return scores, models

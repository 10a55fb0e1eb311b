"""Domain-wise k-nearest-neighbour scoring with cosine distance (the back-end of most top DCASE
2023-2025 systems).

Per section, the normal training rows of the source and of the target domain form separate
memory banks. A row's distance to a bank is the mean cosine distance to its ``k`` nearest
members; a clip's score is the mean over its rows of the smaller of the two distances, so the
few target clips are not drowned by the many source ones.

The ten-odd target clips lie far apart compared with the many source clips, so a normal target
clip is farther from its bank than a source anomaly from its own: raw distances favour the
source domain. ``density_normalise`` divides each bank's distances by the bank's own typical
nearest-neighbour distance (each member to its nearest other member, averaged), which puts
the two domains on one scale. Options from the literature: SMOTE oversampling of the small
target bank (imbalanced-learn) and k-means condensation of the large source bank.
"""

from __future__ import annotations

import numpy as np

from asd.backends.base import ScoringBackend


def normalise(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)  # float32 cosines near 1 lose the small distances that matter
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def mean_knn_cosine_distance(queries: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    """Mean cosine distance of each (normalised) query row to its ``k`` nearest bank rows."""
    k = min(k, len(bank))
    distances = 1.0 - queries @ bank.T
    nearest = np.partition(distances, k - 1, axis=1)[:, :k] if k < len(bank) else distances
    return nearest.mean(axis=1)


class KNNBackend(ScoringBackend):
    def __init__(
        self,
        k_source: int = 1,
        k_target: int = 1,
        smote_target: bool = False,
        smote_neighbors: int = 2,
        source_kmeans: int | None = None,
        density_normalise: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        self.k = {"source": k_source, "target": k_target}
        self.smote_target = smote_target
        self.smote_neighbors = smote_neighbors
        self.source_kmeans = source_kmeans
        self.density_normalise = density_normalise
        self.seed = seed

    def fit_section(self, representations, domains):
        banks = {}
        for domain in sorted(set(domains)):
            banks[domain] = normalise(np.concatenate([r for r, d in zip(representations, domains) if d == domain]))
        if self.source_kmeans and "source" in banks and len(banks["source"]) > self.source_kmeans:
            from sklearn.cluster import KMeans

            kmeans = KMeans(self.source_kmeans, n_init=4, random_state=self.seed).fit(banks["source"])
            banks["source"] = normalise(kmeans.cluster_centers_)
        if self.smote_target and {"source", "target"} <= banks.keys():
            banks["target"] = self._oversample(banks["source"], banks["target"])
        return {domain: (bank, self._typical_distance(bank, self.k.get(domain, 1))) for domain, bank in banks.items()}

    def _typical_distance(self, bank: np.ndarray, k: int) -> float:
        """Mean distance of each member to its k nearest other members (1.0 when not normalising)."""
        if not self.density_normalise or len(bank) < 2:
            return 1.0
        distances = 1.0 - bank @ bank.T
        np.fill_diagonal(distances, np.inf)
        k = min(k, len(bank) - 1)
        typical = float(np.mean(np.partition(distances, k - 1, axis=1)[:, :k]))
        return max(typical, 1e-6)

    def _oversample(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        from imblearn.over_sampling import SMOTE

        if len(target) <= self.smote_neighbors:
            return target
        rows = np.concatenate([source, target])
        labels = np.r_[np.zeros(len(source)), np.ones(len(target))]
        smote = SMOTE(k_neighbors=self.smote_neighbors, random_state=self.seed)
        resampled, resampled_labels = smote.fit_resample(rows, labels)
        return normalise(resampled[resampled_labels == 1])

    def score_section(self, representations: list[np.ndarray], state) -> np.ndarray:
        # every row of every clip against each bank in one matrix product, then back to clips
        queries = normalise(np.concatenate(representations))
        per_domain = [
            mean_knn_cosine_distance(queries, bank, self.k.get(domain, 1)) / scale
            for domain, (bank, scale) in state.items()
        ]
        row_scores = np.min(per_domain, axis=0)
        bounds = np.cumsum([0] + [len(r) for r in representations])
        return np.array([row_scores[a:b].mean() for a, b in zip(bounds[:-1], bounds[1:])])

    def score_clip(self, rows: np.ndarray, state) -> float:
        return float(self.score_section([rows], state)[0])

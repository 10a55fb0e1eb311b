"""Domain-wise k-nearest-neighbour scoring with cosine distance (the back-end of most top DCASE
2023-2025 systems).

Per section (or per machine type over all its sections, ``pool_sections``, as ASDKit), the normal
training rows of the source and of the target domain form separate memory banks. A row's distance
to a bank is the mean cosine distance to its ``k`` nearest members; a clip's score is the mean over
its rows of the smaller of the two distances, so the few target clips are not drowned by the many
source ones.

The ten-odd target clips lie far apart compared with the many source clips, so a normal target
clip is farther from its bank than a source anomaly from its own: raw distances favour the
source domain. ``density_normalise`` puts the domains on one scale:

* ``"bank"``: each bank's distances are divided by the bank's typical nearest-neighbour distance
  (each member to its k nearest other members, averaged over the bank);
* ``"member"``: the distance to each member is divided by that member's own distance to its k
  nearest other members (local density normalisation per reference, after Wilkinghoff et al.), so
  members in sparse regions of a bank reach as far as those in dense ones; needs no domain labels;
* ``"none"``: raw cosine distances.

Options from the literature: SMOTE oversampling of the small target bank (imbalanced-learn; to
``smote_ratio`` times the source bank's size, ASDKit uses 0.2) and k-means condensation of the large
source bank.
"""

from __future__ import annotations

import numpy as np

from asd.backends.base import (
    ScoringBackend,
    checked_choice,
    checked_flag,
    checked_fraction,
    checked_integer,
    min_over_domains,
)


def normalise(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)  # float32 cosines near 1 lose the small distances that matter
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def mean_of_k_smallest(distances: np.ndarray, k: int) -> np.ndarray:
    """Per row, the mean of its ``k`` smallest entries (``k`` at most the row's length); k = 1, the
    usual setting, is the row's minimum, taken without a partition."""
    if k == 1:
        return distances.min(axis=1)
    return np.partition(distances, k - 1, axis=1)[:, :k].mean(axis=1)


#: entries of one block of query-to-bank distances (256 MB of float64): an AE's frame rows on real DCASE
#: data make banks of ~300,000 rows a section, whose whole distance matrix would need hundreds of GB
DISTANCE_BLOCK_ENTRIES = 2**25


def mean_knn_cosine_distance(
    queries: np.ndarray,
    bank: np.ndarray,
    k: int,
    member_scale: np.ndarray | None = None,
    queries_are_bank: bool = False,
) -> np.ndarray:
    """Mean cosine distance of each (normalised) query row to its ``k`` nearest bank rows, each
    distance first divided by its member's ``member_scale`` where one is given; with
    ``queries_are_bank``, each member's distance to itself is left out. Computed in blocks of query
    rows, so memory stays bounded whatever the bank's size."""
    k = min(k, len(bank) - 1 if queries_are_bank else len(bank))
    step = max(1, DISTANCE_BLOCK_ENTRIES // max(len(bank), 1))
    result = np.empty(len(queries))
    for start in range(0, len(queries), step):
        distances = 1.0 - queries[start : start + step] @ bank.T
        if queries_are_bank:
            rows = np.arange(len(distances))
            distances[rows, start + rows] = np.inf
        if member_scale is not None:
            distances = distances / member_scale[None, :]
        result[start : start + step] = mean_of_k_smallest(distances, k)
    return result


DENSITY_MODES = ("bank", "member", "none")


class KNNBackend(ScoringBackend):
    def __init__(
        self,
        k_source: int = 1,
        k_target: int = 1,
        smote_target: bool = False,
        smote_neighbors: int = 2,
        smote_ratio: float = 1.0,
        source_kmeans: int | None = None,
        density_normalise: str = "bank",
        seed: int = 0,
        pool_sections: bool = False,
    ):
        super().__init__(pool_sections)
        self.k = {"source": checked_integer("k_source", k_source), "target": checked_integer("k_target", k_target)}
        self.smote_target = checked_flag("smote_target", smote_target)
        self.smote_neighbors = checked_integer("smote_neighbors", smote_neighbors)
        self.smote_ratio = checked_fraction("smote_ratio", smote_ratio)
        self.source_kmeans = None if source_kmeans is None else checked_integer("source_kmeans", source_kmeans)
        self.density_normalise = checked_choice("density_normalise", density_normalise, DENSITY_MODES)
        self.seed = checked_integer("seed", seed, minimum=0)

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
        return {domain: self._bank_state(bank, self.k.get(domain, 1)) for domain, bank in banks.items()}

    def _bank_state(self, bank: np.ndarray, k: int) -> tuple[np.ndarray, float, np.ndarray | None]:
        """(bank, the bank's scale, each member's scale), as ``density_normalise`` says."""
        if self.density_normalise == "none" or len(bank) < 2:
            return bank, 1.0, None
        per_member = np.maximum(mean_knn_cosine_distance(bank, bank, k, queries_are_bank=True), 1e-6)
        if self.density_normalise == "member":
            return bank, 1.0, per_member
        return bank, max(float(np.mean(per_member)), 1e-6), None

    def _oversample(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        from imblearn.over_sampling import SMOTE

        if len(target) <= self.smote_neighbors or len(target) >= self.smote_ratio * len(source):
            return target  # too few to interpolate, or already as many as asked for
        rows = np.concatenate([source, target])
        labels = np.r_[np.zeros(len(source)), np.ones(len(target))]
        smote = SMOTE(sampling_strategy=self.smote_ratio, k_neighbors=self.smote_neighbors, random_state=self.seed)
        resampled, resampled_labels = smote.fit_resample(rows, labels)
        return normalise(resampled[resampled_labels == 1])

    def score_section(self, representations: list[np.ndarray], state) -> tuple[np.ndarray, np.ndarray]:
        # every row of every clip against each bank in one matrix product, then back to clips
        queries = normalise(np.concatenate(representations))
        per_domain = [
            mean_knn_cosine_distance(queries, bank, self.k.get(domain, 1), member_scale) / scale
            for domain, (bank, scale, member_scale) in state.items()
        ]
        return min_over_domains(per_domain, representations)

    def score_clip(self, rows: np.ndarray, state) -> float:
        return float(self.score_section([rows], state)[0][0])

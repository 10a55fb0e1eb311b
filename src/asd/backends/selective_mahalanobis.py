"""The DCASE 2023-2025 autoencoder baseline's "MAHALA" (selective Mahalanobis) score, as its code
computes it (nttcslab/dcase2023_task2_baseline_ae, ``networks/criterion/mahala.py`` and
``DCASE2023T2AE.train``/``eval``).

Each row of the representation (a stacked-frame reconstruction error, ``n_frames * n_mels``
values) is cut into blocks of ``block_size`` values (one frame's ``n_mels``), as the baseline's
``view(-1, block_size)`` does. Per section and domain, the covariance of the blocks is fitted on
the normal training clips; the target domain falls back to the source covariance where it has no
clips. A clip's score under one domain is the mean over all pairs of its blocks of
``(e_i)ᵀ Σ⁻¹ (e_j)``, which is the squared Mahalanobis norm of its mean error block ``ē`` (not
centred: the baseline's score is not); the clip's score is the smaller of the two domains'.

Differences from the baseline's arithmetic, none of which changes a ranking: blocks are centred
at their domain's mean instead of each training batch's, and the covariance is divided by the
number of blocks minus one instead of the number of stacked rows minus one (the baseline's
covariances are about ``n_frames`` times larger, for both domains alike).
"""

from __future__ import annotations

import logging

import numpy as np

from asd.backends.base import ScoringBackend, checked_integer

log = logging.getLogger(__name__)


class SelectiveMahalanobisBackend(ScoringBackend):
    def __init__(self, block_size: int = 128):
        super().__init__()
        self.block_size = checked_integer("block_size", block_size)

    def _blocks(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.float64)
        if rows.shape[-1] % self.block_size:
            raise ValueError(
                f"representation rows of {rows.shape[-1]} values cannot be cut into blocks of "
                f"backend.block_size={self.block_size} (set it to the number of mel bands)"
            )
        return rows.reshape(-1, self.block_size)

    def fit_section(self, representations, domains):
        precisions = {}
        for domain in ("source", "target"):
            chosen = [r for r, d in zip(representations, domains) if d == domain]
            if not chosen:
                continue
            blocks = self._blocks(np.concatenate(chosen))
            if len(blocks) < 2:
                continue
            covariance = np.cov(blocks, rowvar=False)
            try:
                precisions[domain] = np.linalg.inv(covariance)
            except np.linalg.LinAlgError:
                log.warning("singular %s covariance of %d blocks: using its pseudo-inverse", domain, len(blocks))
                precisions[domain] = np.linalg.pinv(covariance)
        if not precisions:
            raise ValueError("selective Mahalanobis needs at least two training blocks in some domain")
        # as the baseline: a section without target clips scores the target side with the source model
        precisions.setdefault("target", precisions.get("source"))
        precisions.setdefault("source", precisions["target"])
        return [precisions["source"], precisions["target"]]

    def score_clip(self, rows: np.ndarray, state) -> list[float]:
        mean_error = self._blocks(rows).mean(axis=0)
        return [float(mean_error @ precision @ mean_error) for precision in state]

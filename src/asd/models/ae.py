"""LightningModule of the DCASE baseline autoencoder on stacked log-mel frames."""

from __future__ import annotations

import torch
from torch import nn

from asd.backends import ScoringBackend
from asd.data.datamodule import ClipBatch
from asd.data.features import stack_frames
from asd.models.autoencoder import DenseAutoEncoder
from asd.models.base import AnomalyDetectionModule


class AutoEncoderModule(AnomalyDetectionModule):
    """Trains on frame vectors; a clip's representation is its per-frame reconstruction errors."""

    data_input = "frames"

    def __init__(
        self,
        backend: ScoringBackend,
        n_mels: int = 128,
        n_frames: int = 5,
        in_channels: int = 1,
        hidden_dim: int = 128,
        n_hidden: int = 4,
        bottleneck_dim: int = 8,
        batch_norm_momentum: float = 0.01,
        batch_norm_eps: float = 1e-3,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        decision_percentile: float = 0.9,
        validation_split: float = 0.0,
    ):
        super().__init__(backend=backend, decision_percentile=decision_percentile)
        self.save_hyperparameters(ignore=["backend"])
        self.validation_split = validation_split
        self.n_frames = n_frames
        self.min_frames = n_frames
        self.autoencoder = DenseAutoEncoder(
            in_channels * n_mels * n_frames, hidden_dim, n_hidden, bottleneck_dim, batch_norm_momentum, batch_norm_eps
        )
        self.loss = nn.MSELoss()

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.autoencoder(vectors)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor | None:
        (vectors,) = batch
        if len(vectors) < 2:
            return None  # batch norm cannot train on one vector; the baseline skips such a batch too
        loss = self.loss(self(vectors), vectors)
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        (vectors,) = batch
        self.log("val/loss", self.loss(self(vectors), vectors), on_step=False, on_epoch=True)

    def representations(self, batch: ClipBatch) -> list[torch.Tensor]:
        # Clip by clip, so that a clip's errors do not depend on the batch it came in.
        stacked = [stack_frames(features, self.n_frames) for features in batch["features"]]
        return [vectors - self(vectors) for vectors in stacked]

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

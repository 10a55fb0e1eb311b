"""A frozen pretrained encoder as a frontend: a memory-bank model with no training at all.

Each clip's waveform is resampled to the encoder's rate where needed, encoded to frame
embeddings and pooled to one clip embedding; the scoring back-end (kNN by default) is fitted
on one pass over the normal training clips. There is no optimizer and no loss:
``trainable`` is False, so ``asd.train`` skips ``fit`` and goes straight to testing.
"""

from __future__ import annotations

import torch
from torch import nn

from asd.backends import ScoringBackend
from asd.data.datamodule import ClipBatch
from asd.models.base import AnomalyDetectionModule
from asd.models.encoders import at_encoder_rate, require_one_channel


class PretrainedEmbeddingModule(AnomalyDetectionModule):
    trainable = False
    data_input = "waveforms"
    base_weights_prefix = "encoder."

    def __init__(
        self,
        backend: ScoringBackend,
        encoder: nn.Module,
        sample_rate: int = 16000,
        pooling: str = "mean",
        decision_percentile: float = 0.9,
        in_channels: int = 1,
    ):
        super().__init__(backend=backend, decision_percentile=decision_percentile)
        require_one_channel("pretrained", in_channels)
        if pooling not in ("mean", "max", "mean+max"):
            raise ValueError(f"model.pooling must be 'mean', 'max' or 'mean+max', got {pooling!r}")
        self.encoder = encoder.eval().requires_grad_(False)
        self.sample_rate = sample_rate
        self.pooling = pooling

    def pool(self, frames: torch.Tensor) -> torch.Tensor:
        if self.pooling == "mean":
            return frames.mean(0)
        if self.pooling == "max":
            return frames.max(0).values
        return torch.cat([frames.mean(0), frames.max(0).values])

    @torch.no_grad()
    def representations(self, batch: ClipBatch) -> list[torch.Tensor]:
        rows = []
        for waveform in batch["waveform"]:
            rows.append(
                self.pool(self.encoder(at_encoder_rate(self.encoder, waveform, self.sample_rate))).float().unsqueeze(0)
            )
        return rows

    def configure_optimizers(self):
        return None

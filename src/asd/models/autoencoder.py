"""The DCASE 2020-2025 baseline autoencoder as a plain torch module."""

from __future__ import annotations

import torch
from torch import nn


class DenseAutoEncoder(nn.Module):
    """640 -> 128 x4 -> 8 -> 128 x4 -> 640 (Linear + BatchNorm + ReLU), as the baseline.

    The baseline's BatchNorm layers use ``momentum=0.01, eps=1e-3`` (Keras' defaults, kept since
    the 2020 baseline) rather than torch's 0.1 / 1e-5; on the synthetic data torch's cost about one
    point, within the seed spread (experiments/README.md).
    """

    def __init__(
        self,
        input_dim: int = 640,
        hidden_dim: int = 128,
        n_hidden: int = 4,
        bottleneck_dim: int = 8,
        batch_norm_momentum: float = 0.01,
        batch_norm_eps: float = 1e-3,
    ):
        super().__init__()

        def dense(inputs: int, outputs: int) -> list[nn.Module]:
            return [
                nn.Linear(inputs, outputs),
                nn.BatchNorm1d(outputs, momentum=batch_norm_momentum, eps=batch_norm_eps),
                nn.ReLU(),
            ]

        encoder = dense(input_dim, hidden_dim)
        for _ in range(n_hidden - 1):
            encoder += dense(hidden_dim, hidden_dim)
        encoder += dense(hidden_dim, bottleneck_dim)
        decoder = dense(bottleneck_dim, hidden_dim)
        for _ in range(n_hidden - 1):
            decoder += dense(hidden_dim, hidden_dim)
        decoder.append(nn.Linear(hidden_dim, input_dim))
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

"""The DCASE 2020-2025 baseline autoencoder as a plain torch module."""

from __future__ import annotations

import torch
from torch import nn


def _dense(inputs: int, outputs: int) -> list[nn.Module]:
    return [nn.Linear(inputs, outputs), nn.BatchNorm1d(outputs), nn.ReLU()]


class DenseAutoEncoder(nn.Module):
    """640 -> 128 x4 -> 8 -> 128 x4 -> 640 (Linear + BatchNorm + ReLU), as the baseline."""

    def __init__(self, input_dim: int = 640, hidden_dim: int = 128, n_hidden: int = 4, bottleneck_dim: int = 8):
        super().__init__()
        encoder = _dense(input_dim, hidden_dim)
        for _ in range(n_hidden - 1):
            encoder += _dense(hidden_dim, hidden_dim)
        encoder += _dense(hidden_dim, bottleneck_dim)
        decoder = _dense(bottleneck_dim, hidden_dim)
        for _ in range(n_hidden - 1):
            decoder += _dense(hidden_dim, hidden_dim)
        decoder.append(nn.Linear(hidden_dim, input_dim))
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

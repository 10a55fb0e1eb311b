"""MobileFaceNet for machine sound (as in STgram-MFN), margin-based heads, and the STgram
temporal branch, as plain torch modules."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ConvBlock(nn.Sequential):
    def __init__(self, inputs, outputs, kernel, stride=1, padding=0, groups=1, linear=False):
        layers = [
            nn.Conv2d(inputs, outputs, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(outputs),
        ]
        if not linear:
            layers.append(nn.PReLU(outputs))
        super().__init__(*layers)


class Bottleneck(nn.Module):
    """Inverted residual: 1x1 expand, 3x3 depthwise, 1x1 linear project (residual when shapes match)."""

    def __init__(self, inputs, outputs, stride, expansion):
        super().__init__()
        hidden = inputs * expansion
        self.residual = stride == 1 and inputs == outputs
        self.body = nn.Sequential(
            ConvBlock(inputs, hidden, 1),
            ConvBlock(hidden, hidden, 3, stride, 1, groups=hidden),
            ConvBlock(hidden, outputs, 1, linear=True),
        )

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


# (expansion t, repeats n, first stride s) of the three bottleneck stages, as STgram-MFN's
# MobileFaceNet; every stage has ``channels`` output channels (128 there).
BOTTLENECK_SETTING = ((2, 2, 2), (4, 2, 2), (4, 2, 2))


class TgramBranch(nn.Module):
    """STgram's learned temporal front end: a strided 1-D conv on the waveform whose hop matches
    the log-mel's, then 1-D conv blocks; gives an (n_mels, frames) map to stack with the log-mel."""

    def __init__(self, n_mels: int = 128, n_fft: int = 1024, hop_length: int = 512, n_blocks: int = 3):
        super().__init__()
        self.stem = nn.Conv1d(1, n_mels, n_fft, hop_length, padding=n_fft // 2, bias=False)
        self.convs = nn.ModuleList([nn.Conv1d(n_mels, n_mels, 3, 1, 1, bias=False) for _ in range(n_blocks)])
        self.norms = nn.ModuleList([nn.GroupNorm(1, n_mels) for _ in range(n_blocks)])

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, n_mels, frames)
        x = self.stem(waveform.unsqueeze(1))
        for conv, norm in zip(self.convs, self.norms):
            x = F.leaky_relu(norm(conv(x)), 0.2)
        return x


class MobileFaceNet(nn.Module):
    """(B, C, n_mels, frames) -> (B, embedding_dim).

    The original's global depthwise convolution needs a fixed input size; clips of any length
    are pooled adaptively here instead, then projected to the embedding.
    """

    def __init__(
        self,
        in_channels: int = 1,
        embedding_dim: int = 128,
        width: int = 64,
        channels: int = 128,
        final_channels: int = 512,
        setting=BOTTLENECK_SETTING,
    ):
        super().__init__()
        layers = [ConvBlock(in_channels, width, 3, 2, 1), ConvBlock(width, width, 3, 1, 1, groups=width)]
        current = width
        for expansion, repeats, stride in setting:
            for i in range(repeats):
                layers.append(Bottleneck(current, channels, stride if i == 0 else 1, expansion))
                current = channels
        layers.append(ConvBlock(current, final_channels, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embedding = nn.Sequential(
            nn.Linear(final_channels, embedding_dim, bias=False), nn.BatchNorm1d(embedding_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.pool(self.features(x)).flatten(1))


class ArcMarginHead(nn.Module):
    """Cosine classifier with an additive angular margin on the target class (ArcFace).

    ``margin=0`` with ``adaptive_scale=True`` is AdaCos: the scale follows the batch's median
    angle instead of being fixed. ``sub_centers`` > 1 gives each class that many centres, and a
    class's logit is the log of the summed exponentials of its centres' scaled cosines, so that
    the softmax over classes sums the probabilities of each class's centres: with AdaCos this is
    sub-cluster AdaCos (Wilkinghoff, SC-AdaCos; ``trainable_centers=False`` keeps the centres at
    their random start, as the original). Logits are per class either way. ``adapt_scale=False``
    keeps AdaCos's scale at its start value.
    """

    def __init__(
        self,
        embedding_dim: int,
        n_classes: int,
        scale: float = 30.0,
        margin: float = 0.5,
        adaptive_scale: bool = False,
        sub_centers: int = 1,
        trainable_centers: bool = True,
        projection: bool = False,
        adapt_scale: bool = True,
    ):
        super().__init__()
        if sub_centers < 1:
            raise ValueError(f"sub_centers must be at least 1, got {sub_centers}")
        if projection and sub_centers >= embedding_dim:
            raise ValueError(
                f"a class subspace of sub_centers={sub_centers} dimensions fills the {embedding_dim}-d embedding space"
            )
        self.weight = nn.Parameter(torch.empty(n_classes * sub_centers, embedding_dim), requires_grad=trainable_centers)
        nn.init.xavier_uniform_(self.weight)
        self.n_classes, self.sub_centers = n_classes, sub_centers
        self.margin = margin
        # AdaCos's scale: its starting value from the number of centres; adapted to each batch unless
        # adapt_scale is False (ASDKit's SC-AdaCos, dynamic=False, keeps it fixed)
        self.adaptive_scale = adaptive_scale and adapt_scale
        self.projection = projection
        centres = n_classes if projection else n_classes * sub_centers
        initial = math.sqrt(2) * math.log(centres - 1) if adaptive_scale and centres > 1 else scale
        self.register_buffer("scale", torch.tensor(float(initial)))

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, n_classes, sub_centers) cosines of each embedding with each centre; with
        ``projection``, (B, n_classes, 1) cosines with its projection onto each class's subspace."""
        if self.projection:
            # orthonormal bases of the classes' subspaces: (n_classes, dims, sub_centers)
            bases = torch.linalg.qr(self.weight.view(self.n_classes, self.sub_centers, -1).transpose(1, 2)).Q
            coordinates = torch.einsum("bd,cdk->bck", F.normalize(embeddings), bases)
            return coordinates.norm(dim=-1, keepdim=True)  # |P x| / |x|: the cosine of x and P x
        cosine = F.linear(F.normalize(embeddings), F.normalize(self.weight))
        return cosine.view(len(embeddings), self.n_classes, self.sub_centers)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n_classes) scaled logits; with labels (training), the target class's centres carry the margin."""
        cosine = self.cosine(embeddings).clamp(-1 + 1e-7, 1 - 1e-7)
        if labels is not None:
            one_hot = F.one_hot(labels, self.n_classes).bool().unsqueeze(-1).expand_as(cosine)
            theta = torch.acos(cosine)
            if self.adaptive_scale and self.training:
                self._update_scale(cosine, theta, one_hot)
            target = torch.cos(torch.clamp(theta + self.margin, max=math.pi))  # cos falls monotonically up to pi
            cosine = torch.where(one_hot, target, cosine)
        # a copy: AdaCos updates the buffer in place, and a second call in the same step (mixup's
        # second target) must not change what the first call's gradient is computed with
        return torch.logsumexp(self.scale.clone() * cosine, dim=-1)

    @torch.no_grad()
    def _update_scale(self, cosine, theta, one_hot):
        """AdaCos: the scale at which the non-target centres' summed exponentials equal the target's
        at the batch's median angle to its nearest target centre."""
        others = torch.where(one_hot, torch.zeros_like(cosine), torch.exp(self.scale * cosine)).sum((1, 2)).mean()
        nearest_target = theta.masked_fill(~one_hot, math.inf).amin((1, 2))
        median_theta = torch.median(nearest_target)
        self.scale.copy_(torch.log(others) / torch.cos(torch.clamp(median_theta, max=math.pi / 4)))

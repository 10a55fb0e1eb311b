"""The multi-branch attribute classifier of Fujimura et al. (ICASSP 2025; ASDKit's "MB" network, its
recipe ``dis_spec_scac_trainable``), as plain torch modules and its LightningModule.

Every clip is tiled (repeated) or cut to one fixed length, so that the whole clip's spectrum has a
fixed number of bins. Branches read it, each giving ``branch_dim`` of the embedding:

* the whole clip's magnitude spectrum (one FFT: the finest frequency resolution there is) through
  three strided 1-D convolutions with squeeze-excitation, a dense layer over the flattened maps,
  and a five-layer MLP;
* per STFT resolution (``n_ffts``; hop half the window: ASDKit's dis_spec_* recipes use 1024, its
  dis_multispec_* recipe 256, 1024 and 4096), the magnitude STFT (200 Hz to 8 kHz, no log) through a
  ResNet of pre-activation residual blocks with squeeze-excitation, max-pooled over time and
  flattened over frequency.

Written from the paper's description and a reading of ASDKit's code (never copied); every layer
without a bias and every batch norm without affine weights, as there.

Feature exchange (FeatEx; Wilkinghoff, ICASSP 2024; ASDKit's ``dis_spec_featex``), off unless
``feature_exchange_probability`` > 0: a second margin head learns the classes of embeddings whose
branch outputs were exchanged between clips of the batch. Its classes are the data's classes once per
branch, plus once for embeddings left whole: an exchanged embedding belongs, in equal shares, to the
class of each clip a branch came from, each in that branch's block, so the network must keep every
branch informative about the machine on its own.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from asd.backends import ScoringBackend
from asd.data.datamodule import ClipBatch
from asd.models.base import AnomalyDetectionModule
from asd.models.encoders import require_one_channel
from asd.models.heads import MarginClassifierMixin, check_margin_loss, margin_head
from asd.models.mobilefacenet import ArcMarginHead


def tile_to_length(waveform: torch.Tensor, length: int, start: int = 0) -> torch.Tensor:
    """``length`` samples of ``waveform`` repeated end to end as often as needed, from ``start``."""
    repeats = math.ceil((start + length) / waveform.shape[-1])
    return waveform.repeat(repeats)[start : start + length]


def conv_output_length(length: int, kernel: int, stride: int, padding: int = 0) -> int:
    return (length + 2 * padding - kernel) // stride + 1


class SqueezeExcitation(nn.Module):
    """Channel weights from the channels' means (any number of spatial axes), Hu et al. 2018."""

    def __init__(self, channels: int, ratio: int = 16):
        super().__init__()
        hidden = max(1, channels // ratio)  # narrow test networks keep one unit
        self.gate = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(),
            nn.Linear(hidden, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.gate(x.mean(dim=tuple(range(2, x.dim()))))
        return x * weights.reshape(*weights.shape, *([1] * (x.dim() - 2)))


class SpectrumBranch(nn.Module):
    """(B, samples) -> (B, embedding_dim) from the magnitude spectrum of the whole (fixed-length) clip."""

    #: (kernel, stride) of the three convolutions over frequency bins
    CONVOLUTIONS = ((256, 64), (64, 32), (16, 4))

    def __init__(self, samples: int, embedding_dim: int = 128):
        super().__init__()
        if samples < self.min_samples():
            raise ValueError(f"the spectrum branch needs clips of at least {self.min_samples()} samples, got {samples}")
        layers, bins, channels = [], samples // 2 + 1, 1
        for kernel, stride in self.CONVOLUTIONS:
            layers += [nn.Conv1d(channels, embedding_dim, kernel, stride, bias=False), nn.ReLU()]
            layers.append(SqueezeExcitation(embedding_dim))
            bins, channels = conv_output_length(bins, kernel, stride), embedding_dim
        self.convolutions = nn.Sequential(*layers)

        def dense(inputs: int) -> list[nn.Module]:
            return [
                nn.Linear(inputs, embedding_dim, bias=False),
                nn.BatchNorm1d(embedding_dim, affine=False),
                nn.ReLU(),
            ]

        self.mlp = nn.Sequential(
            nn.Flatten(),
            *dense(bins * embedding_dim),
            *[layer for _ in range(4) for layer in dense(embedding_dim)],
            nn.Linear(embedding_dim, embedding_dim, bias=False),
        )

    @classmethod
    def min_samples(cls) -> int:
        """The shortest clip whose spectrum the convolutions can take (about 4.4 s at 16 kHz)."""
        bins = 1
        for kernel, stride in reversed(cls.CONVOLUTIONS):
            bins = kernel + (bins - 1) * stride
        return 2 * (bins - 1)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.convolutions(torch.fft.rfft(waveforms).abs().unsqueeze(1)))


class ResidualBlock(nn.Module):
    """Pre-activation residual block (batch norm first, shared with the shortcut) of two 3x3
    convolutions with squeeze-excitation; stride 2 halves both axes and the shortcut max-pools."""

    def __init__(self, inputs: int, outputs: int, stride: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(inputs, affine=False)
        self.residual = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(inputs, outputs, 3, stride, padding=1, bias=False),
            nn.BatchNorm2d(outputs, affine=False),
            nn.ReLU(),
            nn.Conv2d(outputs, outputs, 3, 1, padding=1, bias=False),
            SqueezeExcitation(outputs),
        )
        if stride == 1 and inputs == outputs:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(nn.MaxPool2d(3, stride, padding=1), nn.Conv2d(inputs, outputs, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return self.shortcut(x) + self.residual(x)


class SpectrogramBranch(nn.Module):
    """(B, samples) -> (B, embedding_dim) from the magnitude STFT (Hann window, hop ``hop_length``,
    magnitudes divided by the window's norm, bins from ``f_min`` to ``f_max``; no log)."""

    def __init__(
        self,
        samples: int,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 512,
        f_min: float = 200.0,
        f_max: float = 8000.0,
        embedding_dim: int = 128,
    ):
        super().__init__()
        if embedding_dim % 8:
            raise ValueError(f"the spectrogram branch's embedding_dim must be a multiple of 8, got {embedding_dim}")
        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        frequencies = torch.linspace(0, sample_rate // 2, n_fft // 2 + 1)
        self.first_bin = int(torch.searchsorted(frequencies, f_min))
        self.end_bin = int(torch.searchsorted(frequencies, f_max, right=True))
        bins, frames = self.end_bin - self.first_bin, samples // hop_length + 1
        if min(bins, frames) < 36:
            raise ValueError(
                f"the spectrogram branch needs 36 frequency bins and frames, a clip of {samples} samples gives "
                f"{bins} x {frames} (n_fft={n_fft}, hop_length={hop_length}, f_min={f_min}, f_max={f_max})"
            )
        self.frequency_norm = nn.BatchNorm1d(bins, affine=False)
        stem = embedding_dim // 8
        self.stem = nn.Sequential(
            nn.Conv2d(1, stem, 7, 2, bias=False), nn.BatchNorm2d(stem, affine=False), nn.ReLU(), nn.MaxPool2d(3, 2)
        )
        blocks, channels = [ResidualBlock(stem, stem, 1), ResidualBlock(stem, stem, 1)], stem
        bins = conv_output_length(conv_output_length(bins, 7, 2), 3, 2)
        for width in (embedding_dim // 4, embedding_dim // 2, embedding_dim):
            blocks += [ResidualBlock(channels, width, 2), ResidualBlock(width, width, 1)]
            bins, channels = conv_output_length(bins, 3, 2, padding=1), width
        self.blocks = nn.Sequential(*blocks)
        self.embedding = nn.Sequential(
            nn.Flatten(),
            nn.BatchNorm1d(channels * bins, affine=False),
            nn.Linear(channels * bins, embedding_dim, bias=False),
        )

    def spectrogram(self, waveforms: torch.Tensor) -> torch.Tensor:
        stft = torch.stft(
            waveforms,
            self.n_fft,
            self.hop_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        return stft.abs()[:, self.first_bin : self.end_bin] / self.window.pow(2).sum().sqrt()

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        x = self.frequency_norm(self.spectrogram(waveforms)).unsqueeze(1)  # (B, 1, bins, frames)
        x = self.blocks(self.stem(x)).amax(dim=-1)  # max over time: (B, channels, bins)
        return self.embedding(x)


class MultiBranchNetwork(nn.Module):
    """(B, samples) -> (B, (1 + len(n_ffts)) * branch_dim): the whole-clip spectrum branch and one
    spectrogram branch per STFT resolution (window ``n_fft``, hop ``n_fft // 2``), side by side."""

    def __init__(
        self,
        samples: int,
        sample_rate: int = 16000,
        branch_dim: int = 128,
        n_ffts: tuple[int, ...] = (1024,),
        f_min: float = 200.0,
        f_max: float = 8000.0,
    ):
        super().__init__()
        self.samples = samples
        self.spectrum = SpectrumBranch(samples, branch_dim)
        self.spectrograms = nn.ModuleList(
            SpectrogramBranch(samples, sample_rate, n_fft, n_fft // 2, f_min, f_max, branch_dim) for n_fft in n_ffts
        )
        self.embedding_dim = branch_dim * (1 + len(n_ffts))

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.spectrum(waveforms), *(branch(waveforms) for branch in self.spectrograms)], dim=-1)


class MultiBranchModule(MarginClassifierMixin, AnomalyDetectionModule):
    """The multi-branch network trained to tell apart the classes of the normal training clips with
    a margin head (ASDKit: sub-cluster AdaCos, 16 trainable centres, fixed scale), with mixup of
    waveforms and labels; its embeddings go to a scoring back-end (ASDKit: kNN with SMOTE).

    Training clips are tiled to ``clip_seconds`` and cut at a random place; test and training
    clips are embedded from their start, one clip at a time (a score must not depend on its batch).
    """

    data_input = "waveforms"

    def __init__(
        self,
        backend: ScoringBackend,
        sample_rate: int = 16000,
        in_channels: int = 1,
        clip_seconds: float = 12.0,
        branch_dim: int = 128,
        n_ffts: tuple[int, ...] = (1024,),
        f_min: float = 200.0,
        f_max: float = 8000.0,
        loss: str = "sc_adacos",
        scale: float = 30.0,
        margin: float = 0.0,
        sub_centers: int = 16,
        adapt_scale: bool = False,
        trainable_centers: bool = True,
        mixup_probability: float = 0.5,
        feature_exchange_probability: float = 0.0,
        feature_exchange_weight: float = 1.0,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        decision_percentile: float = 0.9,
        class_names: list[str] | None = None,
    ):
        super().__init__(backend=backend, decision_percentile=decision_percentile)
        require_one_channel("multibranch", in_channels)
        check_margin_loss(loss)
        for key, value in (
            ("mixup_probability", mixup_probability),
            ("feature_exchange_probability", feature_exchange_probability),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"model.{key} must be in [0, 1], got {value}")
        if feature_exchange_weight < 0:
            raise ValueError(f"model.feature_exchange_weight must be at least 0, got {feature_exchange_weight}")
        self.save_hyperparameters(ignore=["backend", "class_names"])
        self.network = MultiBranchNetwork(
            round(clip_seconds * sample_rate), sample_rate, branch_dim, tuple(n_ffts), f_min, f_max
        )
        self.embedding_dim = self.network.embedding_dim
        self.class_names: list[str] = []
        self.head: ArcMarginHead | None = None
        self.exchange_head: ArcMarginHead | None = None
        if class_names:
            self._build_head(class_names)

    def head_inputs(self) -> int:
        return self.embedding_dim

    @property
    def branches(self) -> int:
        return self.embedding_dim // self.hparams.branch_dim

    def _build_head(self, class_names: list[str]) -> None:
        super()._build_head(class_names)
        if self.hparams.feature_exchange_probability > 0:
            # as ASDKit's: the same loss, its centres always trained; classes once per branch and once whole
            exchange_hparams = type(self.hparams)({**self.hparams, "trainable_centers": True})
            self.exchange_head = margin_head(
                exchange_hparams, self.embedding_dim, len(class_names) * (1 + self.branches)
            )

    def feature_exchange_loss(self, embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The exchange head's loss on the batch's embeddings, each, with probability
        ``feature_exchange_probability``, rebuilt from the first branch of its own clip and every other
        branch of a random clip of the batch (one permutation per branch). ``targets``: (B, classes)
        class shares of each clip (mixup's). A whole embedding's target is its shares in the first
        block of classes; an exchanged one's, the shares of branch b's clip in block b + 1, each 1 / branches."""
        count, device = len(embeddings), embeddings.device
        sources = [torch.arange(count, device=device)]
        sources += [torch.randperm(count, device=device) for _ in range(self.branches - 1)]
        parts = embeddings.split(self.hparams.branch_dim, dim=1)
        exchanged = (torch.rand(count, device=device) < self.hparams.feature_exchange_probability)[:, None]
        rebuilt = torch.cat([part[source] for part, source in zip(parts, sources)], dim=1)
        none = torch.zeros_like(targets)
        whole_targets = torch.cat([targets] + [none] * self.branches, dim=1)
        exchanged_targets = torch.cat([none] + [targets[source] / self.branches for source in sources], dim=1)
        logits = self.exchange_head(torch.where(exchanged, rebuilt, embeddings))
        return -(torch.where(exchanged, exchanged_targets, whole_targets) * F.log_softmax(logits, dim=1)).sum(1).mean()

    def fixed_length(self, waveforms: list[torch.Tensor], random_start: bool) -> torch.Tensor:
        """The clips tiled to the network's length, from a random place (training) or the start.
        In training, as ASDKit's collator, a short clip is first repeated to whole copies at least the
        network's length and cut anywhere in them (a 10-s clip tiled to 12 s starts in its first 8 s)."""
        samples = self.network.samples
        starts = [
            int(torch.randint(0, math.ceil(samples / len(w)) * len(w) - samples + 1, ())) if random_start else 0
            for w in waveforms
        ]
        return torch.stack([tile_to_length(w, samples, start) for w, start in zip(waveforms, starts)])

    def training_step(self, batch: ClipBatch, batch_idx: int) -> torch.Tensor:
        waveforms, labels = self.fixed_length(batch["waveform"], random_start=True), batch["label"]
        # ASDKit's mixup: each clip, with probability mixup_probability, becomes a share lam ~ U(0, 1)
        # of itself and the rest of another clip of the batch; its loss is each class's, weighted by its share
        mixed = torch.rand(len(labels), device=waveforms.device) < self.hparams.mixup_probability
        lam = torch.where(
            mixed, torch.rand(len(labels), device=waveforms.device), torch.ones(len(labels), device=waveforms.device)
        )
        order = torch.randperm(len(labels), device=waveforms.device)
        waveforms = lam[:, None] * waveforms + (1 - lam[:, None]) * waveforms[order]
        embeddings = self.network(waveforms)
        loss = self.mixup_loss(embeddings, labels, order, lam)
        if self.exchange_head is not None:
            classes = len(self.class_names)
            shares = lam[:, None] * F.one_hot(labels, classes) + (1 - lam[:, None]) * F.one_hot(labels[order], classes)
            loss = loss + self.hparams.feature_exchange_weight * self.feature_exchange_loss(embeddings, shares)
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(labels))
        return loss

    def representations(self, batch: ClipBatch) -> list[torch.Tensor]:
        return [self.network(self.fixed_length([w], random_start=False)) for w in batch["waveform"]]

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

"""LightningModule of the MobileFaceNet attribute classifier (optionally STgram-MFN).

It learns to tell apart the classes section x attribute combination of the normal training
clips (see ``asd.data.datamodule.class_name``) with a margin loss; its embeddings (or logits)
then go to a scoring back-end: kNN or Mahalanobis on embeddings, or the classifier's own score
on logits. The number of classes is only known from the data, so the head is built in
``setup`` and the class names travel in the checkpoint: a checkpoint reloads without the data.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from asd.backends import ScoringBackend
from asd.data.datamodule import ClipBatch, clip_batch
from asd.models.base import AnomalyDetectionModule
from asd.models.heads import MarginClassifierMixin, check_margin_loss
from asd.models.mobilefacenet import ArcMarginHead, MobileFaceNet, TgramBranch
from asd.models.schedule import with_warmup_cosine


def stack_cropped(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Stack clips along a new batch axis, cropping to the shortest (real DCASE clips are equal)."""
    length = min(t.shape[-1] for t in tensors)
    return torch.stack([t[..., :length] for t in tensors])


class SpecAugmentMask(nn.Module):
    """SpecAugment's frequency (``axis=-2``) or time (``axis=-1``) mask: per clip, a band of a
    uniformly drawn width below ``max_width`` at a uniformly drawn place is set to zero. Written here
    because torchaudio, which had it, pins torch to one version; each clip gets its own band."""

    def __init__(self, max_width: int, axis: int):
        super().__init__()
        self.max_width, self.axis = max_width, axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size, batch = x.shape[self.axis], x.shape[0]
        width = (torch.rand(batch, device=x.device) * min(self.max_width, size)).long()
        start = (torch.rand(batch, device=x.device) * (size - width + 1)).long()
        positions = torch.arange(size, device=x.device)
        band = (positions >= start[:, None]) & (positions < (start + width)[:, None])  # (batch, size)
        shape = [batch] + [1] * (x.dim() - 1)
        shape[self.axis] = size
        return x.masked_fill(band.reshape(shape), 0.0)


class MobileFaceNetModule(MarginClassifierMixin, AnomalyDetectionModule):
    def __init__(
        self,
        backend: ScoringBackend,
        n_mels: int = 128,
        in_channels: int = 1,
        n_fft: int = 1024,
        hop_length: int = 512,
        use_tgram: bool = False,
        embedding_dim: int = 128,
        width: int = 64,
        channels: int = 128,
        final_channels: int = 512,
        loss: str = "arcface",
        scale: float = 30.0,
        margin: float = 0.5,
        sub_centers: int = 1,
        mixup_alpha: float = 0.0,
        freq_mask: int = 0,
        time_mask: int = 0,
        shift_classes: tuple[int, ...] = (),
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        warmup_fraction: float | None = None,
        final_lr_fraction: float = 0.0,
        representation: str = "embedding",
        decision_percentile: float = 0.9,
        class_names: list[str] | None = None,
    ):
        super().__init__(backend=backend, decision_percentile=decision_percentile)
        check_margin_loss(loss)
        if representation not in ("embedding", "logits"):
            raise ValueError(f"model.representation must be 'embedding' or 'logits', got {representation!r}")
        self.save_hyperparameters(ignore=["backend", "class_names"])
        self.data_input = "waveforms" if use_tgram else "clips"
        self.gives_logits = representation == "logits"
        self.build_frontend()
        augment = []
        if freq_mask:
            augment.append(SpecAugmentMask(freq_mask, axis=-2))
        if time_mask:
            augment.append(SpecAugmentMask(time_mask, axis=-1))
        self.spec_augment = nn.Sequential(*augment)
        self.shift_classes = tuple(shift_classes)
        self.class_names: list[str] = []
        self.head: ArcMarginHead | None = None
        if class_names:
            self._build_head(class_names)

    def build_frontend(self) -> None:
        """The modules from a batch to the embedding (``embed`` runs them); subclasses build their own."""
        h = self.hparams
        # per mel bin (of each channel): quiet high bands, where faults often show, get the same
        # weight as loud low ones
        self.input_norm = nn.BatchNorm1d(h.in_channels * h.n_mels)
        self.tgram = TgramBranch(h.n_mels, h.n_fft, h.hop_length) if h.use_tgram else None
        # each audio channel (DCASE 2026: near and far microphone) is an image channel, as is its STgram
        image_channels = h.in_channels * (2 if h.use_tgram else 1)
        self.encoder = MobileFaceNet(image_channels, h.embedding_dim, h.width, h.channels, h.final_channels)

    def head_classes(self, n_classes: int) -> int:
        return n_classes * (1 + len(self.shift_classes))  # and each shift's copies

    def embed(self, batch: ClipBatch, augment: bool = False) -> torch.Tensor:
        x = self.input_norm(stack_cropped(batch["features"]))  # (B, channels * n_mels, frames)
        x = x.unflatten(1, (self.hparams.in_channels, self.hparams.n_mels))  # (B, channels, n_mels, frames)
        if self.tgram is not None:
            waveforms = stack_cropped(batch["waveform"])  # (B, time) or (B, channels, time)
            tgram = self.tgram(waveforms.flatten(0, -2)).unflatten(0, (len(x), self.hparams.in_channels))
            frames = min(x.shape[-1], tgram.shape[-1])
            x = torch.cat([x[..., :frames], tgram[..., :frames]], dim=1)
        if augment:
            x = self.spec_augment(x)
        return self.encoder(x)

    def forward(self, batch: ClipBatch) -> torch.Tensor:
        return self.embed(batch)

    def _shifted_copies(self, batch: ClipBatch) -> ClipBatch:
        """Each clip once more per entry of ``shift_classes``, its log-mel moved by that many mel
        bins, as a class of its own: the embedding must then notice where energy sits in
        frequency, which attribute classes alone need not teach (a shifted resonance is a fault)."""
        features, labels = list(batch["features"]), [batch["label"]]
        for i, bins in enumerate(self.shift_classes, start=1):
            # within each channel's log-mel: a shift must not carry one channel's bands into the next
            features += [
                torch.roll(f.unflatten(0, (self.hparams.in_channels, -1)), bins, dims=1).flatten(0, 1)
                for f in batch["features"]
            ]
            labels.append(batch["label"] + i * len(self.class_names))
        copies = 1 + len(self.shift_classes)
        return clip_batch(
            features,
            waveforms=list(batch["waveform"]) * copies if "waveform" in batch else None,
            labels=torch.cat(labels),
        )

    def training_step(self, batch: ClipBatch, batch_idx: int) -> torch.Tensor:
        if self.shift_classes:
            batch = self._shifted_copies(batch)
        labels = batch["label"]
        alpha = self.hparams.mixup_alpha
        if alpha > 0:
            lam = float(np.random.beta(alpha, alpha))
            order = torch.randperm(len(labels), device=labels.device)
            x = self.embed(batch, augment=True)
            # mixing in embedding space keeps the margin head's per-class targets well defined
            loss = self.mixup_loss(lam * x + (1 - lam) * x[order], labels, order, lam)
        else:
            loss = F.cross_entropy(self.head(self.embed(batch, augment=True), labels), labels)
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(labels))
        return loss

    def representations(self, batch: ClipBatch) -> list[torch.Tensor]:
        # One clip at a time: a clip's score must not depend on which clips share its batch
        # (batched convolutions round differently), and clips keep their full length.
        rows = []
        for i, features in enumerate(batch["features"]):
            clip = clip_batch([features], waveforms=[batch["waveform"][i]] if "waveform" in batch else None)
            embedding = self.embed(clip)
            if self.hparams.representation == "logits":
                embedding = self.head(embedding)[:, : len(self.class_names)]  # the real classes, not the shifted ones
            rows.append(embedding)
        return rows

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if self.hparams.warmup_fraction is None:
            return optimizer
        return with_warmup_cosine(optimizer, self)

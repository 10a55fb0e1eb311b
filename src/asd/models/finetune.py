"""LightningModule that fine-tunes a pretrained audio encoder with low-rank adapters (LoRA).

The encoder (``encoder=beats|hf``, from a local path) stays frozen; ``peft`` injects LoRA
adapters into its ``target_modules`` (optionally only in some ``lora_layers``), the last
``unfreeze_last_layers`` transformer layers may train in full, and an attentive statistics pooling
layer and a margin head (ArcFace / AdaCos / SC-AdaCos, :func:`asd.models.heads.margin_head`) learn
the same section x attribute classes as the MobileFaceNet model. The pooled embedding of a clip
goes to any back-end (kNN by default).

Only what trains is saved in a system: the adapters, the unfrozen layers, pooling and head; the
frozen base weights are rebuilt from ``encoder.path`` and checked by their fingerprint (asd.system).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from asd.backends import ScoringBackend
from asd.data.datamodule import ClipBatch
from asd.extras import require_extra
from asd.models.base import AnomalyDetectionModule
from asd.models.encoders import at_encoder_rate, require_one_channel
from asd.models.heads import MarginClassifierMixin, check_margin_loss
from asd.models.mfn import stack_cropped
from asd.models.schedule import with_warmup_cosine


class AttentiveStatisticsPooling(nn.Module):
    """(B, frames, dims) -> (B, embedding_dim): the attention-weighted mean and standard deviation
    of the frames (Okabe et al. 2018), projected. Written here: it is a few lines, and the speaker
    recognition toolkits that ship one bring a whole framework with them."""

    def __init__(self, dims: int, embedding_dim: int, attention_dim: int = 128):
        super().__init__()
        self.attention = nn.Sequential(nn.Linear(dims, attention_dim), nn.Tanh(), nn.Linear(attention_dim, 1))
        self.projection = nn.Sequential(nn.Linear(2 * dims, embedding_dim), nn.BatchNorm1d(embedding_dim))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.attention(frames), dim=1)
        mean = (weights * frames).sum(1)
        std = ((weights * frames.square()).sum(1) - mean.square()).clamp(min=1e-6).sqrt()
        return self.projection(torch.cat([mean, std], dim=1))


def transformer_layers(encoder: nn.Module) -> tuple[str, nn.ModuleList]:
    """The encoder's stack of transformer layers: the longest ModuleList named ``layers``/``layer``."""
    stacks = [
        (name, module)
        for name, module in encoder.named_modules()
        if isinstance(module, nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layers", "layer")
    ]
    if not stacks:
        raise ValueError(f"{type(encoder).__name__}: no transformer layer stack found (a ModuleList named 'layers')")
    return max(stacks, key=lambda item: len(item[1]))


class FineTunedEncoderModule(MarginClassifierMixin, AnomalyDetectionModule):
    data_input = "waveforms"

    def __init__(
        self,
        backend: ScoringBackend,
        encoder: nn.Module,
        sample_rate: int = 16000,
        in_channels: int = 1,
        lora_rank: int = 64,
        lora_alpha: float = 64.0,
        lora_dropout: float = 0.0,
        target_modules: tuple[str, ...] = ("q_proj", "v_proj"),
        lora_layers: tuple[int, ...] | None = None,
        unfreeze_last_layers: int = 0,
        gradient_checkpointing: bool = False,
        embedding_dim: int = 256,
        loss: str = "sc_adacos",
        scale: float = 30.0,
        margin: float = 0.0,
        sub_centers: int = 16,
        window_s: float | None = None,
        mixup_alpha: float = 0.0,
        mixup_probability: float = 0.5,
        lr: float = 1e-4,
        head_lr: float | None = None,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.1,
        final_lr_fraction: float = 0.0,
        decision_percentile: float = 0.9,
        class_names: list[str] | None = None,
    ):
        super().__init__(backend=backend, decision_percentile=decision_percentile)
        require_one_channel("finetune", in_channels)
        check_margin_loss(loss)
        self.save_hyperparameters(ignore=["backend", "encoder", "class_names"])
        encoder.requires_grad_(False)
        layers_name, layers = transformer_layers(encoder)
        if lora_rank > 0:
            require_extra("pretrained", "model=finetune (LoRA adapters, peft)")
            from peft import LoraConfig, inject_adapter_in_model

            config = LoraConfig(
                r=lora_rank,
                lora_alpha=lora_alpha,
                lora_dropout=lora_dropout,
                target_modules=list(target_modules),
                layers_to_transform=list(lora_layers) if lora_layers is not None else None,
                layers_pattern=layers_name.rsplit(".", 1)[-1] if lora_layers is not None else None,
            )
            try:
                inject_adapter_in_model(config, encoder)
            except ValueError as err:  # peft: no module matched target_modules
                raise ValueError(f"model.target_modules={list(target_modules)}: {err}") from err
        if not 0 <= unfreeze_last_layers <= len(layers):
            raise ValueError(f"model.unfreeze_last_layers must be in [0, {len(layers)}], got {unfreeze_last_layers}")
        for layer in list(layers)[len(layers) - unfreeze_last_layers :]:
            layer.requires_grad_(True)
        if gradient_checkpointing:
            model = getattr(encoder, "model", None)
            if not hasattr(model, "gradient_checkpointing_enable"):
                raise ValueError("model.gradient_checkpointing needs a transformers encoder (encoder=hf)")
            model.gradient_checkpointing_enable()
        self.encoder = encoder
        self.sample_rate = sample_rate
        with torch.no_grad():
            dims = encoder.encode(torch.zeros(1, encoder.sample_rate)).shape[-1]
        self.pooling = AttentiveStatisticsPooling(dims, embedding_dim)
        self.class_names: list[str] = []
        self.head = None
        if class_names:
            self._build_head(class_names)

    def base_weight_names(self) -> set[str]:
        """The frozen encoder weights, rebuilt from the encoder's file (not the adapters, not unfrozen layers)."""
        # every name of a trained tensor: BEATs shares one relative position bias between its layers
        trained = {
            f"encoder.{name}" for name, p in self.encoder.named_parameters(remove_duplicate=False) if p.requires_grad
        }
        return {key for key in self.state_dict() if key.startswith("encoder.") and key not in trained}

    @property
    def window(self) -> int | None:
        """``window_s`` in samples at the data's rate; None: whole clips."""
        return int(self.hparams.window_s * self.sample_rate) if self.hparams.window_s else None

    def embed(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(B, time) at the data's rate -> (B, embedding_dim)."""
        return self.pooling(self.encoder.encode(at_encoder_rate(self.encoder, waveforms, self.sample_rate)))

    def _random_window(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Training sees one random ``window_s`` crop per batch where the clips are longer."""
        window = self.window
        if window is None or waveforms.shape[-1] <= window:
            return waveforms
        start = int(torch.randint(0, waveforms.shape[-1] - window + 1, ()))
        return waveforms[..., start : start + window]

    def training_step(self, batch: ClipBatch, batch_idx: int) -> torch.Tensor:
        waveforms, labels = self._random_window(stack_cropped(batch["waveform"])), batch["label"]
        if self.hparams.mixup_alpha > 0 and np.random.rand() < self.hparams.mixup_probability:
            lam = float(np.random.beta(self.hparams.mixup_alpha, self.hparams.mixup_alpha))
            order = torch.randperm(len(labels), device=labels.device)
            loss = self.mixup_loss(self.embed(lam * waveforms + (1 - lam) * waveforms[order]), labels, order, lam)
        else:
            loss = F.cross_entropy(self.head(self.embed(waveforms), labels), labels)
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(labels))
        return loss

    def representations(self, batch: ClipBatch) -> list[torch.Tensor]:
        # One clip at a time (its score must not depend on its batch); a clip longer than the
        # encoder's window is encoded window by window and its frames pooled together.
        rows, window = [], self.window
        for waveform in batch["waveform"]:
            pieces = [waveform] if window is None else list(torch.split(waveform, window, dim=-1))
            if len(pieces) > 1 and pieces[-1].shape[-1] < window // 2:
                pieces = pieces[:-1]  # a short remainder would be padded by the encoder: leave it out
            pieces = [at_encoder_rate(self.encoder, p.unsqueeze(0), self.sample_rate) for p in pieces]
            frames = torch.cat([self.encoder.encode(p) for p in pieces], dim=1)
            rows.append(self.pooling(frames))
        return rows

    def configure_optimizers(self):
        adapted = [p for p in self.encoder.parameters() if p.requires_grad]
        own = [p for name, p in self.named_parameters() if not name.startswith("encoder.") and p.requires_grad]
        optimizer = torch.optim.AdamW(
            [
                {"params": adapted, "lr": self.hparams.lr},
                {"params": own, "lr": self.hparams.head_lr or self.hparams.lr},
            ],
            weight_decay=self.hparams.weight_decay,
        )
        return with_warmup_cosine(optimizer, self)

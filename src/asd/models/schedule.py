"""The learning-rate schedule of the trained embedding models: linear warm-up, then cosine decay."""

from __future__ import annotations

import math

import torch


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, floor: float) -> float:
    """Learning-rate factor: linear warm-up from 0 to 1, then cosine decay to ``floor``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def with_warmup_cosine(optimizer: torch.optim.Optimizer, module) -> dict:
    """What ``configure_optimizers`` returns for :func:`warmup_cosine` over the module's training
    (``module.hparams.warmup_fraction`` of the steps warm up, then decay to ``final_lr_fraction``),
    stepped every optimizer step."""
    total = int(module.trainer.estimated_stepping_batches)
    warmup = max(1, int(module.hparams.warmup_fraction * total))
    floor = module.hparams.final_lr_fraction
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, warmup, total, floor))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

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


def warmup_cosine_schedule(optimizer, total_steps: int, warmup_fraction: float, floor: float) -> dict:
    """Lightning's ``lr_scheduler`` entry for :func:`warmup_cosine`, stepped every optimizer step."""
    warmup = max(1, int(warmup_fraction * total_steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, warmup, total_steps, floor)
    )
    return {"scheduler": schedule, "interval": "step"}

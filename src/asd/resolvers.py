"""OmegaConf resolvers of the configs in conf/, registered when any ``asd`` module is imported
(``asd/__init__.py``), so every entry point and every test composes the same configs."""

from __future__ import annotations

import os
import secrets

from omegaconf import ListConfig, OmegaConf


def run_id() -> str:
    """The unique part of run and sweep folder names (conf/hydra/default.yaml): two runs started in
    the same second get their own folders. Cached, so a run resolves it once."""
    return f"{os.getpid()}-{secrets.token_hex(2)}"


def channel_count(channel) -> int:
    """Channels a clip's features hold for ``data.audio.channel`` (an index, a list, or null)."""
    return len(channel) if isinstance(channel, (list, tuple, ListConfig)) else 1


def feature_rows(n_mels: int, channel) -> int:
    """Rows of one log-mel frame: ``n_mels`` per channel, the channels side by side (LogMel.clip)."""
    return n_mels * channel_count(channel)


#: the longest clip of each DCASE year's recordings, which whole-clip networks tile every clip to: ASDKit's
#: table (its dcase2sec), 2026 as 2024-2025 until its recordings say otherwise
YEAR_CLIP_SECONDS = {2020: 11.0, 2021: 10.0, 2022: 10.0, 2023: 18.0, 2024: 12.0, 2025: 12.0, 2026: 12.0}


def year_clip_seconds(year: int) -> float:
    """``model.clip_seconds`` of the multi-branch network for ``data.year``."""
    if year not in YEAR_CLIP_SECONDS:
        raise ValueError(
            f"data.year={year}: no clip length known (years {min(YEAR_CLIP_SECONDS)}-{max(YEAR_CLIP_SECONDS)})"
        )
    return YEAR_CLIP_SECONDS[year]


OmegaConf.register_new_resolver("asd_run_id", run_id, use_cache=True, replace=True)
OmegaConf.register_new_resolver("asd_channel_count", channel_count, replace=True)
OmegaConf.register_new_resolver("asd_feature_rows", feature_rows, replace=True)
OmegaConf.register_new_resolver("asd_year_clip_seconds", year_clip_seconds, replace=True)

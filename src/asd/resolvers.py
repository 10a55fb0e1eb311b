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


OmegaConf.register_new_resolver("asd_run_id", run_id, use_cache=True, replace=True)
OmegaConf.register_new_resolver("asd_channel_count", channel_count, replace=True)
OmegaConf.register_new_resolver("asd_feature_rows", feature_rows, replace=True)

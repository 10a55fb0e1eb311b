"""Hydra callbacks for sweeps."""

from __future__ import annotations

from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

SQLITE_PREFIX = "sqlite:///"


class OptunaStorageFolder(Callback):
    """Creates the folder of the Optuna sweeper's sqlite file before the study opens it
    (sqlite creates a missing file, not a missing folder)."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        storage = OmegaConf.select(config, "hydra.sweeper.storage")
        if isinstance(storage, str) and storage.startswith(SQLITE_PREFIX):
            Path(storage[len(SQLITE_PREFIX) :]).parent.mkdir(parents=True, exist_ok=True)

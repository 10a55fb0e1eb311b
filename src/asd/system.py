"""A trained system saved with its run: everything needed to score new audio without the data.

``<run_dir>/systems/<machines>.pt`` holds the whole LightningModule (frontend weights, the
fitted back-end state — kNN banks, covariances, k-means centres —, the per-section decision
thresholds, the class vocabulary), the feature and audio settings, and a format number.
The resolved Hydra config sits beside it in ``<run_dir>/.hydra/``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from asd.data.audio import AudioConfig
from asd.data.features import FeatureConfig
from asd.models.base import AnomalyDetectionModule

SYSTEM_FORMAT = 1


class RunDirectoryError(ValueError):
    """A run directory that cannot give a system; the message names what is missing."""


@dataclass
class System:
    module: AnomalyDetectionModule
    feature_config: FeatureConfig
    audio_config: AudioConfig

    @property
    def sections(self) -> list[str]:
        return sorted(self.module.decision_thresholds)


def save_system(path: Path, module: AnomalyDetectionModule, datamodule) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer = module._trainer
    module._trainer = None  # the trainer holds loggers and loaders, none of which scoring needs
    try:
        torch.save(
            {
                "format": SYSTEM_FORMAT,
                "module": module,
                "feature_config": asdict(datamodule.feature_config),
                "audio_config": asdict(datamodule.audio_config),
            },
            path,
        )
    finally:
        module._trainer = trainer


def load_systems(run_dir: str | Path) -> dict[str, System]:
    """Every system of a run directory, by name (the machine types it was trained on)."""
    folder = Path(run_dir) / "systems"
    files = sorted(folder.glob("*.pt"))
    if not files:
        raise RunDirectoryError(
            f"{folder}: no saved systems; a run saves them when it finishes testing "
            "(an unfinished run can be resumed, see README 'Resume a killed run')"
        )
    systems = {}
    for file in files:
        try:
            saved = torch.load(file, map_location="cpu", weights_only=False)
        except Exception as err:  # unpickling a foreign or damaged file raises many types
            raise RunDirectoryError(f"{file}: cannot be loaded by this version of asd ({type(err).__name__}: {err})") from err
        if not isinstance(saved, dict) or saved.get("format") != SYSTEM_FORMAT:
            found = saved.get("format") if isinstance(saved, dict) else type(saved).__name__
            raise RunDirectoryError(f"{file}: system format {found!r}, this version of asd reads format {SYSTEM_FORMAT}")
        module = saved["module"].eval()
        systems[file.stem] = System(module, FeatureConfig(**saved["feature_config"]), AudioConfig(**saved["audio_config"]))
    return systems

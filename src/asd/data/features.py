"""Log-mel features (DCASE baseline defaults), frame stacking, and an on-disk feature cache."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torchaudio

from asd.data.audio import AudioConfig, load_audio


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel settings; the defaults are the DCASE 2020-2025 baselines' (librosa, Slaney mel)."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 128
    power: float = 2.0
    f_min: float = 0.0
    f_max: float | None = None


class LogMel(torch.nn.Module):
    """Waveforms (..., time) -> log-mel (..., n_mels, frames), as ``20/power * log10(mel + eps)``."""

    def __init__(self, config: FeatureConfig = FeatureConfig()):
        super().__init__()
        self.config = config
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
            n_mels=config.n_mels,
            power=config.power,
            f_min=config.f_min,
            f_max=config.f_max,
            norm="slaney",
            mel_scale="slaney",
        )

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        mel = self.mel(waveform)
        return 20.0 / self.config.power * torch.log10(mel + torch.finfo(torch.float64).eps)


def stack_frames(log_mel: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(n_mels, T) -> (T - n_frames + 1, n_frames * n_mels), frame-major as in the DCASE baseline."""
    n_mels, total = log_mel.shape[-2:]
    if total < n_frames:
        raise ValueError(f"{total} frames cannot be stacked by {n_frames}")
    windows = log_mel.unfold(-1, n_frames, 1)  # (n_mels, T', n_frames)
    return windows.permute(1, 2, 0).reshape(total - n_frames + 1, n_frames * n_mels)


class FeatureCache:
    """Log-mels on disk, one ``.npy`` per clip, keyed by the feature and audio settings and the file.

    The key hashes the configs with the audio file's resolved path, size and modification time,
    so an edited or replaced file, or a changed setting, misses the cache. Writes go to a
    temporary file in the same folder and are renamed into place, so a killed run never leaves
    a truncated entry behind.
    """

    def __init__(self, directory: str | Path, feature_config: FeatureConfig, audio_config: AudioConfig):
        self.directory = Path(directory)
        self.feature_config = feature_config
        self.audio_config = audio_config
        self._settings = json.dumps(
            {"features": asdict(feature_config), "audio": asdict(audio_config)}, sort_keys=True
        )
        self.hits = 0
        self.misses = 0

    def key(self, audio_path: str | Path) -> str:
        path = Path(audio_path).resolve()
        stat = path.stat()
        text = f"{self._settings}|{path}|{stat.st_size}|{stat.st_mtime_ns}"
        return hashlib.sha256(text.encode()).hexdigest()

    def entry_path(self, audio_path: str | Path) -> Path:
        key = self.key(audio_path)
        return self.directory / key[:2] / f"{key}.npy"

    def load(self, audio_path: str | Path) -> np.ndarray | None:
        entry = self.entry_path(audio_path)
        if not entry.is_file():
            return None
        try:
            return np.load(entry)
        except (OSError, ValueError):
            return None  # unreadable entry: recompute and overwrite it

    def store(self, audio_path: str | Path, features: np.ndarray) -> None:
        entry = self.entry_path(audio_path)
        entry.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                np.save(file, features)
            os.replace(temporary, entry)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def extract_log_mels(
    paths: Iterable[str | Path],
    feature_config: FeatureConfig,
    audio_config: AudioConfig,
    cache: FeatureCache | None = None,
    batch_size: int = 64,
) -> list[np.ndarray]:
    """Log-mels (n_mels, frames) for each path, from the cache where possible.

    Missing clips are read and transformed in batches of equal-length waveforms, which is
    what makes extraction fast on many short clips.
    """
    paths = [Path(p) for p in paths]
    results: list[np.ndarray | None] = [None] * len(paths)
    pending: list[int] = []
    for i, path in enumerate(paths):
        cached = cache.load(path) if cache is not None else None
        if cached is None:
            pending.append(i)
        else:
            results[i] = cached
    if cache is not None:
        cache.hits += len(paths) - len(pending)
        cache.misses += len(pending)
    log_mel = LogMel(feature_config)
    for start in range(0, len(pending), batch_size):
        chunk = pending[start : start + batch_size]
        by_length: dict[int, list[tuple[int, torch.Tensor]]] = defaultdict(list)
        for i in chunk:
            waveform = load_audio(paths[i], audio_config)
            by_length[waveform.numel()].append((i, waveform))
        for group in by_length.values():
            with torch.no_grad():
                batch = log_mel(torch.stack([w for _, w in group]))
            for (i, _), features in zip(group, batch.numpy()):
                results[i] = features
                if cache is not None:
                    cache.store(paths[i], features)
    return results  # type: ignore[return-value]

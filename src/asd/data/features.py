"""Log-mel features (DCASE baseline defaults), frame stacking, and an on-disk feature cache."""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from asd.data.audio import AudioConfig, load_audio
from asd.files import remove_orphaned_temporaries, write_atomically


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


#: Slaney's mel scale: 200/3 Hz per mel up to 1 kHz (15 mel), then 27 mel per factor 6.4
SLANEY_LINEAR_HZ_PER_MEL = 200.0 / 3
SLANEY_BREAK_HZ = 1000.0
SLANEY_BREAK_MEL = SLANEY_BREAK_HZ / SLANEY_LINEAR_HZ_PER_MEL
SLANEY_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / SLANEY_LINEAR_HZ_PER_MEL
    above = hz >= SLANEY_BREAK_HZ
    return np.where(above, SLANEY_BREAK_MEL + np.log(np.maximum(hz, 1e-12) / SLANEY_BREAK_HZ) / SLANEY_LOG_STEP, mel)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = SLANEY_LINEAR_HZ_PER_MEL * mel
    above = mel >= SLANEY_BREAK_MEL
    return np.where(above, SLANEY_BREAK_HZ * np.exp(SLANEY_LOG_STEP * (mel - SLANEY_BREAK_MEL)), hz)


def mel_filter_bank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters on Slaney's mel scale, each scaled to unit area
    (``norm="slaney"``): librosa's ``filters.mel`` in closed form (tested equal to it), so the
    features need neither librosa's dependencies nor torchaudio, whose builds pin one torch version."""
    f_max = sample_rate / 2 if f_max is None else f_max
    fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    widths = np.diff(edges)
    distance = edges[:, None] - fft_hz[None, :]
    rising = -distance[:-2] / widths[:-1, None]
    falling = distance[2:] / widths[1:, None]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    return filters * (2.0 / (edges[2:] - edges[:-2]))[:, None]


class LogMel(torch.nn.Module):
    """Waveforms (..., time) -> log-mel (..., n_mels, frames), as ``20/power * log10(max(mel, eps))``.

    The DCASE baselines' librosa log-mel on ``torch.stft``: a periodic Hann window of ``n_fft``,
    centred frames with zero padding at the clip's ends (librosa's ``pad_mode="constant"``), Slaney
    mel filterbank (:func:`mel_filter_bank`); the power spectrum is taken as re² + im² of the complex
    STFT, which costs a third of ``abs().pow(2)`` (the square root of ``abs`` was the largest single
    cost of feature extraction, see experiments/benchmarks.md).
    """

    def __init__(self, config: FeatureConfig = FeatureConfig()):
        super().__init__()
        self.config = config
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        filters = mel_filter_bank(config.sample_rate, config.n_fft, config.n_mels, config.f_min, config.f_max)
        self.register_buffer("filters", torch.from_numpy(filters).float(), persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        flat = waveform.reshape(-1, waveform.shape[-1])
        spectrum = torch.stft(
            flat,
            self.config.n_fft,
            self.config.hop_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        spectrum = spectrum.reshape(*waveform.shape[:-1], *spectrum.shape[-2:])
        energy = spectrum.real.square() + spectrum.imag.square()
        if self.config.power != 2.0:
            energy = energy.pow(self.config.power / 2.0)
        mel = torch.matmul(self.filters, energy)
        return 20.0 / self.config.power * torch.log10(mel.clamp(min=torch.finfo(torch.float64).eps))

    def clips(self, waveforms: torch.Tensor) -> torch.Tensor:
        """A batch of clips' features: (B, time) -> (B, n_mels, frames); (B, channels, time) ->
        (B, channels * n_mels, frames), each channel's log-mel below the next one's, so every
        frontend reads a multi-channel clip as one taller log-mel (frame models: near and far
        features side by side)."""
        return self(waveforms).flatten(1, -2)

    def clip(self, waveform: torch.Tensor) -> torch.Tensor:
        """One clip's features, as :meth:`clips`: (time,) or (channels, time) -> (rows, frames)."""
        return self.clips(waveform.unsqueeze(0))[0]


def stack_frames(log_mel: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(n_mels, T) -> (T - n_frames + 1, n_frames * n_mels), frame-major as in the DCASE baseline."""
    n_mels, total = log_mel.shape[-2:]
    if total < n_frames:
        raise ValueError(f"{total} frames cannot be stacked by {n_frames}")
    windows = log_mel.unfold(-1, n_frames, 1)  # (n_mels, T', n_frames)
    return windows.permute(1, 2, 0).reshape(total - n_frames + 1, n_frames * n_mels)


class FeatureCache:
    """Log-mels on disk, one entry per list of clips read together (the DataModule reads one
    machine type at a time), keyed by the feature and audio settings and every clip's file.

    A clip's key hashes the configs with the audio file's resolved path, size and modification
    time; a list's key hashes its clips' keys, so an edited, added or replaced file, or a changed
    setting, misses the cache. The entry is ``<hash>.npy``, all the list's log-mels side by side
    in one (n_mels, frames) array, with ``<hash>.frames.npy``, each clip's frame count: a warm
    start is two file reads, however many clips (one small file per clip cost more to open and
    parse than to read). Writes go to a temporary file in the same folder and are renamed into
    place, so a killed run never leaves a truncated entry behind.
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
        remove_orphaned_temporaries(self.directory)

    def key(self, audio_path: str | Path) -> str:
        path = os.path.realpath(audio_path)  # os.path rather than pathlib: a third of the cost per clip
        stat = os.stat(path)
        text = f"{self._settings}|{path}|{stat.st_size}|{stat.st_mtime_ns}"
        return hashlib.sha256(text.encode()).hexdigest()

    def _entries(self, keys: list[str]) -> tuple[Path, Path]:
        name = hashlib.sha256("\n".join(keys).encode()).hexdigest()
        return self.directory / name[:2] / f"{name}.npy", self.directory / name[:2] / f"{name}.frames.npy"

    def load(self, keys: list[str]) -> list[np.ndarray] | None:
        """The log-mels of these clips, in order, if they were stored together before."""
        features_entry, frames_entry = self._entries(keys)
        if not (features_entry.is_file() and frames_entry.is_file()):
            return None
        try:
            features, frames = np.load(features_entry), np.load(frames_entry)
        except (OSError, ValueError):
            return None
        if frames.ndim != 1 or len(frames) != len(keys) or features.ndim != 2 or frames.sum() != features.shape[-1]:
            return None  # written by a run killed between the two files, or damaged: recompute
        return np.split(features, np.cumsum(frames)[:-1], axis=-1)

    def store(self, keys: list[str], log_mels: list[np.ndarray]) -> None:
        features_entry, frames_entry = self._entries(keys)
        features = np.concatenate(log_mels, axis=-1)
        write_atomically(features_entry, lambda file: np.save(file, features))
        write_atomically(frames_entry, lambda file: np.save(file, np.array([m.shape[-1] for m in log_mels])))


def extract_log_mels(
    paths: Iterable[str | Path],
    feature_config: FeatureConfig,
    audio_config: AudioConfig,
    cache: FeatureCache | None = None,
    batch_size: int = 64,
) -> list[np.ndarray]:
    """Log-mels (n_mels, frames; see :meth:`LogMel.clips` for several channels) for each path, from the cache when the same list was read before.

    Otherwise the clips are read and transformed in batches of equal-length waveforms, and the
    list is cached as one entry.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        return []
    keys = [cache.key(p) for p in paths] if cache is not None else []
    if cache is not None:
        stored = cache.load(keys)
        if stored is not None:
            cache.hits += len(paths)
            return stored
        cache.misses += len(paths)
    results: list[np.ndarray | None] = [None] * len(paths)
    log_mel = LogMel(feature_config)
    for start in range(0, len(paths), batch_size):
        by_length: dict[int, list[tuple[int, torch.Tensor]]] = defaultdict(list)
        for i in range(start, min(start + batch_size, len(paths))):
            waveform = load_audio(paths[i], audio_config)
            by_length[waveform.shape[-1]].append((i, waveform))
        for group in by_length.values():
            with torch.no_grad():
                batch = log_mel.clips(torch.stack([w for _, w in group]))
            for (i, _), features in zip(group, batch.numpy()):
                results[i] = features
    if cache is not None:
        cache.store(keys, results)  # type: ignore[arg-type]
    return results  # type: ignore[return-value]

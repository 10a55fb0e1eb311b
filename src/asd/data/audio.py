"""Audio reading with the checks DCASE data needs: the expected channels and rate, non-empty, readable."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf
import torch


class AudioError(ValueError):
    """An audio file that cannot be used as it is; the message names the file."""


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int = 16000
    # None: a multi-channel file is an error; an int: use that channel (0-based); a list: use those
    # channels, in that order (DCASE 2026: [0, 1] = near and far microphone).
    channel: int | tuple[int, ...] | list[int] | None = None
    # Resample files at another rate instead of rejecting them.
    resample: bool = False
    # Shorter clips cannot give one analysis frame; they are errors, not silently padded.
    min_duration_s: float = 0.064

    def __post_init__(self):
        def is_index(value) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value >= 0

        if self.channel is None or is_index(self.channel):
            return
        listed = not isinstance(self.channel, (str, bytes)) and hasattr(self.channel, "__iter__")
        channels = tuple(self.channel) if listed else ()  # a config's ListConfig becomes plain data
        if not channels or not all(is_index(c) for c in channels):
            raise ValueError(
                f"data.audio.channel={self.channel!r}: give a channel index (0 = the first, in DCASE 2026 the left "
                "near microphone; 1 = the second) or a list of them, e.g. [0,1]"
            )
        if len(set(channels)) != len(channels):
            raise ValueError(f"data.audio.channel={list(channels)}: give distinct channel indices")
        object.__setattr__(self, "channel", channels)

    @property
    def channel_count(self) -> int:
        """Channels per waveform: 1, or the length of a ``channel`` list."""
        return len(self.channel) if isinstance(self.channel, tuple) else 1


def check_wav_complete(path: Path) -> None:
    """A WAV whose ``data`` chunk is shorter than its header declares (a copy or download cut off)
    is an error: libsndfile would read the samples that are there without a word."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        header = file.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return  # not RIFF/WAVE (RF64, another container): soundfile judges it
        while True:
            chunk = file.read(8)
            if len(chunk) < 8:
                return
            chunk_id, declared = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"data":
                available = size - file.tell()
                # 0 and 0xFFFFFFFF are placeholders of streaming writers, not sizes
                if declared not in (0, 0xFFFFFFFF) and declared > available:
                    raise AudioError(
                        f"{path}: truncated: its header declares {declared} bytes of audio, the file holds {available}"
                    )
                return
            file.seek(declared + (declared & 1), 1)  # chunks are padded to an even size


def resample(waveforms: torch.Tensor, from_rate: int, to_rate: int) -> torch.Tensor:
    """Waveforms (..., time) at ``from_rate`` to ``to_rate``, on the same device and dtype: scipy's
    polyphase resampler (a Kaiser-windowed low-pass at the lower Nyquist rate), in float64."""
    if from_rate == to_rate:
        return waveforms
    divisor = math.gcd(int(from_rate), int(to_rate))
    samples = waveforms.detach().cpu().double().numpy()
    resampled = scipy.signal.resample_poly(samples, to_rate // divisor, from_rate // divisor, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(resampled)).to(device=waveforms.device, dtype=waveforms.dtype)


def load_audio(path: str | Path, config: AudioConfig = AudioConfig()) -> torch.Tensor:
    """Read a clip as a float32 waveform at ``config.sample_rate``: (time,) for one channel,
    (channels, time) where ``config.channel`` is a list."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    if path.suffix.lower() == ".wav":
        check_wav_complete(path)
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"{path}: cannot be read as audio ({err})") from err
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no samples")
    if samples.shape[1] > 1:
        if config.channel is None:
            raise AudioError(
                f"{path}: has {samples.shape[1]} channels, expected mono; set data.audio.channel=<index> "
                "to use one channel, or a list of them (DCASE 2026 stereo files: data=dcase2026)"
            )
    wanted = list(config.channel) if isinstance(config.channel, tuple) else [config.channel or 0]
    missing = [c for c in wanted if not 0 <= c < samples.shape[1]]
    if missing:
        raise AudioError(f"{path}: has {samples.shape[1]} channel(s), no channel {missing[0]} (data.audio.channel)")
    selected = samples[:, wanted].T if isinstance(config.channel, tuple) else samples[:, wanted[0]]
    # a float64 sum of float32 samples cannot overflow: it is finite exactly when every sample is
    if not math.isfinite(float(selected.sum(dtype=np.float64))):
        raise AudioError(f"{path}: holds NaN or infinite samples")
    waveform = torch.from_numpy(np.ascontiguousarray(selected))
    if rate != config.sample_rate:
        if not config.resample:
            raise AudioError(
                f"{path}: sample rate {rate} Hz, expected {config.sample_rate} Hz; "
                "set data.audio.resample=true to resample"
            )
        waveform = resample(waveform, rate, config.sample_rate)
    if waveform.shape[-1] < config.min_duration_s * config.sample_rate:
        raise AudioError(
            f"{path}: {waveform.shape[-1] / config.sample_rate:.3f} s long, "
            f"shorter than the minimum of {config.min_duration_s} s"
        )
    return waveform

"""Log-mel extraction throughput: the DCASE baseline's per-file librosa path vs ours.

    python benchmarks/features.py [--clips 200] [--seconds 10]

(a) classic: librosa.load + librosa.feature.melspectrogram, one file at a time (the DCASE
    2020-2025 baseline's ``file_to_vectors``); (b) ours, batched torchaudio with a cold cache
    (features computed and written); (c) ours with the cache warm. Prints clips/s, ratios and
    peak memory (max RSS of this process). Needs librosa: ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asd.data.audio import AudioConfig
from asd.data.features import FeatureCache, FeatureConfig, extract_log_mels


def write_clips(directory: Path, count: int, seconds: float, rate: int = 16000) -> list[Path]:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    paths = []
    for i in range(count):
        waveform = 0.1 * np.sin(2 * np.pi * rng.uniform(80, 400) * t) + 0.05 * rng.standard_normal(t.size)
        path = directory / f"section_00_source_train_normal_{i:04d}_a_1.wav"
        sf.write(path, waveform.astype(np.float32), rate, subtype="PCM_16")
        paths.append(path)
    return paths


def classic(paths: list[Path], config: FeatureConfig) -> None:
    import librosa

    for path in paths:
        waveform, rate = librosa.load(path, sr=None, mono=False)
        mel = librosa.feature.melspectrogram(
            y=waveform, sr=rate, n_fft=config.n_fft, hop_length=config.hop_length, n_mels=config.n_mels, power=config.power
        )
        20.0 / config.power * np.log10(mel + sys.float_info.epsilon)


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    config, audio = FeatureConfig(), AudioConfig()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_clips(Path(tmp), args.clips, args.seconds)
        cache = FeatureCache(Path(tmp) / "cache", config, audio)
        classic(paths[:2], config)  # warm-up: librosa's first call compiles with numba
        a = timed(lambda: classic(paths, config))
        b = timed(lambda: extract_log_mels(paths, config, audio, cache))
        c = timed(lambda: extract_log_mels(paths, config, audio, cache))
    rate = lambda seconds: args.clips / seconds  # noqa: E731
    print(f"{args.clips} clips of {args.seconds:g} s at 16 kHz, torch threads: {torch.get_num_threads()}")
    print(f"(a) classic per-file librosa : {rate(a):8.1f} clips/s")
    print(f"(b) ours, batched, cold cache: {rate(b):8.1f} clips/s  ({a / b:5.1f}x (a))")
    print(f"(c) ours, warm cache         : {rate(c):8.1f} clips/s  ({a / c:5.1f}x (a))")
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()

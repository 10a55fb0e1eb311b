"""Log-mel extraction throughput: the DCASE baseline's per-file librosa path vs ours.

    python benchmarks/features.py [--clips 200] [--seconds 10] [--repeats 3] [--profile]

(a) classic: librosa.load + librosa.feature.melspectrogram, one file at a time (the DCASE
    2020-2025 baseline's ``file_to_vectors``); (b) ours, batched torch.stft log-mels with a cold cache
    (features computed and written); (c) ours with the cache warm. Prints clips/s, ratios and
    peak memory (max RSS of this process). Needs librosa: ``pip install -e ".[bench]"``.
    ``--profile`` adds torch.profiler's table of the operators that (b) spends its time in.
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
            y=waveform,
            sr=rate,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
            n_mels=config.n_mels,
            power=config.power,
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
    parser.add_argument("--repeats", type=int, default=3, help="each figure is the best of this many runs")
    parser.add_argument("--profile", action="store_true", help="profile (b) with torch.profiler")
    args = parser.parse_args()
    config, audio = FeatureConfig(), AudioConfig()
    a = b = c = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_clips(Path(tmp), args.clips, args.seconds)
        classic(paths[:2], config)  # warm-up: librosa's first call compiles with numba
        # best of --repeats: the shared machine's noise only ever slows a run down
        for repeat in range(args.repeats):
            cache = FeatureCache(Path(tmp) / f"cache{repeat}", config, audio)
            a = min(a, timed(lambda: classic(paths, config)))
            b = min(b, timed(lambda cache=cache: extract_log_mels(paths, config, audio, cache)))  # cold
            c = min(c, timed(lambda cache=cache: extract_log_mels(paths, config, audio, cache)))  # warm
    rate = lambda seconds: args.clips / seconds  # noqa: E731
    print(
        f"{args.clips} clips of {args.seconds:g} s at 16 kHz, torch threads: {torch.get_num_threads()}, best of {args.repeats}"
    )
    print(f"(a) classic per-file librosa : {rate(a):8.1f} clips/s")
    print(f"(b) ours, batched, cold cache: {rate(b):8.1f} clips/s  ({a / b:5.1f}x (a))")
    print(f"(c) ours, warm cache         : {rate(c):8.1f} clips/s  ({a / c:5.1f}x (a))")
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if args.profile:
        profile_cold_extraction(args)


def profile_cold_extraction(args) -> None:
    from torch.profiler import ProfilerActivity, profile, record_function

    config, audio = FeatureConfig(), AudioConfig()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_clips(Path(tmp), args.clips, args.seconds)
        cache = FeatureCache(Path(tmp) / "cache", config, audio)
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            with record_function("extract_log_mels (cold)"):
                extract_log_mels(paths, config, audio, cache)
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from asd.data.audio import AudioConfig, AudioError, load_audio
from asd.data.features import FeatureCache, FeatureConfig, LogMel, extract_log_mels, mel_filter_bank, stack_frames


def _tone(seconds=1.0, rate=16000, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


def test_reads_mono_float32(tmp_path):
    sf.write(tmp_path / "a.wav", _tone(), 16000, subtype="PCM_16")
    waveform = load_audio(tmp_path / "a.wav")
    assert waveform.dtype == torch.float32 and waveform.shape == (16000,)
    assert abs(float(waveform.abs().max()) - 0.3) < 1e-3


def _truncated(path):
    """A 1 s 16-bit clip whose last 10,000 bytes were lost (an interrupted copy): the header still says 32,000."""
    sf.write(path, _tone(), 16000, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:-10000])


@pytest.mark.parametrize(
    "write, config, message",
    [
        (lambda p: p.write_bytes(b"RIFF\x00\x00garbage"), AudioConfig(), "cannot be read as audio"),
        (lambda p: sf.write(p, np.zeros((0,), dtype=np.float32), 16000), AudioConfig(), "no samples"),
        (lambda p: sf.write(p, _tone(0.01), 16000), AudioConfig(), "shorter than the minimum"),
        (lambda p: sf.write(p, _tone(channels=2), 16000), AudioConfig(), "2 channels, expected mono"),
        (lambda p: sf.write(p, _tone(channels=2), 16000), AudioConfig(channel=3), "no channel 3"),
        (lambda p: sf.write(p, _tone(rate=44100), 44100), AudioConfig(), "sample rate 44100 Hz, expected 16000"),
        (_truncated, AudioConfig(), "truncated: its header declares 32000 bytes of audio, the file holds 22000"),
        (
            lambda p: sf.write(p, np.where(_tone() > 0.29, np.nan, _tone()).astype(np.float32), 16000, subtype="FLOAT"),
            AudioConfig(),
            "NaN or infinite samples",
        ),
    ],
    ids=["corrupt", "empty", "short", "stereo", "bad-channel", "wrong-rate", "truncated", "nan"],
)
def test_bad_audio_is_a_clear_error_naming_the_file(tmp_path, write, config, message):
    path = tmp_path / "section_00_source_train_normal_0000_a_1.wav"
    write(path)
    with pytest.raises(AudioError, match=message) as err:
        load_audio(path, config)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("channel", ["left", "0", -1, True, [0, "right"], [], 1.5])
def test_a_channel_that_is_not_an_index_is_a_clear_error(channel, make_cfg):
    from hydra.errors import InstantiationException

    from asd.train import train

    with pytest.raises(ValueError, match=r"data.audio.channel=.*give a channel index \(0 = the first"):
        AudioConfig(channel=channel)
    if channel == "left":  # as a user meets it: on the command line, before any data is read
        with pytest.raises(InstantiationException, match="data.audio.channel='left': give a channel index"):
            train(make_cfg("machine=ToyRotor", "data.audio.channel=left"))
    assert AudioConfig(channel=[1, 0]).channel == (1, 0) and AudioConfig(channel=1).channel == 1


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such audio file"):
        load_audio(tmp_path / "nope.wav")


def test_channel_selection_and_resampling_when_configured(tmp_path):
    stereo = _tone(channels=2)
    stereo[:, 1] = 0.0
    sf.write(tmp_path / "s.wav", stereo, 16000)
    assert float(load_audio(tmp_path / "s.wav", AudioConfig(channel=1)).abs().max()) == 0.0
    assert float(load_audio(tmp_path / "s.wav", AudioConfig(channel=0)).abs().max()) > 0.29
    sf.write(tmp_path / "r.wav", _tone(rate=32000), 32000)
    assert load_audio(tmp_path / "r.wav", AudioConfig(resample=True)).shape == (16000,)


@pytest.mark.parametrize("from_rate", [44100, 48000, 32000, 8000])
def test_resampling_keeps_a_tone_and_removes_what_the_new_rate_cannot_hold(from_rate):
    from asd.data.audio import resample

    def tone(hz, rate, seconds=1.0):
        return torch.from_numpy(np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate).astype(np.float32))

    resampled = resample(tone(1000, from_rate), from_rate, 16000)
    assert resampled.shape == (16000,) and resampled.dtype == torch.float32
    inner = slice(800, -800)  # away from the filter's edge effects
    torch.testing.assert_close(resampled[inner], tone(1000, 16000)[inner], atol=2e-3, rtol=0)
    if from_rate > 16000:  # 11 kHz is above the new Nyquist rate: it must not fold down to 5 kHz
        aliased = resample(tone(11000, from_rate), from_rate, 16000)
        assert float(aliased[inner].pow(2).mean()) < 1e-4 * 0.5
    same = tone(1000, 16000)
    assert resample(same, 16000, 16000) is same


@pytest.mark.parametrize(
    "sample_rate, n_fft, hop_length, n_mels, f_min, f_max",
    [(16000, 1024, 512, 128, 0.0, None), (44100, 2048, 1024, 128, 50.0, None), (48000, 4096, 1024, 64, 20.0, 16000.0)],
)
def test_mel_filter_bank_is_librosas(sample_rate, n_fft, hop_length, n_mels, f_min, f_max):
    import librosa

    ours = mel_filter_bank(sample_rate, n_fft, n_mels, f_min, f_max)
    theirs = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-7 * theirs.max())


@pytest.mark.parametrize(
    "sample_rate, n_fft, hop_length", [(16000, 1024, 512), (44100, 2048, 1024), (48000, 2048, 1024)]
)
def test_log_mel_is_the_baselines_librosa_log_mel(sample_rate, n_fft, hop_length):
    """The official baseline's features (librosa.feature.melspectrogram, then 20/power * log10(max(., eps)))
    at 16 kHz and at the 44.1 and 48 kHz rates of real recordings."""
    import librosa

    rng = np.random.default_rng(0)
    t = np.arange(2 * sample_rate) / sample_rate
    waveform = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.normal(size=t.shape)).astype(np.float32)
    for power in (2.0, 1.0):
        config = FeatureConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, power=power)
        ours = LogMel(config)(torch.from_numpy(waveform)).numpy()
        mel = librosa.feature.melspectrogram(
            y=waveform, sr=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=128, power=power, pad_mode="constant"
        )
        theirs = 20.0 / power * np.log10(np.maximum(mel, np.finfo(np.float64).eps))
        assert ours.shape == theirs.shape == (128, len(waveform) // hop_length + 1)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-3)  # dB; float32 STFTs
        # the baseline pads the clip's ends with zeros; reflecting them (a common default) changes the first frame
        reflected = librosa.feature.melspectrogram(
            y=waveform, sr=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=128, power=power, pad_mode="reflect"
        )
        assert np.abs(ours[:, 0] - 20.0 / power * np.log10(np.maximum(reflected[:, 0], 1e-16))).max() > 0.1
    # the 440 Hz tone lands in the mel band whose filter weighs 440 Hz most, not elsewhere
    tone_band = mel_filter_bank(sample_rate, n_fft, 128)[:, round(440 * n_fft / sample_rate)].argmax()
    assert abs(int(ours.mean(axis=1).argmax()) - int(tone_band)) <= 1


def test_a_batch_and_its_clips_give_the_same_features():
    waveforms = torch.from_numpy(np.random.default_rng(1).normal(size=(3, 2, 8000)).astype(np.float32))
    log_mel = LogMel(FeatureConfig())
    batch = log_mel.clips(waveforms)
    assert batch.shape == (3, 2 * 128, 8000 // 512 + 1)
    for clip, features in zip(waveforms, batch):
        torch.testing.assert_close(log_mel.clip(clip), features)


def test_stack_frames_is_frame_major_like_the_baseline():
    log_mel = torch.arange(3 * 6, dtype=torch.float32).reshape(3, 6)  # 3 mels, 6 frames
    vectors = stack_frames(log_mel, 5)
    assert vectors.shape == (2, 15)
    # baseline: vectors[:, n_mels*t : n_mels*(t+1)] = log_mel[:, t : t + n_vectors].T
    for t in range(5):
        assert torch.equal(vectors[:, 3 * t : 3 * (t + 1)], log_mel[:, t : t + 2].T)
    with pytest.raises(ValueError):
        stack_frames(log_mel[:, :4], 5)


def test_cache_misses_then_hits_and_notices_changed_files(tmp_path):
    for i in range(3):
        sf.write(tmp_path / f"{i}.wav", _tone(), 16000)
    paths = [tmp_path / f"{i}.wav" for i in range(3)]
    cache = FeatureCache(tmp_path / "cache", FeatureConfig(), AudioConfig())
    first = extract_log_mels(paths, FeatureConfig(), AudioConfig(), cache)
    assert (cache.hits, cache.misses) == (0, 3)
    second = extract_log_mels(paths, FeatureConfig(), AudioConfig(), cache)
    assert (cache.hits, cache.misses) == (3, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    # a rewritten file (new size/mtime), another selection and a changed setting all miss
    sf.write(paths[0], _tone(1.5), 16000)
    os.utime(paths[0], ns=(1, 1))
    changed = extract_log_mels(paths, FeatureConfig(), AudioConfig(), cache)
    assert (cache.hits, cache.misses) == (3, 6) and changed[0].shape != first[0].shape
    extract_log_mels(paths[1:], FeatureConfig(), AudioConfig(), cache)
    assert cache.misses == 8
    other = FeatureCache(tmp_path / "cache", FeatureConfig(n_mels=64), AudioConfig())
    assert extract_log_mels(paths[:1], FeatureConfig(n_mels=64), AudioConfig(), other)[0].shape[0] == 64
    assert other.misses == 1


def test_a_warm_cache_reads_two_files_for_any_number_of_clips(tmp_path, monkeypatch):
    for i in range(4):
        sf.write(tmp_path / f"{i}.wav", _tone(1.0 + 0.25 * i), 16000)  # different lengths
    paths = [tmp_path / f"{i}.wav" for i in range(4)]
    cache = FeatureCache(tmp_path / "cache", FeatureConfig(), AudioConfig())
    cold = extract_log_mels(paths, FeatureConfig(), AudioConfig(), cache)
    loads = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: loads.append(a[0]) or real_load(*a, **k))
    warm = extract_log_mels(paths, FeatureConfig(), AudioConfig(), cache)
    assert len(loads) == 2  # all log-mels in one array, and the clips' frame counts
    assert [m.shape for m in warm] == [m.shape for m in cold] and all(np.array_equal(a, b) for a, b in zip(cold, warm))
    # a damaged entry is not trusted: the clips are extracted again
    for entry in (tmp_path / "cache").rglob("*.frames.npy"):
        entry.write_bytes(b"damaged")
    again = extract_log_mels(paths, FeatureConfig(), AudioConfig(), cache)
    assert all(np.array_equal(a, b) for a, b in zip(cold, again)) and cache.misses == 8


def test_cache_writes_are_atomic(tmp_path, monkeypatch):
    sf.write(tmp_path / "a.wav", _tone(), 16000)
    cache = FeatureCache(tmp_path / "cache", FeatureConfig(), AudioConfig())
    keys = [cache.key(tmp_path / "a.wav")]

    def crash(file, array):
        file.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        cache.store(keys, [np.zeros((2, 2))])
    monkeypatch.undo()
    assert cache.load(keys) is None
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []  # no entry, no temp file left
    cache.store(keys, [np.ones((2, 2))])
    assert np.array_equal(cache.load(keys)[0], np.ones((2, 2)))


def test_a_temporary_file_left_by_a_killed_extraction_is_cleaned_up(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from asd.data.features import FeatureCache

    cache_dir = tmp_path / "cache"
    # a real process killed while writing a cache entry: no exception handler runs, its .tmp stays
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"""
import time
from pathlib import Path
from asd.files import write_atomically
def slow(file):
    file.write(b"partial"); file.flush(); print("writing", flush=True); time.sleep(60)
write_atomically(Path({str(cache_dir / "ab" / "entry.npy")!r}), slow)
""",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    (orphan,) = (cache_dir / "ab").glob("*.tmp")
    live = cache_dir / "ab" / f"tmpLIVE.{os.getpid()}.tmp"  # a write in progress in a live process
    live.write_bytes(b"in progress")
    FeatureCache(cache_dir, FeatureConfig(), AudioConfig())
    assert orphan.exists()  # too fresh to judge: another machine may still be writing it
    hour_ago = time.time() - 3600
    for path in (orphan, live):
        os.utime(path, (hour_ago, hour_ago))
    FeatureCache(cache_dir, FeatureConfig(), AudioConfig())
    assert not orphan.exists() and live.exists()
    assert not (cache_dir / "ab" / "entry.npy").exists()

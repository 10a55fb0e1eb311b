"""DCASE 2026: stereo files (near and far microphone), data=dcase2026, one or both channels."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from conftest import TINY_MFN_OVERRIDES
from hydra.errors import InstantiationException

from asd.data.audio import AudioConfig, AudioError, load_audio
from asd.data.synthetic import generate
from asd.predict import score_files
from asd.system import load_systems
from asd.train import train

MACHINE = "ToyHum"


@pytest.fixture(scope="session")
def stereo_root(tmp_path_factory) -> Path:
    """The synthetic dataset written as DCASE 2026 stereo files, once per test session."""
    return generate(tmp_path_factory.mktemp("stereo") / "dcase2026", seed=0, channels=2)


def test_stereo_files_hold_the_mono_clip_near_and_a_noisier_far_copy(stereo_root, synthetic_root):
    stereo_files = sorted((stereo_root / "dev_data" / "raw" / MACHINE / "train").glob("*.wav"))
    assert len(stereo_files) == 100
    stereo, rate = sf.read(stereo_files[0])
    mono, _ = sf.read(synthetic_root / "dev_data" / "raw" / MACHINE / "train" / stereo_files[0].name)
    assert stereo.shape == (32000, 2) and rate == 16000
    assert np.array_equal(stereo[:, 0], mono)  # the near microphone is earlier years' recording
    near, far = stereo[:, 0], stereo[:, 1]
    machine_at_far = near[:-48] / 3.0  # a third of the level, 3 ms later
    noise = far[48:] - machine_at_far
    # room noise about as loud as the machine at the far microphone (0 dB), none of it near
    assert 0.7 < noise.std() / machine_at_far.std() < 1.4


def test_channel_selection_of_a_stereo_file(stereo_root, synthetic_root):
    path = next((stereo_root / "dev_data" / "raw" / MACHINE / "test").glob("*.wav"))
    raw, _ = sf.read(path, dtype="float32")
    with pytest.raises(AudioError, match=f"{path}.*2 channels.*data.audio.channel"):
        load_audio(path, AudioConfig())
    assert torch.equal(load_audio(path, AudioConfig(channel=1)), torch.from_numpy(raw[:, 1]))
    both = load_audio(path, AudioConfig(channel=[1, 0]))  # a config's list, in the order given
    assert both.shape == (2, 32000) and torch.equal(both, torch.from_numpy(raw[:, [1, 0]].T.copy()))
    with pytest.raises(AudioError, match=f"{path}.*no channel 2"):
        load_audio(path, AudioConfig(channel=[0, 2]))
    mono = next((synthetic_root / "dev_data" / "raw" / MACHINE / "test").glob("*.wav"))
    with pytest.raises(AudioError, match=f"{mono}.*1 channel.*no channel 1"):
        load_audio(mono, AudioConfig(channel=[0, 1]))
    with pytest.raises(ValueError, match="distinct"):
        AudioConfig(channel=[0, 0])


def test_dcase2026_trains_on_the_near_channel_and_on_both(make_cfg, stereo_root, tmp_path):
    common = ("data=dcase2026", f"data.root={stereo_root}", "data.synthetic.seed=0", f"machine={MACHINE}")
    near_cfg = make_cfg(*common, "trainer.max_epochs=2", "backend=selective_mahalanobis")
    near_metrics, _ = train(near_cfg)
    assert near_cfg.data.audio.channel == 0  # the default: the near microphone, as the official baseline

    both_cfg = make_cfg(*common, "trainer.max_epochs=2", "backend=selective_mahalanobis", "data.audio.channel=[0,1]")
    both_cfg.paths.output_dir = str(tmp_path / "both")
    both_metrics, _ = train(both_cfg)
    for metrics in (near_metrics, both_metrics):
        assert 0.0 <= metrics["official_score"] <= 1.0
    assert near_metrics["official_score"] != both_metrics["official_score"]

    # the AE reads the near and far log-mels side by side: 5 frames x 2 x 128 values
    system = load_systems(both_cfg.paths.output_dir)[MACHINE]
    assert system.module.autoencoder.encoder[0].in_features == 1280
    assert system.module.backend.block_size == 256
    near_system = load_systems(near_cfg.paths.output_dir)[MACHINE]
    assert near_system.module.autoencoder.encoder[0].in_features == 640
    # asd.predict reads the stereo files as the run did and reproduces its scores
    submitted = pd.read_csv(
        Path(both_cfg.paths.output_dir) / "submission" / f"anomaly_score_{MACHINE}_section_00_test.csv", header=None
    )
    files = sorted((stereo_root / "dev_data" / "raw" / MACHINE / "test").glob("*.wav"))
    rows = pd.DataFrame(score_files(system, f"{MACHINE}/section_00", files))
    rows["name"] = rows["file"].map(lambda f: Path(f).name)
    merged = rows.merge(submitted, left_on="name", right_on=0)
    assert len(merged) == 100 and np.allclose(merged["anomaly_score"], merged[1], rtol=1e-6)


def test_both_channels_are_two_image_channels_of_the_clip_model(make_cfg, stereo_root):
    cfg = make_cfg(
        "data=dcase2026",
        f"data.root={stereo_root}",
        "data.synthetic.seed=0",
        f"machine={MACHINE}",
        "model=mfn_arcface",
        "model.use_tgram=true",
        "model.shift_classes=[6]",
        "trainer.max_epochs=1",
        "data.audio.channel=[0,1]",
        *TINY_MFN_OVERRIDES,
    )
    metrics, _ = train(cfg)
    assert 0.0 <= metrics["official_score"] <= 1.0
    module = load_systems(cfg.paths.output_dir)[MACHINE].module
    # near log-mel, far log-mel, near STgram, far STgram
    assert module.encoder.features[0][0].in_channels == 4
    features = torch.arange(2 * 128 * 3, dtype=torch.float32).reshape(256, 3)
    shifted = module._shifted_copies({"features": [features], "label": torch.tensor([0])})["features"][1]
    # a mel shift stays within each channel's log-mel
    assert torch.equal(shifted[:128], torch.roll(features[:128], 6, 0))
    assert torch.equal(shifted[128:], torch.roll(features[128:], 6, 0))


def test_frozen_encoders_refuse_several_channels_before_reading_data(make_cfg, tiny_wav2vec2):
    cfg = make_cfg(
        "data=dcase2026", "model=pretrained", "encoder=hf", f"encoder.path={tiny_wav2vec2}", "data.audio.channel=[0,1]"
    )
    with pytest.raises(InstantiationException, match="model=pretrained encodes one channel.*data.audio.channel=0"):
        train(cfg)
    assert not (Path(cfg.paths.cache_dir)).exists()  # refused before any audio was read

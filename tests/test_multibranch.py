"""The multi-branch classifier (ASDKit's dis_spec_scac_trainable as our options): its mechanics."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from asd.backends import KNNBackend
from asd.data.datamodule import class_name
from asd.data.filenames import parse_file_name
from asd.models.multibranch import MultiBranchModule, SpectrogramBranch, SpectrumBranch, tile_to_length

# 4.5 s at 16 kHz: the spectrum branch's convolutions need about 4.4 s
TINY = dict(clip_seconds=4.5, branch_dim=16)
SAMPLES = 72000


def tiny_module(**options) -> MultiBranchModule:
    torch.manual_seed(0)
    return MultiBranchModule(KNNBackend(), class_names=["a", "b", "c"], **{**TINY, **options})


def test_tiling_repeats_short_clips_and_cuts_long_ones():
    clip = torch.arange(5.0)
    assert tile_to_length(clip, 12).tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    assert tile_to_length(clip, 4, start=3).tolist() == [3, 4, 0, 1]
    module = tiny_module()
    short, long = torch.randn(16000), torch.randn(100000)
    fixed = module.fixed_length([short, long], random_start=False)
    assert fixed.shape == (2, SAMPLES)
    assert torch.equal(fixed[0, 16000:32000], short) and torch.equal(fixed[1], long[:SAMPLES])
    # training cuts a long clip at a random place, inside the clip
    torch.manual_seed(1)
    cut = module.fixed_length([long], random_start=True)[0]
    start = int(torch.nonzero(long == cut[0])[0])
    assert start > 0 and torch.equal(cut, long[start : start + SAMPLES])


def test_training_tiles_a_short_clip_from_a_random_place_as_asdkit():
    """ASDKit's collator repeats a short clip to a whole number of copies at least the network's
    length and cuts it at a random place: a 10-s DCASE clip tiled to 12 s starts anywhere in its first
    8 s. Here a 3-s clip in a 4.5-s network: two copies (6 s), a start anywhere in the first 1.5 s."""
    module = tiny_module()
    clip = torch.arange(48000.0)  # each sample its own value: a cut's first sample is its start
    torch.manual_seed(2)
    starts = []
    for _ in range(40):
        cut = module.fixed_length([clip], random_start=True)[0]
        starts.append(int(cut[0]))
        assert torch.equal(cut, tile_to_length(clip, SAMPLES, starts[-1]))
    assert 0 <= min(starts) and max(starts) <= 2 * 48000 - SAMPLES
    assert len(set(starts)) > 30 and max(starts) > 12000  # spread over the range, not pinned at the clip's start


@pytest.mark.parametrize("seconds", [1.0, 3.0, 14.0])
def test_branch_shapes_for_short_and_long_clips(seconds):
    """Any clip length scores: each clip is tiled or cut to the network's, and each branch gives its share."""
    module = tiny_module().eval()
    waveforms = [torch.randn(int(seconds * 16000)), torch.randn(int(seconds * 16000) + 123)]
    rows = module.representations({"waveform": waveforms})
    assert [tuple(r.shape) for r in rows] == [(1, 32), (1, 32)]
    fixed = module.fixed_length(waveforms, random_start=False)
    network = module.network
    assert network.spectrum(fixed).shape == (2, 16) and network.spectrograms[0](fixed).shape == (2, 16)
    assert torch.allclose(
        torch.cat(rows), torch.cat([network.spectrum(fixed), network.spectrograms[0](fixed)], 1), atol=1e-5
    )


def test_one_spectrogram_branch_per_resolution_with_half_window_hops():
    module = tiny_module(n_ffts=(256, 1024, 4096)).eval()
    branches = module.network.spectrograms
    assert [(b.n_fft, b.hop_length) for b in branches] == [(256, 128), (1024, 512), (4096, 2048)]
    assert module.embedding_dim == 4 * 16 and module.head.weight.shape[1] == 64
    (row,) = module.representations({"waveform": [torch.randn(30000)]})
    fixed = module.fixed_length([torch.randn(30000)], random_start=False)
    assert row.shape == (1, 64) and module.network(fixed).shape == (1, 64)


def test_spectrogram_branch_reads_200_hz_to_8_khz_magnitudes_normalised_by_the_window():
    branch = SpectrogramBranch(SAMPLES, embedding_dim=16)
    tone = torch.sin(2 * np.pi * 1000 * torch.arange(SAMPLES) / 16000)
    spectrogram = branch.spectrogram(tone.unsqueeze(0))[0]
    # bins of 15.625 Hz: 200 Hz lies inside bin 13, 8 kHz is the last bin (512); 500 bins kept
    assert spectrogram.shape == (500, SAMPLES // 512 + 1)
    assert int(spectrogram[:, 10].argmax()) + 13 == 64  # 1000 Hz / 15.625 Hz
    # a unit sine's peak bin under a Hann window holds n_fft/4, divided by the window's norm sqrt(3 n_fft / 8)
    assert float(spectrogram[64 - 13, 10]) == pytest.approx(256 / np.sqrt(384), rel=1e-3)
    with pytest.raises(ValueError, match="36 frequency bins and frames"):
        SpectrogramBranch(16000, embedding_dim=16)
    shortest = SpectrumBranch.min_samples()
    assert SpectrumBranch(shortest, 16)(torch.randn(2, shortest)).shape == (2, 16)
    with pytest.raises(ValueError, match=f"at least {shortest} samples"):
        SpectrumBranch(shortest - 2, 16)


def test_sc_adacos_centres_receive_gradients_and_the_scale_stays_fixed():
    module = tiny_module().train()
    assert module.head.sub_centers == 16 and not module.head.adaptive_scale
    start = float(module.head.scale)
    assert start == pytest.approx(np.sqrt(2) * np.log(3 * 16 - 1))
    batch = {"waveform": [torch.randn(SAMPLES) for _ in range(4)], "label": torch.tensor([0, 1, 2, 0])}
    module.log = lambda *a, **k: None
    module.training_step(batch, 0).backward()
    assert module.head.weight.grad is not None and module.head.weight.grad.abs().sum() > 0
    assert float(module.head.scale) == start
    fixed = tiny_module(trainable_centers=False)
    assert not fixed.head.weight.requires_grad


def test_mixup_mixes_waveforms_and_weights_each_clips_two_classes_by_its_share(monkeypatch):
    module = tiny_module(mixup_probability=1.0).train()
    module.log = lambda *a, **k: None
    waveforms = [torch.randn(SAMPLES) for _ in range(4)]
    labels = torch.tensor([0, 1, 2, 0])
    lam, order = torch.tensor([0.25, 0.5, 0.75, 1.0]), torch.tensor([1, 2, 0, 3])
    draws = iter([torch.zeros(4), lam])  # "is it mixed" (0 < 1: all are), then each clip's share
    monkeypatch.setattr(torch, "rand", lambda *a, **k: next(draws))
    monkeypatch.setattr(torch, "randperm", lambda *a, **k: order)
    loss = module.training_step({"waveform": waveforms, "label": labels}, 0)
    stacked = torch.stack(waveforms)
    mixed = lam[:, None] * stacked + (1 - lam[:, None]) * stacked[order]
    logits = module.head(module.network(mixed))
    expected = (
        lam * F.cross_entropy(logits, labels, reduction="none")
        + (1 - lam) * F.cross_entropy(logits, labels[order], reduction="none")
    ).mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-4)
    # with no clip mixed it is the plain loss
    plain = tiny_module(mixup_probability=0.0).train()
    plain.load_state_dict(module.state_dict())
    plain.log = lambda *a, **k: None
    monkeypatch.undo()
    plain.eval()  # batch norms on running statistics: the same network output both ways
    unmixed = F.cross_entropy(plain.head(plain.network(stacked)), labels)
    assert float(plain.training_step({"waveform": waveforms, "label": labels}, 0)) == pytest.approx(
        float(unmixed), rel=1e-5
    )
    with pytest.raises(ValueError, match="mixup_probability"):
        tiny_module(mixup_probability=1.5)


def test_domain_joins_the_class_where_asked():
    info = parse_file_name("section_00_target_train_normal_0001_spd_2_loc_A.wav", machine="ToyRotor")
    assert class_name(info) == "ToyRotor/section_00/spd_2_loc_A"
    assert class_name(info, with_domain=True) == "ToyRotor/section_00/spd_2_loc_A/target"
    hidden = parse_file_name("section_00_target_train_normal_0001_noAttribute.wav", machine="ToyRotor")
    assert class_name(hidden, with_domain=True) == class_name(hidden) == "ToyRotor/section_00/target"


def test_feature_exchange_rebuilds_embeddings_from_other_clips_branches_and_splits_their_classes(monkeypatch):
    module = tiny_module(n_ffts=(256, 1024), feature_exchange_probability=0.5).train()
    assert module.branches == 3 and module.exchange_head.n_classes == 3 * 4  # three classes, whole + per branch
    assert module.exchange_head.weight.requires_grad and not module.exchange_head.adaptive_scale
    embeddings, labels = torch.randn(4, 48), torch.tensor([0, 1, 2, 0])
    targets = F.one_hot(labels, 3).float()
    first, second = torch.tensor([1, 2, 3, 0]), torch.tensor([3, 0, 1, 2])
    none = torch.zeros_like(targets)

    def loss_with(draw):
        perms = iter([first, second])
        monkeypatch.setattr(torch, "randperm", lambda *a, **k: next(perms))
        monkeypatch.setattr(torch, "rand", lambda *a, **k: draw)
        value = module.feature_exchange_loss(embeddings, targets)
        monkeypatch.undo()
        return value

    def expected(rows, soft):
        return -(soft * F.log_softmax(module.exchange_head(rows), dim=1)).sum(1).mean()

    # every embedding exchanged (a draw below 0.5): branch 1 its own, branch 2 from `first`, branch 3 from `second`
    rebuilt = torch.cat([embeddings[:, :16], embeddings[first, 16:32], embeddings[second, 32:]], dim=1)
    soft = torch.cat([none, targets / 3, targets[first] / 3, targets[second] / 3], dim=1)
    assert float(loss_with(torch.zeros(4))) == pytest.approx(float(expected(rebuilt, soft)), rel=1e-5)
    # none exchanged: the whole embeddings, their classes in the first block
    whole = torch.cat([targets, none, none, none], dim=1)
    assert float(loss_with(torch.ones(4))) == pytest.approx(float(expected(embeddings, whole)), rel=1e-5)
    # the exchange head learns with the network
    module.log = lambda *a, **k: None
    module.training_step({"waveform": [torch.randn(SAMPLES) for _ in range(4)], "label": labels}, 0).backward()
    assert module.exchange_head.weight.grad.abs().sum() > 0
    assert tiny_module().exchange_head is None  # off by default
    with pytest.raises(ValueError, match="feature_exchange_probability"):
        tiny_module(feature_exchange_probability=-0.1)

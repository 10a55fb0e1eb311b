import numpy as np
import pytest
import torch
from conftest import build_tiny_beats_checkpoint, build_tiny_wav2vec2

from asd.backends import ClassifierScoreBackend, KNNBackend
from asd.models.encoders import BEATsEncoder, EncoderWeightsError, HuggingFaceEncoder
from asd.models.mfn import MobileFaceNetModule
from asd.models.mobilefacenet import ArcMarginHead, MobileFaceNet
from asd.models.pretrained import PretrainedEmbeddingModule
from asd.train import datamodule_settings

TINY_MFN = dict(width=8, channels=16, final_channels=32, embedding_dim=16)


def _brute_force_knn_score(rows, banks, k):
    """Reference: loops over every pair, cosine distance from scratch."""
    per_row = []
    for row in rows:
        per_domain = []
        for domain, bank in banks.items():
            distances = sorted(
                1.0 - float(np.dot(row, member)) / (np.linalg.norm(row) * np.linalg.norm(member)) for member in bank
            )
            per_domain.append(np.mean(distances[: k[domain]]))
        per_row.append(min(per_domain))
    return float(np.mean(per_row))


def test_knn_backend_matches_brute_force_on_random_data():
    rng = np.random.default_rng(0)
    source = [rng.normal(size=(1, 24)) for _ in range(40)]
    target = [rng.normal(size=(1, 24)) + 0.5 for _ in range(6)]
    backend = KNNBackend(k_source=3, k_target=2, density_normalise="none")
    backend.fit(source + target, ["source"] * 40 + ["target"] * 6, [0] * 46)
    queries = [rng.normal(size=(2, 24)) for _ in range(25)]
    ours = backend.score(queries, [0] * 25)
    reference = [
        _brute_force_knn_score(
            q, {"source": np.concatenate(source), "target": np.concatenate(target)}, {"source": 3, "target": 2}
        )
        for q in queries
    ]
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-12)
    # the ranking, which is all AUC sees, is exactly the reference's
    assert list(np.argsort(ours, kind="stable")) == list(np.argsort(reference, kind="stable"))


def test_knn_options_condense_and_oversample():
    rng = np.random.default_rng(1)
    source = [rng.normal(size=(1, 8)) for _ in range(50)]
    target = [rng.normal(size=(1, 8)) for _ in range(5)]
    backend = KNNBackend(source_kmeans=10, smote_target=True, smote_neighbors=2)
    backend.fit(source + target, ["source"] * 50 + ["target"] * 5, [0] * 55)
    banks = {domain: bank for domain, (bank, _, _) in backend.states[0].items()}
    assert banks["source"].shape == (10, 8)
    assert banks["target"].shape == (10, 8)  # oversampled to the (condensed) source count
    assert np.allclose(np.linalg.norm(banks["target"], axis=1), 1.0, atol=1e-5)
    # a sampling ratio instead of full balance: 0.2 x 50 source rows = 10 target rows
    ratio = KNNBackend(smote_target=True, smote_neighbors=2, smote_ratio=0.2)
    ratio.fit(source + target, ["source"] * 50 + ["target"] * 5, [0] * 55)
    assert ratio.states[0]["target"][0].shape == (10, 8) and ratio.states[0]["source"][0].shape == (50, 8)
    with pytest.raises(ValueError, match="smote_ratio must be in"):
        KNNBackend(smote_ratio=1.5)


def test_member_density_normalisation_matches_brute_force():
    rng = np.random.default_rng(3)
    bank = [rng.normal(size=(1, 6)) * rng.uniform(0.2, 2.0) + 1.0 for _ in range(15)]
    queries = [rng.normal(size=(3, 6)) + 1.0 for _ in range(10)]
    backend = KNNBackend(k_source=2, density_normalise="member")
    backend.fit(bank, ["source"] * 15, ["s"] * 15)
    unit = np.concatenate(bank) / np.linalg.norm(np.concatenate(bank), axis=1, keepdims=True)

    def cosine_distance(a, b):
        return 1.0 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b))

    # each member's own scale: mean distance to its 2 nearest other members
    scale = [
        np.mean(sorted(cosine_distance(m, o) for j, o in enumerate(unit) if j != i)[:2]) for i, m in enumerate(unit)
    ]
    reference = [
        np.mean([np.mean(sorted(cosine_distance(row, m) / scale[i] for i, m in enumerate(unit))[:2]) for row in q])
        for q in queries
    ]
    np.testing.assert_allclose(backend.score(queries, ["s"] * 10), reference, rtol=0, atol=1e-12)


def test_lof_matches_its_definition():
    from asd.backends import LOFBackend

    rng = np.random.default_rng(4)
    bank = np.concatenate([rng.normal(size=(25, 3)), rng.normal(loc=4.0, scale=0.3, size=(15, 3))])
    queries = [rng.normal(loc=c, size=(2, 3)) for c in (0.0, 4.0, 8.0, 2.0)]
    k = 5
    backend = LOFBackend(n_neighbors=k, metric="euclidean")
    backend.fit([row[None] for row in bank], ["source"] * 40, ["s"] * 40)
    distances = np.linalg.norm(bank[:, None] - bank[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    neighbours = np.argsort(distances, axis=1)[:, :k]
    k_distance = np.sort(distances, axis=1)[:, k - 1]
    lrd = np.array([1.0 / np.mean(np.maximum(k_distance[n], distances[i, n])) for i, n in enumerate(neighbours)])

    def lof(point):
        d = np.linalg.norm(bank - point, axis=1)
        near = np.argsort(d)[:k]
        own_lrd = 1.0 / np.mean(np.maximum(k_distance[near], d[near]))
        return np.mean(lrd[near]) / own_lrd

    reference = [np.mean([lof(row) for row in q]) for q in queries]
    np.testing.assert_allclose(backend.score(queries, ["s"] * 4), reference, rtol=1e-9)
    assert reference[2] > 2.0 > reference[0]  # far from both clusters vs inside one


def test_density_normalisation_puts_a_sparse_target_bank_on_the_source_scale():
    rng = np.random.default_rng(2)
    centre_s, centre_t = rng.normal(size=16), rng.normal(size=16)
    source = [(centre_s + 0.1 * rng.normal(size=16))[None] for _ in range(90)]
    target = [(centre_t + 0.4 * rng.normal(size=16))[None] for _ in range(10)]  # few and spread out
    raw, normalised = KNNBackend(density_normalise="none"), KNNBackend()
    for backend in (raw, normalised):
        backend.fit(source + target, ["source"] * 90 + ["target"] * 10, ["s"] * 100)
    normal_target = [(centre_t + 0.4 * rng.normal(size=16))[None] for _ in range(20)]
    source_anomaly = [(centre_s + 0.3 * rng.normal(size=16))[None] for _ in range(20)]

    def auc(backend):
        from sklearn.metrics import roc_auc_score

        scores = backend.score(normal_target + source_anomaly, ["s"] * 40)
        return roc_auc_score([0] * 20 + [1] * 20, scores)

    assert auc(raw) < 0.5 < 0.9 < auc(normalised)


def test_classifier_backend_scores_unlikely_sections_high():
    backend = ClassifierScoreBackend()
    train = [np.array([[5.0, 0.0, 0.0, 0.0]]), np.array([[0.0, 5.0, 0.0, 0.0]])]
    backend.fit(train, ["source", "target"], [0, 0])
    confident, confused = np.array([[6.0, 0.0, 0.0, 0.0]]), np.array([[0.0, 0.0, 6.0, 6.0]])
    scores = backend.score([confident, confused], [0, 0])
    assert scores[0] < 0.01 < 5 < scores[1]


def test_arcface_margin_lowers_the_target_logit():
    torch.manual_seed(0)
    head = ArcMarginHead(16, 5, scale=30.0, margin=0.5)
    embeddings, labels = torch.randn(8, 16), torch.randint(0, 5, (8,))
    plain = head(embeddings)
    with_margin = head(embeddings, labels)
    rows = torch.arange(8)
    assert torch.all(with_margin[rows, labels] < plain[rows, labels])
    others = torch.ones_like(plain, dtype=torch.bool)
    others[rows, labels] = False
    assert torch.equal(with_margin[others], plain[others])
    assert torch.allclose(plain, 30.0 * head.cosine(embeddings)[..., 0], atol=1e-5)


def test_adacos_adapts_its_scale():
    head = ArcMarginHead(16, 10, margin=0.0, adaptive_scale=True).train()
    start = float(head.scale)
    assert start == pytest.approx(np.sqrt(2) * np.log(9))
    torch.manual_seed(0)
    embeddings, labels = torch.randn(32, 16), torch.randint(0, 10, (32,))
    # AdaCos (Zhang et al. 2019): s = log(mean over the batch of sum over non-target classes of
    # exp(s_old * cos)) / cos(min(pi/4, median target angle))
    cosine = head.cosine(embeddings)[..., 0].detach().double()
    target = torch.nn.functional.one_hot(labels, 10).bool()
    others = (torch.exp(start * cosine) * ~target).sum(1).mean()
    median_angle = torch.median(torch.arccos(cosine[target].clamp(-1, 1)))
    expected = float(torch.log(others) / torch.cos(torch.clamp(median_angle, max=np.pi / 4)))
    head(embeddings, labels)
    assert float(head.scale) == pytest.approx(expected, rel=1e-4)


def test_sub_cluster_adacos_sums_each_class_over_its_centres():
    torch.manual_seed(0)
    head = ArcMarginHead(16, 4, margin=0.0, adaptive_scale=True, sub_centers=3, trainable_centers=False).train()
    assert head.weight.shape == (12, 16) and not head.weight.requires_grad
    assert float(head.scale) == pytest.approx(np.sqrt(2) * np.log(11))  # AdaCos's start for 12 centres
    embeddings, labels = torch.randn(8, 16), torch.randint(0, 4, (8,))
    start = float(head.scale)
    centre_logits = start * torch.nn.functional.linear(
        torch.nn.functional.normalize(embeddings), torch.nn.functional.normalize(head.weight)
    )
    logits = head(embeddings)
    assert logits.shape == (8, 4)
    # the class probability is the sum of its centres' probabilities in one softmax over all centres
    centre_probabilities = torch.softmax(centre_logits, dim=1).view(8, 4, 3).sum(-1)
    assert torch.allclose(torch.softmax(logits, 1), centre_probabilities, atol=1e-6)
    head(embeddings, labels)
    # the scale adapted: over the non-target centres, against the nearest target centre's angle
    cosine = head.cosine(embeddings).detach().double()
    target = torch.nn.functional.one_hot(labels, 4).bool().unsqueeze(-1).expand_as(cosine)
    others = (torch.exp(start * cosine) * ~target).sum((1, 2)).mean()
    nearest = torch.arccos(cosine.masked_fill(~target, -1).amax((1, 2)))
    expected = float(torch.log(others) / torch.cos(torch.clamp(torch.median(nearest), max=np.pi / 4)))
    assert float(head.scale) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("use_tgram", [False, True])
def test_mobilefacenet_shapes(use_tgram):
    module = MobileFaceNetModule(KNNBackend(), use_tgram=use_tgram, class_names=["a", "b", "c"], **TINY_MFN)
    batch = {
        "features": [torch.randn(128, 63), torch.randn(128, 63)],
        "waveform": [torch.randn(32000), torch.randn(32000)],
        "label": torch.tensor([0, 2]),
    }
    assert module.data_input == ("waveforms" if use_tgram else "clips")
    module.eval()
    assert module(batch).shape == (2, 16)
    reps = module.representations(batch)
    assert len(reps) == 2 and reps[0].shape == (1, 16)
    module.train()
    loss = module.training_step(batch, 0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert MobileFaceNet(1, 16, 8, 16, 32)(torch.randn(2, 1, 128, 100)).shape == (2, 16)  # any clip length


@pytest.mark.parametrize("loss", ["adacos", "sc_adacos"])
def test_adaptive_scale_heads_train_with_mixup(loss):
    """Mixup scores the mixed embeddings against both targets, two head calls in one step; AdaCos's
    in-place scale update between them used to break the first call's gradient."""
    torch.manual_seed(0)
    module = MobileFaceNetModule(
        KNNBackend(), loss=loss, sub_centers=2, mixup_alpha=0.5, class_names=["a", "b", "c"], **TINY_MFN
    ).train()
    batch = {"features": [torch.randn(128, 63) for _ in range(4)], "label": torch.tensor([0, 1, 2, 0])}
    loss_value = module.training_step(batch, 0)
    loss_value.backward()
    assert module.head.weight.grad is not None and torch.isfinite(module.head.weight.grad).all()


def test_classifier_checkpoint_reloads_without_data(tmp_path):
    import lightning as L

    module = MobileFaceNetModule(
        KNNBackend(), representation="logits", class_names=["fan/section_00/a_1", "fan/section_00/a_2"], **TINY_MFN
    )
    trainer = L.Trainer(max_epochs=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    reloaded = MobileFaceNetModule.load_from_checkpoint(path, backend=KNNBackend())
    assert reloaded.class_names == module.class_names
    module.eval(), reloaded.eval()
    batch = {"features": [torch.randn(128, 40)]}
    assert torch.equal(module.representations(batch)[0], reloaded.representations(batch)[0])
    assert reloaded.representations(batch)[0].shape == (1, 2)


def _tiny_ast(directory):
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    config = ASTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_length=128,
        num_mel_bins=64,
    )
    torch.manual_seed(0)
    ASTModel(config).save_pretrained(directory)
    ASTFeatureExtractor(num_mel_bins=64, max_length=128, sampling_rate=16000).save_pretrained(directory)


@pytest.mark.parametrize("build, dims", [(build_tiny_wav2vec2, 32), (_tiny_ast, 32)], ids=["wav2vec2", "ast"])
def test_hugging_face_encoder_from_a_local_directory(tmp_path, build, dims):
    build(tmp_path / "model")
    encoder = HuggingFaceEncoder(str(tmp_path / "model"))
    frames = encoder(torch.randn(16000))
    assert frames.ndim == 2 and frames.shape[1] == dims
    waveform = torch.randn(16000)
    middle = HuggingFaceEncoder(str(tmp_path / "model"), layer=1)(waveform)
    # encoder.layer=1 is the first transformer layer's output, not the last one's
    with torch.no_grad():
        features = encoder.feature_extractor(waveform.numpy(), sampling_rate=16000, return_tensors="pt")
        hidden = encoder.model(input_values=features["input_values"], output_hidden_states=True).hidden_states
    assert torch.allclose(middle, hidden[1][0]) and not torch.allclose(middle, hidden[-1][0])
    # the whole memory-bank model: resampling 8 kHz input up to the encoder's 16 kHz
    module = PretrainedEmbeddingModule(KNNBackend(), encoder, sample_rate=8000, pooling="mean+max")
    assert module.configure_optimizers() is None and not module.trainable
    reps = module.representations({"waveform": [torch.randn(8000), torch.randn(8000)]})
    assert [r.shape for r in reps] == [(1, 2 * dims)] * 2


@pytest.mark.beats
def test_beats_encoder_from_an_official_layout_checkpoint(tmp_path):
    reference = build_tiny_beats_checkpoint(tmp_path / "BEATs_tiny.pt").eval()
    encoder = BEATsEncoder(str(tmp_path / "BEATs_tiny.pt"))
    waveform = torch.randn(16000)
    frames = encoder(waveform)
    assert frames.ndim == 2 and frames.shape[1] == 32
    with torch.no_grad():
        expected, lengths, _ = reference(waveform.unsqueeze(0), torch.tensor([16000]), waveform_input=True)
    assert torch.allclose(frames, expected[0, : int(lengths[0])], atol=1e-5)


def test_missing_or_incompatible_weights_are_clear_errors(tmp_path):
    with pytest.raises(EncoderWeightsError, match="BEATs checkpoint not found.*download"):
        BEATsEncoder(str(tmp_path / "BEATs_iter3_plus_AS2M.pt"))
    with pytest.raises(EncoderWeightsError, match="Hugging Face model directory not found"):
        HuggingFaceEncoder(str(tmp_path / "missing_dir"))
    torch.save({"weights": {}}, tmp_path / "other.pt")
    with pytest.raises(EncoderWeightsError, match="not an official BEATs checkpoint"):
        BEATsEncoder(str(tmp_path / "other.pt"))
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderWeightsError, match="not a readable torch checkpoint"):
        BEATsEncoder(str(tmp_path / "garbage.pt"))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(EncoderWeightsError, match="not a loadable transformers model directory"):
        HuggingFaceEncoder(str(tmp_path / "empty_dir"))


def test_shift_classes_train_shifted_copies_as_classes_of_their_own():
    module = MobileFaceNetModule(KNNBackend(), class_names=["a", "b", "c"], shift_classes=(-2, 2), **TINY_MFN)
    features = [torch.randn(128, 40), torch.randn(128, 40)]
    extended = module._shifted_copies({"features": features, "label": torch.tensor([0, 2])})
    # each shift is a new block of the class vocabulary: 3 classes, then 3 per shift
    assert extended["label"].tolist() == [0, 2, 3, 5, 6, 8]
    assert torch.equal(extended["features"][2], torch.roll(features[0], -2, dims=0))
    assert torch.equal(extended["features"][5], torch.roll(features[1], 2, dims=0))
    assert module.head.weight.shape[0] == 9


def test_shifted_copies_keep_their_labels_on_the_batch_device():
    # the GPU check met this: shifted copies' labels were built on the CPU while the batch was on CUDA,
    # and the margin head failed ("Expected all tensors to be on the same device"); the meta device
    # stands in for CUDA here (a tensor built without the batch's device lands on the CPU)
    module = MobileFaceNetModule(KNNBackend(), class_names=["a", "b", "c"], shift_classes=(2,), **TINY_MFN)
    features = [torch.empty(128, 40, device="meta"), torch.empty(128, 40, device="meta")]
    extended = module._shifted_copies({"features": features, "label": torch.tensor([0, 2], device="meta")})
    assert extended["label"].device.type == "meta"


def test_mixup_is_the_plain_loss_when_nothing_is_mixed_in(monkeypatch):
    torch.manual_seed(0)
    batch = {"features": [torch.randn(128, 40) for _ in range(4)], "label": torch.tensor([0, 1, 2, 1])}
    module = MobileFaceNetModule(KNNBackend(), class_names=["a", "b", "c"], mixup_alpha=0.4, **TINY_MFN).eval()
    plain = MobileFaceNetModule(KNNBackend(), class_names=["a", "b", "c"], **TINY_MFN).eval()
    plain.load_state_dict(module.state_dict())
    monkeypatch.setattr(module, "log", lambda *a, **k: None)
    monkeypatch.setattr(plain, "log", lambda *a, **k: None)
    monkeypatch.setattr(np.random, "beta", lambda a, b: 1.0)  # lambda = 1: the batch itself
    assert torch.allclose(module.training_step(batch, 0), plain.training_step(batch, 0))
    monkeypatch.setattr(np.random, "beta", lambda a, b: 0.5)  # half of each clip's partner
    assert not torch.allclose(module.training_step(batch, 0), plain.training_step(batch, 0))


def test_spec_augment_masks_in_training_only():
    from asd.models.mfn import SpecAugmentMask

    torch.manual_seed(0)
    module = MobileFaceNetModule(KNNBackend(), class_names=["a", "b"], freq_mask=30, time_mask=10, **TINY_MFN)
    masked = module.spec_augment(torch.ones(1, 1, 128, 40))
    assert (masked == 0).any() and (masked == 1).any()  # some bands and frames zeroed, not all
    # each mask is one band below its width, along its own axis, drawn anew for each clip
    frequency = SpecAugmentMask(30, axis=-2)(torch.ones(64, 2, 128, 40))
    zeroed_bins = (frequency == 0).all(dim=-1)  # (clips, channels, bins): whole bins, every frame
    assert ((frequency == 0).any(dim=-1) == zeroed_bins).all()
    widths = zeroed_bins[:, 0].sum(dim=1)
    assert widths.max() < 30 and len(set(widths.tolist())) > 5
    assert (zeroed_bins[:, 0] == zeroed_bins[:, 1]).all()  # one band for all channels of a clip
    time = SpecAugmentMask(10, axis=-1)(torch.ones(64, 1, 128, 40))
    assert ((time == 0).any(dim=-2) == (time == 0).all(dim=-2)).all() and (time == 0).sum(dim=-1).max() < 10 * 128
    batch = {"features": [torch.randn(128, 40)]}
    module.eval()
    # scoring never masks: the same clip gives the same representation every time
    assert torch.equal(module.representations(batch)[0], module.representations(batch)[0])


def test_the_classifier_backend_needs_logits_and_says_so_before_training():
    from asd.models.ae import AutoEncoderModule

    for module in (
        MobileFaceNetModule(ClassifierScoreBackend(), class_names=["a", "b"], **TINY_MFN),
        AutoEncoderModule(ClassifierScoreBackend()),
    ):
        with pytest.raises(ValueError, match="scores class logits, which .* does not give"):
            module.on_fit_start()
    MobileFaceNetModule(
        ClassifierScoreBackend(), class_names=["a", "b"], representation="logits", **TINY_MFN
    ).on_fit_start()


def test_balanced_sampling_draws_target_clips_as_often_as_source_ones(make_cfg):
    import hydra

    cfg = make_cfg("machine=ToyHum", "model=mfn_arcface", "data.balanced_sampling=true")
    datamodule = hydra.utils.instantiate(datamodule_settings(cfg.data), machines=["ToyHum"], input="clips")
    datamodule.prepare_data()
    datamodule.setup()
    domains = [c.info.domain for c in datamodule.train_clips]
    assert domains.count("target") == 10 and len(domains) == 100  # the data: a tenth target
    sampler = datamodule.train_dataloader().sampler
    first = list(sampler)
    drawn = [domains[i] for i in first]
    # four (class, domain) groups, two of each domain: about half the draws are target clips
    assert len(first) == 100 and 35 <= drawn.count("target") <= 65
    assert list(sampler) == first  # the same epoch, the same draws (exact resume)
    sampler.set_epoch(1)
    assert list(sampler) != first
    with pytest.raises(hydra.errors.InstantiationException, match="balanced_sampling.*not model=ae"):
        hydra.utils.instantiate(datamodule_settings(cfg.data), machines=["ToyHum"], input="frames")


def test_warmup_cosine_schedule_of_the_classifier():
    from types import SimpleNamespace

    module = MobileFaceNetModule(KNNBackend(), class_names=["a", "b"], warmup_fraction=0.2, lr=1e-3, **TINY_MFN)
    module._trainer = SimpleNamespace(estimated_stepping_batches=50)
    configured = module.configure_optimizers()
    optimizer, schedule = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    rates = []
    for _ in range(50):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)  # warm-up over 10 of 50 steps
    assert rates[-1] < 1e-5 and rates == sorted(rates[:10]) + sorted(rates[10:], reverse=True)
    plain = MobileFaceNetModule(KNNBackend(), class_names=["a", "b"], **TINY_MFN).configure_optimizers()
    assert isinstance(plain, torch.optim.AdamW)  # no schedule unless asked for


def test_adaproj_scores_the_cosine_with_the_projection_onto_each_class_subspace():
    torch.manual_seed(0)
    head = ArcMarginHead(8, 3, margin=0.0, adaptive_scale=True, sub_centers=2, projection=True).eval()
    embeddings = torch.randn(5, 8)
    spans = head.weight.detach().view(3, 2, 8)
    expected = []
    for span in spans:  # |P x| / |x| with P the orthogonal projection onto the span, by least squares
        coefficients = torch.linalg.lstsq(span.T, embeddings.T).solution
        expected.append((span.T @ coefficients).norm(dim=0) / embeddings.norm(dim=1))
    cosine = head.cosine(embeddings)[..., 0]
    assert torch.allclose(cosine, torch.stack(expected, dim=1), atol=1e-5)
    inside = spans[1].sum(0, keepdim=True) * 3.0  # a vector in class 1's subspace
    assert float(head.cosine(inside)[0, 1, 0]) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(head(embeddings), float(head.scale) * cosine)
    with pytest.raises(ValueError, match="fills the 8-d embedding space"):
        ArcMarginHead(8, 3, sub_centers=8, projection=True)

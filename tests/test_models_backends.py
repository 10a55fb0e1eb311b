import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from asd.backends import MahalanobisBackend, MSEBackend, StandardisedErrorBackend
from asd.evaluation.threshold import fit_gamma_threshold
from asd.models.autoencoder import DenseAutoEncoder


def test_autoencoder_is_the_baseline_architecture():
    model = DenseAutoEncoder()
    x = torch.randn(32, 640)
    assert model(x).shape == (32, 640)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == (
        [(640, 128)] + [(128, 128)] * 3 + [(128, 8), (8, 128)] + [(128, 128)] * 3 + [(128, 640)]
    )
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()) == 9
    assert model.encoder(x).shape == (32, 8)


def test_mse_backend_is_the_mean_square():
    rows = [np.full((4, 3), 2.0), np.zeros((2, 3))]
    backend = MSEBackend()
    assert list(backend.score(rows, [0, 0])) == [4.0, 0.0]


def _clips(rng, centre, n_clips, rows=20, dim=4):
    return [rng.normal(centre, 1.0, size=(rows, dim)) for _ in range(n_clips)]


def test_mahalanobis_takes_the_nearer_domain_and_keeps_sections_apart():
    rng = np.random.default_rng(0)
    source, target = _clips(rng, 0.0, 30), _clips(rng, 6.0, 5)
    backend = MahalanobisBackend()
    backend.fit(source + target, ["source"] * 30 + ["target"] * 5, [0] * 35)
    normal_target = _clips(rng, 6.0, 1)[0]
    anomaly = _clips(rng, 3.0, 1)[0]
    scores = backend.score([normal_target, anomaly, _clips(rng, 0.0, 1)[0]], [0, 0, 0])
    assert scores[0] < scores[1] and scores[2] < scores[1]  # target normals are not anomalies
    with pytest.raises(KeyError, match="not fitted on section 1"):
        backend.score([anomaly], [1])


def test_gamma_threshold_is_the_upper_decile():
    rng = np.random.default_rng(0)
    scores = rng.gamma(shape=3.0, scale=2.0, size=5000)
    threshold = fit_gamma_threshold(scores)
    assert np.mean(scores > threshold) == pytest.approx(0.1, abs=0.02)
    assert fit_gamma_threshold([1.0, 1.0, 1.0]) == 1.0  # degenerate fit falls back to the quantile


def test_mahalanobis_with_one_training_row_in_a_domain_scores_with_the_other():
    rng = np.random.default_rng(0)
    source = [rng.normal(size=(20, 4)) for _ in range(5)]
    lonely_target = [rng.normal(loc=3.0, size=(1, 4))]  # one row: no covariance can be fitted
    backend = MahalanobisBackend()
    backend.fit(source + lonely_target, ["source"] * 5 + ["target"], ["s"] * 6)
    assert len(backend.states["s"]) == 1  # the source model only
    near, far = rng.normal(size=(20, 4)), rng.normal(loc=6.0, size=(20, 4))
    scores = backend.score([near, far], ["s", "s"])
    assert np.isfinite(scores).all() and scores[0] < scores[1]
    with pytest.raises(ValueError, match="at least two training rows in some domain"):
        MahalanobisBackend().fit([rng.normal(size=(1, 4))], ["source"], ["s"])


def _errors(rng, n_rows, scales):
    return rng.normal(size=(n_rows, len(scales))) * np.asarray(scales)


def test_standardised_error_finds_an_anomaly_in_a_quiet_band_that_mse_misses():
    # band 0 is reconstructed badly in every clip (spread 10), band 1 well (spread 0.1)
    rng = np.random.default_rng(0)
    train = [_errors(rng, 30, (10.0, 0.1)) for _ in range(40)]
    normal = [_errors(rng, 30, (10.0, 0.1)) for _ in range(20)]
    anomalies = [_errors(rng, 30, (10.0, 1.0)) for _ in range(20)]  # ten times the error in the quiet band
    standardised, mse = StandardisedErrorBackend(), MSEBackend()
    standardised.fit(train, ["source"] * 40, ["s"] * 40)
    for backend, separates in ((standardised, True), (mse, False)):
        scores = backend.score(normal + anomalies, ["s"] * 40)
        assert bool(scores[:20].max() < scores[20:].min()) is separates


def test_standardised_error_measures_target_clips_against_the_target_errors():
    rng = np.random.default_rng(1)
    source = [_errors(rng, 30, (1.0, 1.0)) for _ in range(40)]
    target = [_errors(rng, 30, (5.0, 5.0)) for _ in range(10)]  # the target condition: larger errors
    backend = StandardisedErrorBackend()
    backend.fit(source + target, ["source"] * 40 + ["target"] * 10, ["s"] * 50)
    source_only = StandardisedErrorBackend()
    source_only.fit(source, ["source"] * 40, ["s"] * 40)
    normal_target, anomaly = _errors(rng, 30, (5.0, 5.0)), _errors(rng, 30, (15.0, 15.0))
    scores = backend.score([normal_target, anomaly, source[0]], ["s"] * 3)
    assert scores[0] < scores[1] and scores[2] < scores[1]
    # measured against the source errors alone, the normal target clip would be the anomaly
    assert source_only.score([normal_target], ["s"])[0] > 10 * scores[0]
    # a domain with a single row has no spread: the other domain scores alone
    lonely = StandardisedErrorBackend()
    lonely.fit(source + [_errors(rng, 1, (5.0, 5.0))], ["source"] * 40 + ["target"], ["s"] * 41)
    assert len(lonely.states["s"]) == 1
    assert lonely.score([anomaly], ["s"])[0] > lonely.score([source[0]], ["s"])[0]
    with pytest.raises(ValueError, match="at least two training rows in some domain"):
        StandardisedErrorBackend().fit([rng.normal(size=(1, 2))], ["source"], ["s"])


def test_standardised_error_survives_a_band_that_never_varied():
    rng = np.random.default_rng(2)
    train = [np.column_stack([rng.normal(size=10), np.zeros(10)]) for _ in range(5)]
    backend = StandardisedErrorBackend()
    backend.fit(train, ["source"] * 5, ["s"] * 5)
    scores = backend.score([np.column_stack([rng.normal(size=10), np.zeros(10)]), np.ones((10, 2))], ["s", "s"])
    assert np.isfinite(scores).all() and scores[0] < scores[1]


class _NegativeMSE(MSEBackend):
    """The MSE score turned around: z-normalised, exactly minus the MSE member's."""

    def score_clip(self, rows, state):
        return -super().score_clip(rows, state)


@pytest.mark.parametrize("combine", ["mean", "max", "min"])
def test_fusion_combines_members_z_normalised_on_their_training_scores(combine):
    from asd.backends import FusionBackend

    rng = np.random.default_rng(0)
    train = [rng.normal(scale=rng.uniform(0.5, 2.0), size=(10, 3)) for _ in range(30)]
    test = [rng.normal(scale=s, size=(10, 3)) for s in (0.5, 1.0, 4.0)]
    fusion = FusionBackend([MSEBackend(), _NegativeMSE()], combine=combine)
    fusion.fit(train, ["source"] * 30, ["s"] * 30)
    training = np.array([np.mean(r**2) for r in train])
    z = (np.array([np.mean(r**2) for r in test]) - training.mean()) / training.std()
    expected = {"mean": np.zeros(3), "max": np.abs(z), "min": -np.abs(z)}[combine]
    np.testing.assert_allclose(fusion.score(test, ["s"] * 3), expected, atol=1e-12)
    # a saved system keeps the members' states and the normalisers
    restored = FusionBackend([MSEBackend(), _NegativeMSE()], combine=combine)
    restored.set_state(fusion.get_state())
    np.testing.assert_array_equal(restored.score(test, ["s"] * 3), fusion.score(test, ["s"] * 3))


def test_fusion_of_memory_banks_normalises_on_out_of_sample_scores():
    from asd.backends import FusionBackend, KNNBackend
    from asd.backends.base import cross_fitted_scores

    rng = np.random.default_rng(1)
    train = [rng.normal(size=(1, 8)) for _ in range(40)]
    knn = KNNBackend(density_normalise="none")
    fusion = FusionBackend([KNNBackend(density_normalise="none"), MahalanobisBackend()])
    fusion.fit(train, ["source"] * 40, ["s"] * 40)
    knn.fit(train, ["source"] * 40, ["s"] * 40)
    out_of_sample, _ = cross_fitted_scores(knn, train, ["source"] * 40, ["s"] * 40)
    (knn_mean, knn_std), _ = fusion.states["s"]
    assert knn_mean == pytest.approx(out_of_sample.mean()) and knn_mean > 0.01  # in-sample it would be 0
    assert knn_std == pytest.approx(out_of_sample.std())
    with pytest.raises(ValueError, match="at least two back-ends"):
        FusionBackend([MSEBackend()])


@pytest.mark.parametrize("backend", ["knn", "mahalanobis", "fusion"])
def test_thresholds_per_domain_model_flag_each_domain_at_the_stated_rate(backend):
    """Target clips lie on another scale than source clips (a sparser bank, a rougher Gaussian): one
    threshold per section flags nearly every normal target clip. A threshold per model of the
    domain-wise back-end, chosen by the model that judged the clip (no domain label), flags about 10 %."""
    from asd.backends import FusionBackend, KNNBackend
    from asd.backends.base import cross_fitted_scores
    from asd.models.base import decide, decision_thresholds

    rng = np.random.default_rng(0)

    def clips(n, centre, spread):
        return [centre + spread * rng.normal(size=(1, 6)) for _ in range(n)]

    source_centre, target_centre = np.r_[5.0, 0, 0, 0, 0, 0], np.r_[0, 5.0, 0, 0, 0, 0]
    train = clips(300, source_centre, 0.3) + clips(40, target_centre, 1.0)
    domains = ["source"] * 300 + ["target"] * 40
    test = {"source": clips(400, source_centre, 0.3), "target": clips(400, target_centre, 1.0)}
    make = {
        "knn": lambda: KNNBackend(density_normalise="none"),
        "mahalanobis": MahalanobisBackend,
        "fusion": lambda: FusionBackend([KNNBackend(density_normalise="none"), MahalanobisBackend()]),
    }[backend]
    chosen = make()
    chosen.fit(train, domains, ["s"] * len(train))
    scores, models = cross_fitted_scores(chosen, train, domains, ["s"] * len(train))
    thresholds = decision_thresholds(scores, domains, ["s"] * len(train), 0.9)
    assert len(thresholds["s"]) == 2
    for domain, rows in test.items():
        test_scores, test_models = chosen.score_with_models(rows, ["s"] * len(rows))
        assert (test_models == (domain == "target")).mean() > 0.95  # judged by its own domain's model
        flagged = np.mean(decide(test_scores, test_models, ["s"] * len(rows), thresholds))
        assert 0.04 <= flagged <= 0.2, f"{domain}: {flagged:.0%} of normal clips flagged"
    if backend == "knn":  # raw cosine distances: the target bank is sparser
        # one threshold, the source one, flags most normal target clips
        source_only = thresholds["s"][0]
        target_scores, _ = chosen.score_with_models(test["target"], ["s"] * 400)
        assert np.mean(target_scores > source_only) > 0.5


def test_a_domain_blind_score_is_judged_as_the_domain_of_the_nearest_training_clip():
    """An AE's MSE puts new normal target clips above the source threshold (it saw ten target clips
    against many source ones): judged by that one threshold, nearly every normal target clip is
    flagged. Judged as the domain of the nearest training clip (no domain label), each domain's normal
    clips meet their own domain's threshold and are flagged near the stated 10 %."""
    from asd.backends import MSEBackend
    from asd.models.base import AnomalyDetectionModule

    rng = np.random.default_rng(0)
    source_direction, target_direction = np.eye(8)[0], np.eye(8)[1]

    def clips(n, direction, level):  # error rows along the domain's direction, of a level drawn per clip
        return [rng.lognormal(np.log(level), 0.3) * (direction + 0.2 * rng.normal(size=(5, 8))) for _ in range(n)]

    module = AnomalyDetectionModule(MSEBackend())
    train = clips(300, source_direction, 1.0) + clips(40, target_direction, 3.0)
    domains = ["source"] * 300 + ["target"] * 40
    module.fit_backend_on(train, domains, ["s"] * len(train), list(range(len(train))))
    for domain, rows in {
        "source": clips(400, source_direction, 1.0),
        "target": clips(400, target_direction, 3.0),
    }.items():
        scores, decisions, judged = module.score_representations(rows, ["s"] * len(rows))
        assert (judged == (domain == "target")).all()
        assert 0.04 <= np.mean(decisions) <= 0.25, f"{domain}: {np.mean(decisions):.0%} of normal clips flagged"
        if domain == "target":  # the source threshold alone flags nearly all of them
            assert np.mean(scores > module.decision_thresholds["s"][0]) > 0.9
    # the training clips' decisions use their own (known) domains' thresholds
    assert {module.training_scores[i][2] for i in range(300)} == {0}
    assert {module.training_scores[i][2] for i in range(300, 340)} == {1}


def test_nearest_domain_without_target_training_clips_judges_everything_as_source():
    from asd.evaluation.threshold import NearestDomain

    rng = np.random.default_rng(1)
    train = [rng.normal(size=(3, 4)) for _ in range(6)]
    estimate = NearestDomain.fit(train, ["source"] * 6, ["a"] * 6)
    assert list(estimate.estimate([rng.normal(size=(3, 4)) for _ in range(5)], ["a"] * 5)) == [0] * 5
    assert list(estimate.estimate([rng.normal(size=(3, 4))], ["not fitted"])) == [0]


@pytest.mark.parametrize(
    "backend, parameters, message",
    [
        ("knn", {"k_source": -3}, "backend.k_source must be at least 1, got -3"),
        ("knn", {"k_target": 2.5}, "backend.k_target must be an integer, got 2.5"),
        ("knn", {"smote_ratio": 0}, "backend.smote_ratio must be in (0, 1], got 0"),
        ("knn", {"smote_target": "yes"}, "backend.smote_target must be true or false, got 'yes'"),
        ("knn", {"pool_sections": 1}, "backend.pool_sections must be true or false, got 1"),
        (
            "knn",
            {"density_normalise": "banks"},
            "backend.density_normalise must be one of bank, member, none; got 'banks'",
        ),
        ("lof", {"n_neighbors": 0}, "backend.n_neighbors must be at least 1, got 0"),
        ("lof", {"metric": "cosin"}, "backend.metric must be one of"),
        ("selective_mahalanobis", {"block_size": "128"}, "backend.block_size must be an integer, got '128'"),
        ("fusion", {"combine": "median"}, "backend.combine must be one of max, mean, min; got 'median'"),
    ],
)
def test_backend_parameters_are_checked_where_the_backend_is_built(backend, parameters, message):
    from hydra import compose, initialize_config_dir

    from asd.backends import BackendConfigError, build_backend
    from asd.train import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[f"backend={backend}"])
    config = {**OmegaConf.to_container(cfg.backend, resolve=True), **parameters}
    with pytest.raises(BackendConfigError) as raised:
        build_backend(config)
    assert message in str(raised.value)


def test_mahalanobis_precision_is_the_inverse_covariance_and_survives_a_singular_one():
    from sklearn.covariance import LedoitWolf

    from asd.backends.mahalanobis import precision_of

    rows = np.random.default_rng(0).normal(size=(50, 8))
    covariance = LedoitWolf().fit(rows).covariance_
    np.testing.assert_allclose(precision_of(covariance), LedoitWolf().fit(rows).precision_, rtol=1e-9, atol=1e-12)
    singular = np.diag([1.0, 2.0, 0.0])  # a dimension that never varied: no Cholesky factor
    np.testing.assert_allclose(precision_of(singular), np.diag([1.0, 0.5, 0.0]), atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 7])
def test_knn_distance_is_the_mean_of_the_k_smallest_whatever_the_shortcut(k):
    from asd.backends.knn import mean_of_k_smallest

    distances = np.random.default_rng(k).random((5, 7))
    np.testing.assert_allclose(mean_of_k_smallest(distances, k), np.sort(distances, axis=1)[:, :k].mean(axis=1))


@pytest.mark.parametrize("queries_are_bank", [False, True])
def test_knn_distances_in_blocks_equal_the_whole_matrix(monkeypatch, queries_are_bank):
    from asd.backends import knn

    rng = np.random.default_rng(3)
    bank = knn.normalise(rng.standard_normal((23, 4)))
    queries = bank if queries_are_bank else knn.normalise(rng.standard_normal((17, 4)))
    scale = rng.uniform(0.5, 2.0, len(bank))
    whole = (1.0 - queries @ bank.T) / scale[None, :]
    if queries_are_bank:
        np.fill_diagonal(whole, np.inf)  # a member is not its own neighbour
    expected = np.sort(whole, axis=1)[:, :3].mean(axis=1)
    monkeypatch.setattr(knn, "DISTANCE_BLOCK_ENTRIES", 2 * len(bank))  # blocks of two query rows, the last one short
    blocked = knn.mean_knn_cosine_distance(queries, bank, 3, scale, queries_are_bank=queries_are_bank)
    np.testing.assert_allclose(blocked, expected, rtol=1e-12)


def test_a_threshold_fitted_on_ten_clips_flags_no_more_than_the_stated_share_of_new_normal_clips():
    """A section's ten target clips: the 90th percentile of a gamma fitted to ten gamma-distributed
    scores lies so often too low that new normal clips exceed it ~18 % of the time. Never below the
    conformal order statistic (here the largest of the ten), the threshold flags at most about 10 %;
    with 90 clips the two agree."""
    import scipy.stats

    from asd.evaluation.threshold import conformal_threshold, decision_threshold, fit_gamma_threshold

    rng = np.random.default_rng(0)
    for n, gamma_share in ((10, (0.15, 1.0)), (90, (0.09, 0.11))):
        draws = [rng.gamma(4.0, 1.0, n) for _ in range(120)]
        gamma = np.array([fit_gamma_threshold(scores, 0.9) for scores in draws])
        conformal = np.array([conformal_threshold(scores, 0.9) for scores in draws])
        chosen = [decision_threshold(scores, 0.9) for scores in draws[:10]]
        assert chosen == list(np.maximum(gamma, conformal)[:10])
        if n == 10:  # the bound decided some of these
            assert (gamma < conformal)[:10].any()
        # the expected share of new normal clips above the threshold
        assert gamma_share[0] <= scipy.stats.gamma.sf(gamma, 4.0).mean() <= gamma_share[1]
        assert 0.07 <= scipy.stats.gamma.sf(np.maximum(gamma, conformal), 4.0).mean() <= 0.105


def test_knn_pooled_over_sections_keeps_one_bank_per_machine_type():
    """pool_sections (ASDKit's kNN): a clip is measured against every training clip of its machine type,
    whatever their section, and never against another type's; without it, against its own section's."""
    from asd.backends import KNNBackend

    rng = np.random.default_rng(0)
    keys = ["fan/section_00"] * 4 + ["fan/section_01"] * 4 + ["pump/section_00"] * 4
    train = [rng.normal(size=(1, 6)) for _ in keys]
    twin = train[0] + 1e-9  # a clip just like fan section 00's first
    queries, query_keys = [twin, twin, twin], ["fan/section_00", "fan/section_01", "pump/section_00"]

    def nearest(rows):  # cosine distance to the nearest of these training rows
        unit = lambda r: r / np.linalg.norm(r, axis=-1, keepdims=True)  # noqa: E731
        return float((1 - unit(np.concatenate(rows)) @ unit(twin)[0]).min())

    pooled = KNNBackend(density_normalise="none", pool_sections=True)
    pooled.fit(train, ["source"] * len(keys), keys)
    assert sorted(pooled.states) == ["fan", "pump"]
    assert np.allclose(pooled.score(queries, query_keys), [0, 0, nearest(train[8:])], atol=1e-12)
    apart = KNNBackend(density_normalise="none")
    apart.fit(train, ["source"] * len(keys), keys)
    assert np.allclose(apart.score(queries, query_keys), [0, nearest(train[4:8]), nearest(train[8:])], atol=1e-12)
    assert nearest(train[4:8]) > 0.05
    with pytest.raises(ValueError, match="'section 3' is not a section key"):
        pooled.fit(train, ["source"] * len(keys), ["section 3"] * len(keys))

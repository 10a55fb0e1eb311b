import numpy as np
import pytest
import torch

from asd.backends import MahalanobisBackend, MSEBackend
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

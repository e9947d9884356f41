from __future__ import annotations

import numpy as np
import pytest
import torch

from eyepurify.errors import EyepurifyError
from eyepurify.gaze.cnn import MODELS, CNNEstimator, GazeCNN, GazeCNNConfig, flat_size
from eyepurify.gaze.estimators import create_estimator
from eyepurify.gaze.geometry import angular_error, pitchyaw_to_vector
from tests.gaze.toy import blob_gaze_set


def test_fc9600_is_the_flattened_conv_output_at_35x55() -> None:
    assert flat_size(MODELS["paper"]) == 192 * 5 * 10 == 9600
    assert flat_size(GazeCNNConfig(input_size=(36, 60))) == 192 * 5 * 11
    net = GazeCNN(MODELS["paper"])
    assert net.head[1].in_features == 9600 and net.head[1].out_features == 1000
    assert net.head[3].out_features == 3
    feats = net.features(torch.zeros(2, 1, 35, 55))
    assert tuple(feats.shape) == (2, 192, 5, 10)
    with pytest.raises(EyepurifyError, match="too small"):
        flat_size(GazeCNNConfig(input_size=(10, 10)))


@pytest.mark.parametrize("model", ["paper", "test_tiny"])
def test_unit_outputs_and_gradients_reach_every_layer(model: str) -> None:
    torch.manual_seed(0)
    cfg = MODELS[model]
    net = GazeCNN(cfg)
    x = torch.rand(3, 1, *cfg.input_size)
    y = net(x)
    assert y.shape == (3, 3)
    torch.testing.assert_close(y.norm(dim=1), torch.ones(3))
    target = torch.nn.functional.normalize(torch.randn(3, 3), dim=1)
    ((y - target) ** 2).sum(1).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


def _fit(seed: int, xtr: np.ndarray, ytr: np.ndarray, **kw: object) -> CNNEstimator:
    args = {"model": "test_tiny", "seed": seed, "batch": 32, "max_epochs": 4, "patience": 10, "progress": False}
    args.update(kw)
    return create_estimator("cnn", **args).fit(xtr, ytr)  # type: ignore[arg-type, return-value]


def test_deterministic_under_one_seed() -> None:
    xtr, ytr = blob_gaze_set(120, 0)
    xte, _ = blob_gaze_set(20, 1)
    a, b, c = (_fit(s, xtr, ytr).predict(xte) for s in (5, 5, 6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_learns_a_toy_and_stops_early() -> None:
    xtr, ytr = blob_gaze_set(400, 0)
    xte, yte = blob_gaze_set(60, 1)
    mean = pitchyaw_to_vector(ytr).mean(0)
    guess = float(angular_error(np.broadcast_to(mean, (60, 3)), pitchyaw_to_vector(yte)).mean())
    est = _fit(0, xtr, ytr, max_epochs=40, patience=3, lr=3e-3)
    err = float(angular_error(est.predict(xte), yte).mean())
    assert err < 0.5 * guess, f"{err:.2f}° vs mean guess {guess:.2f}°"
    assert 1 <= est.epochs <= 40
    best = min(r["val_error_deg"] for r in est.log)
    assert est.log[-1]["val_error_deg"] >= best  # the kept weights are the best epoch's


def test_predict_before_fit_and_unknown_model() -> None:
    with pytest.raises(EyepurifyError, match="not fitted"):
        CNNEstimator().predict(np.zeros((1, 36, 60), np.uint8))
    with pytest.raises(EyepurifyError, match="unknown gaze CNN"):
        CNNEstimator(model="huge").fit(np.zeros((4, 36, 60), np.uint8), np.zeros((4, 2)))

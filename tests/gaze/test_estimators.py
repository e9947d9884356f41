from __future__ import annotations

import numpy as np
import pytest

from eyepurify.errors import EyepurifyError
from eyepurify.gaze.estimators import ALREstimator, create_estimator
from eyepurify.gaze.geometry import angular_error, pitchyaw_to_vector
from tests.gaze.toy import blob_gaze_set


@pytest.fixture(scope="module")
def toy() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], float]:
    train, test = blob_gaze_set(300, 0), blob_gaze_set(60, 1)
    mean = pitchyaw_to_vector(train[1]).mean(0)
    guess = float(angular_error(np.broadcast_to(mean, (60, 3)), pitchyaw_to_vector(test[1])).mean())
    return train, test, guess


@pytest.mark.parametrize("name", ["svr", "alr", "rf", "knn"])
def test_classical_estimators_beat_the_mean_on_a_toy(name: str, toy) -> None:  # type: ignore[no-untyped-def]
    (xtr, ytr), (xte, yte), guess = toy
    est = create_estimator(name, seed=0).fit(xtr, ytr)
    pred = est.predict(xte)
    assert pred.shape == (len(xte), 2) and np.all(np.isfinite(pred))
    err = float(angular_error(pred, yte).mean())
    assert guess > 15.0
    assert err < 0.5 * guess, f"{name}: {err:.2f}° vs predicting the mean {guess:.2f}°"


def test_alr_reconstructs_a_training_image_exactly() -> None:
    # a test feature equal to a training feature is reconstructed by that one column
    xtr, ytr = blob_gaze_set(80, 3)
    est = ALREstimator(alpha=1e-6).fit(xtr, ytr)
    err = angular_error(est.predict(xtr[:5]), ytr[:5])
    assert np.all(err < 1.0)


def test_rf_is_deterministic_under_a_seed(toy) -> None:  # type: ignore[no-untyped-def]
    (xtr, ytr), (xte, _), _ = toy
    a = create_estimator("rf", seed=4).fit(xtr[:80], ytr[:80]).predict(xte)
    b = create_estimator("rf", seed=4).fit(xtr[:80], ytr[:80]).predict(xte)
    np.testing.assert_array_equal(a, b)


def test_bad_names_and_inputs() -> None:
    with pytest.raises(EyepurifyError, match="unknown gaze estimator"):
        create_estimator("svm")
    with pytest.raises(EyepurifyError, match="N×2"):
        create_estimator("knn").fit(np.zeros((3, 36, 60), np.uint8), np.zeros((3, 3)))
    with pytest.raises(EyepurifyError, match="at least 2"):
        create_estimator("knn").fit(np.zeros((3, 36, 60), np.uint8), np.zeros((2, 2)))

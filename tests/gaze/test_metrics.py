import numpy as np
import pytest

from eyepurify.gaze.metrics import calibrated_errors, ordering_spearman


def test_ordering_spearman_perfect_reversed_and_skipped_groups():
    true = np.array([-10, 0, 10, -10, 0, 10, 5, 5], float)
    groups = ["a", "a", "a", "b", "b", "b", "c", "c"]  # c: one distinct true value, skipped
    pred_ok = np.array([-1, 0, 3, -2, 1, 2, 0, 1], float)
    assert ordering_spearman(pred_ok, true, groups) == (pytest.approx(1.0), 2)
    rho, n = ordering_spearman(-pred_ok, true, groups)
    assert rho == pytest.approx(-1.0) and n == 2
    rho, n = ordering_spearman(np.zeros(8), true, groups)  # constant predictions say nothing
    assert np.isnan(rho) and n == 0
    with pytest.raises(ValueError):
        ordering_spearman(pred_ok, true, groups[:3])


def test_calibration_removes_a_per_person_bias_and_gain():
    rng = np.random.default_rng(0)
    true = rng.uniform(-0.3, 0.3, (60, 2))
    persons = np.repeat(["p1", "p2", "p3"], 20)
    bias = {"p1": (0.2, -0.1), "p2": (-0.15, 0.3), "p3": (0.0, 0.1)}
    pred = np.stack([0.7 * t + bias[p] for t, p in zip(true, persons, strict=True)])
    raw = np.degrees(np.abs(pred - true)).mean()
    cal = calibrated_errors(pred, true, persons, k=9, seed=0)
    assert len(cal) == 60 - 3 * 9
    assert cal.max() < 0.3 and raw > 5  # linear per person: recovered up to the small ridge
    assert len(calibrated_errors(pred[:5], true[:5], persons[:5], k=9)) == 0  # too few samples per person

import numpy as np
import pytest

from eyepurify.bench.stats import (
    bootstrap_stat_change,
    paired_bootstrap,
    pooled_iou,
    pooled_iou_change,
)


def test_zero_change_interval_around_zero():
    a = np.random.default_rng(0).normal(size=200)
    b = a + np.random.default_rng(1).normal(0, 0.1, size=200) * np.where(np.arange(200) % 2, 1, -1)
    delta, lo, hi = paired_bootstrap(a, b)
    assert lo < 0 < hi
    assert abs(delta) < 0.03 and hi - lo < 0.1


def test_identical_values_give_exact_zero():
    a = np.arange(10.0)
    assert paired_bootstrap(a, a) == (0.0, 0.0, 0.0)
    assert bootstrap_stat_change(a, a) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("stat", [np.mean, np.median])
def test_constant_shift_is_recovered_exactly(stat):
    a = np.random.default_rng(2).normal(size=50)
    assert paired_bootstrap(a, a + 1.5, stat=stat) == pytest.approx((1.5, 1.5, 1.5), abs=1e-12)
    assert bootstrap_stat_change(a, a + 1.5, stat=stat) == pytest.approx((1.5, 1.5, 1.5), abs=1e-12)


def test_real_shift_excludes_zero_and_is_seeded():
    rng = np.random.default_rng(3)
    a = rng.normal(size=100)
    b = a + 0.5 + rng.normal(0, 0.3, size=100)
    d, lo, hi = paired_bootstrap(a, b, seed=7)
    assert 0.3 < lo < d < hi < 0.7
    assert paired_bootstrap(a, b, seed=7) == (d, lo, hi)


def test_difference_of_medians_is_not_median_of_differences():
    a = np.array([0.0, 0.0, 10.0])
    b = np.array([10.0, 0.0, 0.0])
    assert bootstrap_stat_change(a, b, stat=np.median)[0] == 0.0
    assert paired_bootstrap(a, b, stat=np.median)[0] == 0.0
    assert paired_bootstrap(a, b, stat=np.mean)[0] == pytest.approx(0.0)
    assert bootstrap_stat_change(np.array([1.0, 2.0, 9.0]), np.array([1.0, 5.0, 9.0]), stat=np.median)[0] == 3.0


def test_bad_inputs():
    with pytest.raises(ValueError):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        paired_bootstrap([], [])


def _conf(tp0, tp1, confused):
    """2×2 confusion with `confused` pixels of class 1 predicted as 0."""
    return np.array([[tp0, 0], [confused, tp1]], np.int64)


def test_pooled_iou_hand_computed():
    c = np.array([[6, 2], [1, 3]])  # class 0: 6 / (6+2+1) ; class 1: 3 / (3+2+1)
    assert pooled_iou(c, [0]) == pytest.approx(6 / 9)
    assert pooled_iou(c, [1]) == pytest.approx(3 / 6)
    assert pooled_iou(c, [0, 1]) == pytest.approx((6 / 9 + 3 / 6) / 2)
    assert np.isnan(pooled_iou(np.array([[5, 0], [0, 0]]), [1]))


def test_pooled_iou_change_zero_and_shift():
    per_a = np.stack([_conf(10, 5, 5) for _ in range(20)])
    d, lo, hi = pooled_iou_change(per_a, per_a, [1])
    assert (d, lo, hi) == (0.0, 0.0, 0.0)
    # every image improves identically: pooled IoU of class 1 goes 5/10 -> 10/10, exactly
    per_b = np.stack([_conf(10, 10, 0) for _ in range(20)])
    d, lo, hi = pooled_iou_change(per_a, per_b, [1])
    assert d == pytest.approx(0.5) and lo == pytest.approx(0.5) and hi == pytest.approx(0.5)


def test_pooled_iou_change_varied_images_interval_contains_delta():
    rng = np.random.default_rng(4)
    per_a = np.stack([_conf(10, int(k), 10 - int(k)) for k in rng.integers(2, 9, 40)])
    per_b = per_a.copy()
    per_b[:, 1, 1] += 2  # b finds 2 more pupil pixels on every image
    d, lo, hi = pooled_iou_change(per_a, per_b, [1], seed=1)
    assert 0 < lo <= d <= hi

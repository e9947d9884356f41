import math

import numpy as np
import pytest

from eyepurify.bench.segmentation import evaluate, group_iou, has_eye, nanmean, pupil_centre_error
from eyepurify.labels import confusion_matrix
from eyepurify.sample import IRIS, PUPIL, SCLERA


def _eye(h: int, w: int, iris: tuple[int, int, int, int], pupil: tuple[int, int, int, int] | None) -> np.ndarray:
    """Label map with sclera everywhere in rows 2..h-2, an iris box and an optional pupil box."""
    m = np.zeros((h, w), np.uint8)
    m[2 : h - 2, :] = SCLERA
    y0, y1, x0, x1 = iris
    m[y0:y1, x0:x1] = IRIS
    if pupil is not None:
        y0, y1, x0, x1 = pupil
        m[y0:y1, x0:x1] = PUPIL
    return m


def test_perfect_prediction():
    gt = _eye(12, 16, (3, 9, 4, 10), (5, 7, 6, 8))
    s = evaluate([gt.copy()], [gt])
    assert s.iou == (1.0, 1.0, 1.0, 1.0)
    assert s.miou_iris_pupil == 1.0 and s.miou_all == 1.0 and s.eye_iou == 1.0
    assert s.pupil_error_px_median == 0.0 and s.n_pupil_measured == 1 and s.n_gt_pupil == 1
    assert s.n_no_eye == 0 and s.no_eye_share == 0.0


def test_known_iou_and_pupil_shift():
    # 10×10, no skin. truth: pupil 2×2 at rows 4-5 cols 4-5 inside iris rows 2-7 cols 2-7.
    gt = np.full((10, 10), SCLERA, np.uint8)
    gt[2:8, 2:8] = IRIS
    gt[4:6, 4:6] = PUPIL
    pred = gt.copy()
    pred[4:6, 4:6] = IRIS
    pred[4:6, 6:8] = PUPIL  # pupil moved 2 px right
    s = evaluate([pred], [gt])
    # pupil: 0 overlap → IoU 0. iris: truth 32 px, pred 32 px, overlap 28 → 28 / 36.
    assert s.iou[PUPIL] == 0.0
    assert s.iou[IRIS] == pytest.approx(28 / 36)
    assert s.iou[SCLERA] == 1.0
    assert math.isnan(s.iou[0])  # skin absent everywhere
    assert s.miou_iris_pupil == pytest.approx(14 / 36)
    assert s.miou_all == pytest.approx((1 + 28 / 36 + 0) / 3)  # NaN skin left out
    assert s.eye_iou == 1.0  # iris ∪ pupil is unchanged
    assert s.pupil_error_px_mean == pytest.approx(2.0)
    assert s.pupil_error_pct_mean == pytest.approx(20.0)  # 2 px of a 10 px wide image
    assert s.pupil_iou_gt_pupil == 0.0


def test_pooled_over_images_and_pupil_subset():
    with_pupil = _eye(12, 20, (3, 9, 6, 12), (5, 7, 8, 10))
    no_pupil = _eye(12, 20, (3, 9, 6, 12), None)  # annotator did not outline a pupil
    # The prediction for the second image draws a pupil the truth lacks.
    preds = [with_pupil.copy(), with_pupil.copy()]
    s = evaluate(preds, [with_pupil, no_pupil])
    assert s.n_gt_pupil == 1 and s.n_pupil_measured == 1 and s.n_pupil_missed == 0
    # pooled pupil: TP 4, FP 4 (second image) → 0.5; on images with a true pupil only → 1.
    assert s.iou[PUPIL] == pytest.approx(0.5)
    assert s.pupil_iou_gt_pupil == 1.0
    # pooled iris: truth 32 + 36, pred 32 + 32, overlap 64 → 64 / 68
    assert s.iou[IRIS] == pytest.approx(64 / 68)
    assert s.eye_iou == 1.0


def test_missed_eye_and_no_eye_share():
    gt = _eye(12, 16, (3, 9, 4, 10), (5, 7, 6, 8))
    blank = np.full_like(gt, SCLERA)
    s = evaluate([blank, gt.copy(), blank], [gt, gt, _eye(12, 16, (3, 9, 4, 10), None)])
    assert s.n_no_eye == 2 and s.no_eye_share == pytest.approx(2 / 3)
    assert s.n_gt_pupil == 2 and s.n_pupil_missed == 1 and s.n_pupil_measured == 1
    assert pupil_centre_error(blank, gt) == math.inf
    assert pupil_centre_error(gt, _eye(12, 16, (3, 9, 4, 10), None)) is None
    assert not has_eye(blank) and has_eye(gt)


def test_pupil_error_uses_iris_when_no_pupil_predicted():
    gt = _eye(20, 20, (4, 16, 4, 16), (8, 12, 8, 12))  # both centred at (9.5, 9.5)
    pred = _eye(20, 20, (4, 16, 6, 18), None)  # iris only, centred at (11.5, 9.5)
    assert pupil_centre_error(pred, gt) == pytest.approx(2.0, abs=0.05)


def test_group_iou_and_nanmean():
    gt = np.array([[2, 3, 0, 1]], np.uint8)
    pred = np.array([[3, 2, 2, 1]], np.uint8)
    conf = confusion_matrix(pred, gt)
    assert group_iou(conf, (IRIS, PUPIL)) == pytest.approx(2 / 3)
    assert math.isnan(group_iou(np.zeros((4, 4)), (IRIS,)))
    assert nanmean([1.0, float("nan"), 3.0]) == 2.0 and math.isnan(nanmean([float("nan")]))


def test_bad_inputs():
    gt = _eye(12, 16, (3, 9, 4, 10), None)
    with pytest.raises(ValueError, match="image 0: prediction is"):
        evaluate([gt[:, :8]], [gt])
    with pytest.raises(ValueError, match="labels must be 0..3"):
        evaluate([gt + 4], [gt])
    with pytest.raises(ValueError, match="2 predictions but 1"):
        evaluate([gt, gt], [gt])
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate([], [])
    before = gt.copy()
    evaluate([gt], [gt])
    assert np.array_equal(gt, before)

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from eyepurify.labels import (
    PALETTE,
    colorize,
    confusion_matrix,
    fit_pupil,
    iou_from_confusion,
    largest_component,
    orphan_fix,
    overlay,
    pupil_center,
)
from eyepurify.sample import IRIS, PUPIL, SCLERA, SKIN

from .synthetic_eyes import synthetic_eye


def disk(h, w, cx, cy, r):
    yy, xx = np.mgrid[:h, :w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def eye(h=40, w=60, iris=(30, 20, 10), pupil=(30, 20, 4)):
    lab = np.zeros((h, w), np.uint8)
    lab[5:35, 5:55] = SCLERA
    if iris:
        lab[disk(h, w, *iris)] = IRIS
    if pupil:
        lab[disk(h, w, *pupil)] = PUPIL
    return lab


# ---------------------------------------------------------------- largest_component


def test_largest_component_picks_biggest_8_connected_blob():
    m = np.zeros((10, 10), bool)
    m[0, 0] = True
    m[5:8, 5:8] = True
    m[4, 4] = True  # diagonal neighbour: same 8-connected blob
    out = largest_component(m)
    assert out.sum() == 10 and out[4, 4] and not out[0, 0]
    assert not largest_component(np.zeros((3, 3), bool)).any()


# ---------------------------------------------------------------- orphan_fix branches


def test_normal_eye_is_unchanged():
    lab = eye()
    np.testing.assert_array_equal(orphan_fix(lab), lab)


def test_orphan_iris_gets_centred_pupil_disk():
    lab = eye(pupil=None)
    out = orphan_fix(lab, pupil_factor=0.4)
    pupil = out == PUPIL
    iris_area = (lab == IRIS).sum()
    expected_r = 0.4 * np.sqrt(iris_area / np.pi)
    assert pupil.any()
    assert abs(pupil.sum() - np.pi * expected_r**2) < 0.25 * np.pi * expected_r**2
    ys, xs = np.nonzero(pupil)
    assert abs(xs.mean() - 30) < 0.5 and abs(ys.mean() - 20) < 0.5
    # Only iris pixels changed, and only into pupil.
    changed = out != lab
    assert (lab[changed] == IRIS).all() and (out[changed] == PUPIL).all()


def test_pupil_factor_scales_the_disk():
    lab = eye(pupil=None)
    small = (orphan_fix(lab, pupil_factor=0.2) == PUPIL).sum()
    big = (orphan_fix(lab, pupil_factor=0.6) == PUPIL).sum()
    assert big > 4 * small > 0
    with pytest.raises(ValueError, match="pupil_factor"):
        orphan_fix(lab, pupil_factor=0)


def test_pupil_outside_iris_is_replaced():
    lab = eye(pupil=None)
    lab[disk(40, 60, 10, 10, 2)] = PUPIL  # a dark blob on the sclera, not touching the iris
    out = orphan_fix(lab)
    assert out[10, 10] == SCLERA  # the stray blob took its surroundings' label
    ys, xs = np.nonzero(out == PUPIL)
    assert abs(xs.mean() - 30) < 0.5 and abs(ys.mean() - 20) < 0.5


def test_only_largest_iris_and_pupil_are_kept():
    lab = eye()
    lab[30:33, 8:11] = IRIS  # stray iris on the sclera
    lab[1:3, 1:3] = IRIS  # stray iris on the skin
    lab[disk(40, 60, 37, 20, 1)] = PUPIL  # second small pupil inside the iris
    out = orphan_fix(lab)
    assert (out[30:33, 8:11] == SCLERA).all()
    assert (out[1:3, 1:3] == SKIN).all()
    assert (out[disk(40, 60, 37, 20, 1)] == IRIS).all()
    assert ndimage.label(out == PUPIL, np.ones((3, 3)))[1] == 1
    np.testing.assert_array_equal(out == PUPIL, disk(40, 60, 30, 20, 4))


def test_keep_largest_false_keeps_stray_iris():
    lab = eye()
    lab[30:33, 8:11] = IRIS
    out = orphan_fix(lab, keep_largest=False)
    np.testing.assert_array_equal(out, lab)


def test_iris_split_by_pupil_stays_whole():
    lab = np.full((30, 40), SCLERA, np.uint8)
    lab[10:20, 5:15] = IRIS
    lab[10:20, 15:25] = PUPIL  # pupil spanning the full iris height splits it in two
    lab[10:20, 25:30] = IRIS
    np.testing.assert_array_equal(orphan_fix(lab), lab)


def test_no_iris_keeps_largest_pupil_only():
    lab = np.zeros((20, 20), np.uint8)
    lab[2:8, 2:8] = PUPIL
    lab[15, 15] = PUPIL
    out = orphan_fix(lab)
    assert (out[2:8, 2:8] == PUPIL).all() and out[15, 15] == SKIN
    empty = np.zeros((5, 5), np.uint8)
    np.testing.assert_array_equal(orphan_fix(empty), empty)


def test_tiny_orphan_iris_still_gets_a_pupil():
    lab = np.zeros((9, 9), np.uint8)
    lab[4, 4] = IRIS
    lab[4, 5] = IRIS
    out = orphan_fix(lab, pupil_factor=0.1)
    assert (out == PUPIL).sum() == 1 and (out == IRIS).sum() == 1


def test_input_is_not_modified_and_checked():
    lab = eye(pupil=None)
    before = lab.copy()
    out = orphan_fix(lab)
    np.testing.assert_array_equal(lab, before)
    assert out is not lab and out.dtype == np.uint8
    with pytest.raises(ValueError, match="uint8"):
        orphan_fix(lab.astype(np.int32))
    with pytest.raises(ValueError, match="0..3"):
        orphan_fix(np.full((3, 3), 7, np.uint8))


label_maps = arrays(np.uint8, st.tuples(st.integers(1, 14), st.integers(1, 14)), elements=st.integers(0, 3))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(label_maps, st.floats(0.05, 1.5), st.booleans())
def test_properties(lab, factor, keep):
    before = lab.copy()
    out = orphan_fix(lab, pupil_factor=factor, keep_largest=keep)
    np.testing.assert_array_equal(lab, before)  # pure
    assert out.shape == lab.shape and out.dtype == np.uint8 and out.max() <= 3
    np.testing.assert_array_equal(orphan_fix(out, pupil_factor=factor, keep_largest=keep), out)  # idempotent
    attention = (lab == IRIS) | (lab == PUPIL)
    if (lab == IRIS).any():
        # The pupil stays within the (hole-filled) input iris ∪ pupil, and exists.
        assert not ((out == PUPIL) & ~ndimage.binary_fill_holes(attention)).any()
        assert (out == PUPIL).any()
    # Only iris/pupil pixels are relabelled, and no new iris appears outside them.
    changed = out != lab
    assert (attention | ndimage.binary_fill_holes(lab == IRIS))[changed].all()
    if keep:
        assert ndimage.label(out == PUPIL, np.ones((3, 3)))[1] <= 1
        region, _ = ndimage.label((out == IRIS) | (out == PUPIL), np.ones((3, 3)))
        assert len(np.unique(region[out == IRIS])) <= 1


# ---------------------------------------------------------------- pupil centre


def test_pupil_center_uses_ellipse_of_the_pupil():
    lab = np.zeros((60, 80), np.uint8)
    lab[disk(60, 80, 40, 30, 15)] = IRIS
    yy, xx = np.mgrid[:60, :80]
    lab[((xx - 41.5) / 7) ** 2 + ((yy - 28.5) / 5) ** 2 <= 1] = PUPIL
    fit = fit_pupil(lab)
    assert fit.method == "pupil_ellipse" and fit.ellipse is not None
    np.testing.assert_allclose(fit.center, [41.5, 28.5], atol=0.3)
    np.testing.assert_allclose(fit.centroid, [41.5, 28.5], atol=0.3)
    (w, h) = sorted(fit.ellipse[1])
    assert 8 < w < 12 and 12 < h < 16  # axes ≈ 2·5 and 2·7 (contour through pixel centres)
    np.testing.assert_array_equal(pupil_center(lab), fit.center)


def test_pupil_center_ignores_small_blobs_and_falls_back():
    lab = np.zeros((40, 60), np.uint8)
    lab[disk(40, 60, 20, 20, 8)] = IRIS
    lab[disk(40, 60, 20, 20, 3)] = PUPIL
    lab[35, 55] = PUPIL
    np.testing.assert_allclose(pupil_center(lab), [20, 20], atol=0.2)
    # Tiny pupil: fewer than 5 contour points -> centroid.
    lab2 = np.zeros((10, 10), np.uint8)
    lab2[4:6, 4:6] = PUPIL
    fit = fit_pupil(lab2)
    assert fit.method == "pupil_centroid" and fit.ellipse is None
    np.testing.assert_allclose(fit.center, [4.5, 4.5])
    # No pupil: iris (hole-filled) ellipse.
    lab3 = np.zeros((40, 60), np.uint8)
    lab3[disk(40, 60, 33, 18, 9)] = IRIS
    fit = fit_pupil(lab3)
    assert fit.method == "iris_ellipse"
    np.testing.assert_allclose(fit.center, [33, 18], atol=0.3)
    assert fit_pupil(np.zeros((5, 5), np.uint8)) is None
    assert pupil_center(np.full((5, 5), SCLERA, np.uint8)) is None


def test_degenerate_pupil_line_falls_back_to_centroid():
    lab = np.zeros((10, 20), np.uint8)
    lab[5, 2:15] = PUPIL
    fit = fit_pupil(lab)
    assert np.isfinite(fit.center).all()
    np.testing.assert_allclose(fit.center, [8, 5], atol=1.0)


def test_pupil_center_matches_synthetic_truth():
    rng = np.random.default_rng(0)
    for _ in range(10):
        _, lab = synthetic_eye(rng, 48, 80)
        ys, xs = np.nonzero(lab == PUPIL)
        c = pupil_center(lab)
        assert np.hypot(c[0] - xs.mean(), c[1] - ys.mean()) < 1.0


# ---------------------------------------------------------------- colours, IoU


def test_colorize_and_overlay():
    lab = eye()
    rgb = colorize(lab)
    assert rgb.shape == (40, 60, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[20, 30], PALETTE[PUPIL])
    img = np.full((40, 60, 3), 100, np.uint8)
    ov = overlay(img, lab, alpha=0.5)
    np.testing.assert_array_equal(ov[0, 0], [100, 100, 100])  # skin untouched
    np.testing.assert_array_equal(ov[20, 30], np.round((100 + PALETTE[PUPIL].astype(float)) / 2))
    assert len({tuple(c) for c in PALETTE}) == 4
    with pytest.raises(ValueError):
        overlay(img[:10], lab)


def test_confusion_and_iou():
    t = np.array([[0, 0, 1, 1], [2, 2, 3, 3]], np.uint8)
    p = np.array([[0, 1, 1, 1], [2, 2, 2, 3]], np.uint8)
    conf = confusion_matrix(p, t)
    assert conf.sum() == 8 and conf[0, 1] == 1 and conf[3, 2] == 1
    miou, per = iou_from_confusion(conf)
    np.testing.assert_allclose(per, [1 / 2, 2 / 3, 2 / 3, 1 / 2])
    assert miou == pytest.approx(np.mean(per))
    miou, per = iou_from_confusion(confusion_matrix(t[:1], t[:1]))
    assert miou == 1.0 and np.isnan(per[2:]).all()


def test_cv2_contour_convention_matches_centroid():
    # A symmetric square: ellipse and centroid agree with pixel centres at integers.
    lab = np.zeros((20, 20), np.uint8)
    lab[5:12, 8:15] = PUPIL
    fit = fit_pupil(lab)
    np.testing.assert_allclose(fit.center, [11, 8], atol=0.05)


def test_ellipse_recovers_centre_of_occluded_pupil():
    # Upper third of the pupil hidden by the eyelid: the centroid moves down, the ellipse does not.
    lab = np.full((60, 60), SCLERA, np.uint8)
    lab[disk(60, 60, 30, 30, 22)] = IRIS
    lab[disk(60, 60, 30, 30, 12)] = PUPIL
    lab[:25] = SKIN
    fit = fit_pupil(lab)
    assert fit.method == "pupil_ellipse"
    assert abs(fit.center[1] - 30) < 1.0 < abs(fit.centroid[1] - 30)


def test_orphan_fix_on_real_masks(shared_data):
    from eyepurify.io import read_mask

    masks = sorted((shared_data / "real_eyes_seg" / "masks").glob("*.png"))[:60]
    assert masks
    orphans = 0
    for path in masks:
        lab = read_mask(path)
        out = orphan_fix(lab)
        if (lab == IRIS).any():
            assert (out == PUPIL).any(), path
            assert not ((out == PUPIL) & ~ndimage.binary_fill_holes((lab == IRIS) | (lab == PUPIL))).any()
            orphans += not (lab == PUPIL).any()
        np.testing.assert_array_equal(orphan_fix(out), out)
        assert fit_pupil(out) is not None or not (lab >= IRIS).any()
    assert orphans > 0  # about 4 in 10 real masks have no pupil

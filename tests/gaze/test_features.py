from __future__ import annotations

import numpy as np
import pytest

from eyepurify.gaze.features import FEATURE_SIZE, appearance_features, to_gray


def test_shape_and_unit_length() -> None:
    rng = np.random.default_rng(0)
    ims = rng.integers(0, 256, (5, 36, 60, 3), dtype=np.uint8)
    f = appearance_features(ims)
    assert f.shape == (5, FEATURE_SIZE[0] * FEATURE_SIZE[1]) == (5, 135)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-12)


def test_invariant_to_a_one_to_one_brightness_shift() -> None:
    # histogram equalisation depends only on the order of grey levels, so shifting every
    # level by a constant (no clipping, no merged levels) leaves the feature unchanged
    rng = np.random.default_rng(1)
    g = rng.integers(0, 120, (36, 60), dtype=np.uint8)
    np.testing.assert_allclose(appearance_features([g]), appearance_features([g + 100]), atol=1e-12)


def test_rgb_gray_and_single_channel_agree() -> None:
    rng = np.random.default_rng(2)
    g = rng.integers(0, 256, (36, 60), dtype=np.uint8)
    rgb = np.repeat(g[..., None], 3, axis=2)
    a, b, c = appearance_features([g]), appearance_features([rgb]), appearance_features([g[..., None]])
    np.testing.assert_allclose(a, b, atol=1e-12)
    np.testing.assert_allclose(a, c, atol=1e-12)


def test_different_images_differ_and_constant_is_finite() -> None:
    left = np.full((36, 60), 200, np.uint8)
    left[:, :20] = 20
    right = left[:, ::-1].copy()
    f = appearance_features([left, right, np.full((36, 60), 7, np.uint8)])
    assert np.all(np.isfinite(f))
    assert np.linalg.norm(f[0] - f[1]) > 0.5


def test_to_gray_resizes_and_rejects_bad_input() -> None:
    ims = [np.zeros((72, 120, 3), np.uint8), np.zeros((36, 60), np.uint8)]
    assert to_gray(ims, (36, 60)).shape == (2, 36, 60)
    with pytest.raises(ValueError):
        to_gray([np.zeros((36, 60, 3), np.float32)])
    with pytest.raises(ValueError):
        to_gray([np.zeros((36, 60, 2), np.uint8)])

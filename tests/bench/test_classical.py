import numpy as np

from eyepurify.bench.classical import histogram_match, reference_stats, reinhard


def _img(seed, lo, hi, shape=(20, 30, 3)):
    return np.random.default_rng(seed).integers(lo, hi, shape).astype(np.uint8)


def test_histogram_match_moves_distribution_to_reference():
    ref = reference_stats([_img(0, 150, 250), _img(1, 150, 250)])
    src = _img(2, 0, 100)
    out = histogram_match(src, ref)
    assert out.shape == src.shape and out.dtype == np.uint8
    assert abs(out.mean() - 200) < 10
    # monotone per channel: order of pixel values is kept
    a, b = src[..., 0].ravel(), out[..., 0].ravel()
    order = np.argsort(a, kind="stable")
    assert np.all(np.diff(b[order].astype(int)) >= 0)


def test_reinhard_matches_lab_moments_and_is_identity_on_reference():
    ref_img = _img(0, 50, 200)
    ref = reference_stats([ref_img])
    out = reinhard(ref_img, ref)
    assert np.abs(out.astype(int) - ref_img.astype(int)).max() <= 2
    dark = _img(3, 0, 60)
    bright = reinhard(dark, ref)
    assert bright.mean() > dark.mean() + 40


def test_inputs_not_modified():
    src = _img(2, 0, 100)
    copy = src.copy()
    ref = reference_stats([_img(0, 150, 250)])
    histogram_match(src, ref)
    reinhard(src, ref)
    np.testing.assert_array_equal(src, copy)

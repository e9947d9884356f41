import numpy as np
import pytest

from eyepurify.bench.metrics import psnr, ssim


def test_psnr_known_value():
    a = np.zeros((8, 8, 3), np.uint8)
    b = a + 51  # error 0.2 everywhere -> mse 0.04 -> 13.98 dB
    assert psnr(a, b) == pytest.approx(10 * np.log10(1 / 0.04))
    assert psnr(a, a) == float("inf")


def test_ssim_properties():
    rng = np.random.default_rng(0)
    a = rng.random((32, 40))
    assert ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    very = np.clip(a + rng.normal(0, 0.3, a.shape), 0, 1)
    assert 1 > ssim(a, noisy) > ssim(a, very)
    assert ssim(a, noisy) == pytest.approx(ssim(noisy, a))
    # a brightness shift hurts SSIM less than structure loss of the same MSE
    shifted = np.clip(a + 0.1, 0, 1)
    assert ssim(a, shifted) > ssim(a, noisy)


def test_shape_mismatch():
    with pytest.raises(ValueError):
        psnr(np.zeros((2, 2)), np.zeros((2, 3)))

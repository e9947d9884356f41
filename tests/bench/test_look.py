import numpy as np
import pytest

from eyepurify.bench.look import (
    checkerboard_ratio,
    iris_chroma_change,
    iris_colour_class,
    luminance_spread,
    period2_share,
    skin_ring,
    skin_ring_change,
)
from eyepurify.eyescale import Box


def _eye(h=80, w=120):
    lab = np.zeros((h, w), np.uint8)
    lab[30:50, 40:80] = 1
    lab[34:46, 54:66] = 2
    return lab


def test_skin_ring_excludes_the_grown_eye_and_stays_in_the_box():
    lab = _eye()
    ring = skin_ring(lab, Box(20, 10, 100, 70))
    assert not ring[lab > 0].any() and not ring[:10].any() and not ring[:, :20].any()
    assert ring[12, 22] and not ring[40, 30]  # 10 px left of the 40-px eye: inside its 14-px growth
    raw = np.full((80, 120, 3), 100, np.uint8)
    out = raw.copy()
    out[lab > 0] = 200  # only the eye changed
    assert skin_ring_change(raw, out, lab, Box(20, 10, 100, 70)) == 0.0
    out[:] = 110
    assert skin_ring_change(raw, out, lab, Box(20, 10, 100, 70)) == pytest.approx(10.0)


def test_iris_chroma_and_colour_class():
    lab = _eye()
    brown = np.zeros((80, 120, 3), np.uint8)
    brown[...] = (84, 46, 20)
    blue = brown.copy()
    blue[lab == 2] = (84, 122, 168)
    assert iris_chroma_change(brown, brown, lab) == 0.0
    assert iris_chroma_change(brown, blue, lab) > 20
    assert iris_colour_class(brown, lab) == "brown" and iris_colour_class(blue, lab) == "blue"
    assert iris_colour_class(brown, np.zeros_like(lab)) is None


def test_checkerboard_and_spread():
    rng = np.random.default_rng(0)
    smooth = np.clip(128 + rng.normal(0, 5, (36, 60, 3)), 0, 255)
    grid = smooth + 20 * (((np.arange(36)[:, None] + np.arange(60)[None]) % 2)[..., None] - 0.5)
    assert period2_share(grid) > 3 * period2_share(smooth)
    assert checkerboard_ratio(grid, smooth) > 3
    ramp = np.tile(np.linspace(0, 255, 60), (36, 1))
    assert luminance_spread(ramp) == pytest.approx(0.9 * 0.6 * 255, rel=0.1)

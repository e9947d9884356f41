"""The Python API takes the arrays users have (issue 23, item 4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eyepurify.models.export import save_model
from eyepurify.models.segmentation import create_segmentation_net
from eyepurify.models.transformer import create_transform_net
from eyepurify.purify import Purifier
from eyepurify.sample import EyeSample
from eyepurify.segment import Segmenter


@pytest.fixture(scope="module")
def purifier(tmp_path_factory: pytest.TempPathFactory) -> Purifier:
    d = tmp_path_factory.mktemp("m")
    torch.manual_seed(0)
    net = create_transform_net("test_tiny").eval()
    save_model(d / "p.safetensors", net, {"net": net.config.to_dict(), "train": {"size": [36, 60]}})
    seg = create_segmentation_net("test_tiny").eval()
    save_model(d / "s.safetensors", seg, {"kind": "segmentation", "net": seg.config.to_dict(), "size": [36, 60]})
    return Purifier.from_pretrained(d / "p.safetensors", segmenter=d / "s.safetensors", gray=None)


def gray_patch(h: int = 36, w: int = 60) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(60, 200, (h, w), dtype=np.uint8)


def test_gray_2d_array_is_purified_and_comes_back_2d(purifier):
    g = gray_patch()
    y = purifier(g)  # what np.asarray(PIL.Image.open(mpiigaze_patch)) gives
    assert y.shape == (36, 60) and y.dtype == np.uint8
    y1 = purifier(g[..., None])
    assert y1.shape == (36, 60, 1)
    np.testing.assert_array_equal(y1[..., 0], y)
    y3 = purifier(np.repeat(g[..., None], 3, axis=-1))
    assert y3.shape == (36, 60, 3)
    np.testing.assert_array_equal(y3[..., 0], y)
    outs = purifier([g, np.repeat(g[..., None], 3, axis=-1)])
    assert [o.shape for o in outs] == [(36, 60), (36, 60, 3)]


@pytest.mark.parametrize(("array", "says"), [
    (np.zeros((36, 60, 3), np.float32), "float"),
    (np.zeros((36, 60, 3), np.uint16), "8 bits"),
    (np.zeros((36, 60, 4), np.uint8), "alpha"),
    (np.zeros((36, 60, 2), np.uint8), "H×W×3"),
])
def test_other_arrays_are_refused_with_the_fix(purifier, array, says):
    with pytest.raises(ValueError, match=says):
        purifier(array)


def test_segmenter_takes_gray_2d(purifier):
    seg = purifier.segmenter
    assert isinstance(seg, Segmenter)
    assert seg(gray_patch()).shape == (36, 60)


def test_eyesample_repr_prints_shapes_not_arrays():
    s = EyeSample(image=np.zeros((36, 60, 3), np.uint8), labels=np.zeros((36, 60), np.uint8),
                  gaze=np.array([0.1, 0.2, -0.97]), landmarks={"iris": np.zeros((32, 2))}, source="p01/day01/0001 left")
    r = repr(s)
    assert "36×60×3 uint8" in r and "36×60 uint8" in r and "iris: 32 points" in r and "p01/day01" in r
    assert len(r) < 300 and "[[" not in r

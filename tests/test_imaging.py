"""One resize policy and gray conversion (eyepurify.imaging)."""

import cv2
import numpy as np

from eyepurify.cli import main
from eyepurify.imaging import is_gray, resize_image, resize_images, resize_labels, to_gray
from eyepurify.io import read_image


def test_resize_policy():
    img = np.arange(8 * 12 * 3, dtype=np.uint8).reshape(8, 12, 3)
    assert resize_image(img, (8, 12)) is img
    assert resize_image(img, (4, 6)).shape == (4, 6, 3) and resize_image(img, (16, 24)).shape == (16, 24, 3)
    lab = np.zeros((8, 12), np.uint8)
    lab[2:6, 3:9] = 3
    up = resize_labels(lab, (16, 24))
    assert set(np.unique(up)) == {0, 3}  # nearest: no blended label values


def test_resize_policy_area_only_when_no_side_grows():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    area = cv2.resize(img, (15, 10), interpolation=cv2.INTER_AREA)
    assert np.array_equal(resize_image(img, (10, 15)), area)
    assert np.array_equal(resize_image(img, (20, 15)), cv2.resize(img, (15, 20), interpolation=cv2.INTER_AREA))
    # one side grows: bilinear (area is not defined for growing)
    assert np.array_equal(resize_image(img, (10, 40)), cv2.resize(img, (40, 10), interpolation=cv2.INTER_LINEAR))


def test_resize_keeps_one_channel_and_float():
    one = np.zeros((8, 12, 1), np.uint8)
    assert resize_image(one, (4, 6)).shape == (4, 6, 1)
    assert resize_image(np.zeros((8, 12), np.uint8), (4, 6)).shape == (4, 6)
    f = resize_image(np.ones((8, 12), np.float32), (4, 6))
    assert f.dtype == np.float32 and np.allclose(f, 1)
    assert [im.shape for im in resize_images([np.zeros((8, 12, 3), np.uint8), np.zeros((4, 4, 3), np.uint8)], (2, 3))] == [(2, 3, 3)] * 2


def test_gray_conversion():
    img = np.zeros((2, 2, 3), np.uint8)
    img[0, 0] = (255, 0, 0)
    img[1, 1] = (10, 200, 30)
    g = to_gray(img)
    assert is_gray(g) and not is_gray(img)
    assert g[0, 0, 0] == 76 and g[1, 1, 0] == round(0.299 * 10 + 0.587 * 200 + 0.114 * 30)


def test_render_gray(tmp_path):
    assert main(["render", "--domain", "wild", "--n", "2", "--size", "36x60", "--gray", "--out", str(tmp_path / "g")]) == 0
    assert is_gray(read_image(tmp_path / "g" / "wild" / "000000.png"))

"""The one safe decode (eyepurify.io.read_image): EXIF orientation, bit-depth policy, the
pixel limit checked from the header, and one-line errors naming the file."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from eyepurify.errors import DataError
from eyepurify.io import DEFAULT_MAX_PIXELS, max_pixels, pixel_limit, read_image, read_mask

from .bad_corpus import eye, png_with_header


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    up = eye(0)
    # what a camera stores for each EXIF orientation, so that applying it shows ``up``
    stored = {
        1: up, 2: up[:, ::-1], 3: up[::-1, ::-1], 4: up[::-1],
        5: up.transpose(1, 0, 2), 6: np.rot90(up, 1), 7: up.transpose(1, 0, 2)[::-1, ::-1], 8: np.rot90(up, -1),
    }[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "x.png"
    Image.fromarray(np.ascontiguousarray(stored)).save(path, exif=exif.tobytes())
    np.testing.assert_array_equal(read_image(path), up)


def test_bit_depth_policy(tmp_path):
    g = eye(0)[..., 0]
    ok = {
        "f01.tif": Image.fromarray(g.astype(np.float32) / 255, mode="F"),
        "i16.png": Image.fromarray(g.astype(np.uint16) * 257),
        "i32.tif": Image.fromarray(g.astype(np.int32) * 257, mode="I"),
    }
    for name, im in ok.items():
        im.save(tmp_path / name)
        np.testing.assert_array_equal(read_image(tmp_path / name)[..., 0], g, err_msg=name)
    bad = {
        "f255.tif": (Image.fromarray(g.astype(np.float32), mode="F"), "only 0–1 floats"),
        "i32big.tif": (Image.fromarray(g.astype(np.int32) << 20, mode="I"), "outside 16 bits"),
    }
    for name, (im, words) in bad.items():
        im.save(tmp_path / name)
        with pytest.raises(DataError, match=words) as e:
            read_image(tmp_path / name)
        assert str(e.value).startswith(str(tmp_path / name))
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(tmp_path / "m16.png")
    with pytest.raises(DataError, match="bit depth"):
        read_mask(tmp_path / "m16.png")


def test_bomb_header_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_with_header(50000, 50000))
    with pytest.raises(DataError, match=r"bomb.png: image is 2,500,000,000 pixels, over the limit"):
        read_image(path)
    Image.fromarray(eye(0, 100, 100)).save(tmp_path / "big.png")
    assert read_image(tmp_path / "big.png").shape == (100, 100, 3)
    with pixel_limit(9999):
        assert max_pixels() == 9999
        with pytest.raises(DataError, match="100×100 = 10,000 pixels, over the limit of 9,999"):
            read_image(tmp_path / "big.png")
    assert max_pixels() == DEFAULT_MAX_PIXELS
    with pixel_limit(10**10):  # above Pillow's own guard: the header check is ours
        assert Image.MAX_IMAGE_PIXELS >= 10**10
    assert Image.MAX_IMAGE_PIXELS < 10**10


def test_not_files(tmp_path):
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(DataError, match="is a folder"):
        read_image(tmp_path / "dir.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        read_image(tmp_path / "empty.png")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.png")
        with pytest.raises(DataError, match="not a regular file"):
            read_image(tmp_path / "fifo.png")  # refused, never opened (it would block)

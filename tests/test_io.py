import numpy as np
import pytest
from PIL import Image

from eyepurify.errors import DataError
from eyepurify.io import read_image, read_mask, write_image, write_json


def test_read_image_modes(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    g = read_image(tmp_path / "g.png")
    assert g.shape == (6, 8, 3) and np.array_equal(g[..., 2], rgb[..., 0])
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgb)
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(tmp_path / "d16.png")
    np.testing.assert_array_equal(read_image(tmp_path / "d16.png")[..., 0], rgb[..., 0])


def test_read_image_corrupt_and_truncated(tmp_path):
    (tmp_path / "c.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="c.png"):
        read_image(tmp_path / "c.png")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8) + 7).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="t.png"):
        read_image(tmp_path / "t.png")
    with pytest.raises(DataError, match="not found"):
        read_image(tmp_path / "missing.png")


def test_read_mask_checks(tmp_path):
    m = np.array([[0, 1], [2, 3]], np.uint8)
    Image.fromarray(m).save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png", (2, 2)), m)
    with pytest.raises(DataError, match="image is"):
        read_mask(tmp_path / "m.png", (3, 2))
    Image.fromarray(np.array([[0, 9], [2, 3]], np.uint8)).save(tmp_path / "u.png")
    with pytest.raises(DataError, match=r"unknown label values \[9\]"):
        read_mask(tmp_path / "u.png")
    Image.fromarray(m.astype(np.uint16)).save(tmp_path / "d16.png")
    with pytest.raises(DataError, match="bit depth"):
        read_mask(tmp_path / "d16.png")
    Image.fromarray(np.dstack([m, m, m])).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "rgb.png"), m)
    Image.fromarray(np.dstack([m, m * 0, m])).save(tmp_path / "col.png")
    with pytest.raises(DataError, match="colour"):
        read_mask(tmp_path / "col.png")


def test_atomic_writes_leave_no_temp(tmp_path):
    write_image(tmp_path / "sub" / "x.png", np.zeros((3, 4, 3), np.uint8))
    write_json(tmp_path / "x.json", {"a": np.float32(1.5), "b": np.arange(2)})
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["x.json", "x.png"]


def test_written_files_get_normal_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        write_image(tmp_path / "p.png", np.zeros((3, 4, 3), np.uint8))
    finally:
        os.umask(old)
    assert (tmp_path / "p.png").stat().st_mode & 0o777 == 0o644

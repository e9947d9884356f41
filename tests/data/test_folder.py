from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eyepurify.data.folder import ImageFolder, sniff
from eyepurify.errors import DataError
from eyepurify.io import write_image
from eyepurify.sample import IRIS, PUPIL, SCLERA


def eye(h: int = 24, w: int = 32, pupil: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A small image and its label map: sclera box, iris square, 3×3 pupil at (x=16, y=12)."""
    labels = np.zeros((h, w), np.uint8)
    labels[6:18, 4:28] = SCLERA
    labels[8:16, 12:20] = IRIS
    if pupil:
        labels[11:14, 15:18] = PUPIL
    image = np.stack([labels * 60] * 3, axis=2).astype(np.uint8)
    return image, labels


def make(root: Path, names: list[str], nested: bool, masks: bool = True) -> None:
    images = root / "images" if nested else root
    for i, name in enumerate(names):
        image, labels = eye(pupil=i % 2 == 0)
        write_image(images / f"{name}.png", image)
        if masks:
            write_image(root / "masks" / f"{name}.png", labels)


@pytest.mark.parametrize("nested", [True, False])
def test_both_layouts_with_masks(tmp_path: Path, nested: bool) -> None:
    make(tmp_path, ["b", "a", "c"], nested)
    ds = ImageFolder(tmp_path)
    assert len(ds) == 3 and ds.bad == []
    assert [Path(f).stem for f in ds.files] == ["a", "b", "c"]
    s = ds[0]  # "a" was written second: no pupil
    assert s.labels is not None and not (s.labels == PUPIL).any() and s.pupil_center is None
    s = ds[1]
    _, labels = eye()
    np.testing.assert_array_equal(s.labels, labels)
    np.testing.assert_allclose(s.pupil_center, [16.0, 12.0])
    assert s.source.endswith("b.png") and s.gaze is None
    assert sniff(tmp_path)


def test_masks_option(tmp_path: Path) -> None:
    make(tmp_path, ["a"], nested=False)
    assert ImageFolder(tmp_path, masks=False)[0].labels is None
    assert ImageFolder(tmp_path, masks=True)[0].labels is not None
    make(tmp_path / "nomasks", ["a"], nested=False, masks=False)
    assert ImageFolder(tmp_path / "nomasks")[0].labels is None
    with pytest.raises(DataError, match="no masks/ folder"):
        ImageFolder(tmp_path / "nomasks", masks=True)


def test_missing_mask_is_a_bad_sample(tmp_path: Path) -> None:
    make(tmp_path, ["a", "b"], nested=True)
    (tmp_path / "masks" / "b.png").unlink()
    write_image(tmp_path / "masks" / "zz.png", eye()[1])
    ds = ImageFolder(tmp_path)
    assert ds[0].labels is not None
    with pytest.raises(DataError, match=r"b\.png: mask missing"):
        ds[1]
    good, bad = ds.scan()
    assert good == [0]
    assert any("zz.png: mask has no image" in b.reason for b in bad)
    assert any("mask missing" in b.reason for b in bad)


def test_size_resizes_images_area_and_labels_nearest(tmp_path: Path) -> None:
    make(tmp_path, ["a"], nested=True)
    s = ImageFolder(tmp_path, size=(12, 16))[0]
    assert s.image.shape == (12, 16, 3) and s.labels.shape == (12, 16)
    assert set(np.unique(s.labels)) <= {0, SCLERA, IRIS, PUPIL}
    # Area interpolation averages each 2×2 block: rows 10-11, cols 14-15 hold three iris
    # pixels (120) and one pupil pixel (180); nearest keeps one of the labels.
    assert s.image[5, 7, 0] == 135
    np.testing.assert_array_equal(s.labels, eye()[1][::2, ::2])
    assert s.pupil_center is not None and abs(s.pupil_center[0] - 7.5) <= 1 and abs(s.pupil_center[1] - 5.5) <= 1


def test_recursive(tmp_path: Path) -> None:
    image, labels = eye()
    write_image(tmp_path / "images" / "top.png", image)
    write_image(tmp_path / "images" / "sub" / "deep.png", image)
    write_image(tmp_path / "masks" / "top.png", labels)
    write_image(tmp_path / "masks" / "sub" / "deep.png", labels)
    assert len(ImageFolder(tmp_path)) == 1
    ds = ImageFolder(tmp_path, recursive=True)
    assert len(ds) == 2 and ds.bad == []
    assert all(ds[i].labels is not None for i in range(2))
    flat = tmp_path / "flat"
    write_image(flat / "x.png", image)
    write_image(flat / "masks" / "x.png", labels)
    assert len(ImageFolder(flat, recursive=True)) == 1  # masks/ is not read as images


def test_empty_folder_names_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError) as err:
        ImageFolder(tmp_path)
    assert str(tmp_path) in str(err.value) and "no images found; supported: .png" in str(err.value)
    assert not sniff(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        ImageFolder(tmp_path / "notes.txt")


def test_shared_seg_sets(shared_data: Path) -> None:
    for name in ("unityeyes_seg", "real_eyes_seg"):
        ds = ImageFolder(shared_data / name)
        assert len(ds) > 100 and ds.bad == []
        s = ds[0]
        assert s.labels is not None and s.labels.shape == s.image.shape[:2]
        assert s.labels.max() <= PUPIL

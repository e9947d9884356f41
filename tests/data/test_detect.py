from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import eyepurify.data as data_pkg
from eyepurify.data import detect
from eyepurify.data.folder import ImageFolder
from eyepurify.data.unityeyes import UnityEyesDataset
from eyepurify.errors import DataError
from eyepurify.io import write_image
from tests.data.test_unityeyes import annotation, write_pair


def test_registry_order_and_exports() -> None:
    names = [f for f, _ in detect.FORMATS]
    assert names == ["mpiigaze-mat", "mpiigaze-h5", "lpw", "syntheseyes", "render", "unityeyes", "columbia", "folder"]
    assert data_pkg.open_dataset is detect.open_dataset
    assert data_pkg.detect_format is detect.detect_format
    assert {"unityeyes", "folder"} <= set(detect.available_formats())


def test_detects_unityeyes_before_folder(tmp_path: Path) -> None:
    write_pair(tmp_path / "ue", "1", annotation())
    write_image(tmp_path / "imgs" / "a.png", np.zeros((8, 8, 3), np.uint8))
    assert detect.detect_format(tmp_path / "ue") == "unityeyes"
    assert detect.detect_format(tmp_path / "imgs") == "folder"
    assert isinstance(detect.open_dataset(tmp_path / "ue"), UnityEyesDataset)
    forced = detect.open_dataset(tmp_path / "ue", format="folder", masks=False)
    assert isinstance(forced, ImageFolder) and len(forced) == 1
    crop = detect.open_dataset(tmp_path / "ue", crop=(36, 60))
    assert crop[0].image.shape == (36, 60, 3)


def test_unknown_format_lists_known_ones(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataError) as err:
        detect.detect_format(tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and "unknown data format" in msg and "unityeyes, columbia, folder" in msg
    with pytest.raises(DataError, match="unknown format 'nope'"):
        detect.open_dataset(tmp_path, format="nope")
    with pytest.raises(DataError, match="does not exist"):
        detect.open_dataset(tmp_path / "missing")


def test_missing_modules_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_image(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    monkeypatch.setattr(
        detect, "FORMATS",
        (("ghost", "eyepurify.data.no_such_format"), ("folder", "eyepurify.data.folder")),
    )
    assert detect.available_formats() == ["folder"]
    assert detect.detect_format(tmp_path) == "folder"
    with pytest.raises(DataError, match="'ghost' is not available"):
        detect.open_dataset(tmp_path, format="ghost")


def test_shared_data_formats(shared_data: Path) -> None:
    assert detect.detect_format(shared_data / "unityeyes_seg") == "folder"
    assert detect.detect_format(shared_data / "real_eyes_seg") == "folder"
    ds = detect.open_dataset(shared_data / "unityeyes_seg", size=(36, 60))
    assert ds[0].image.shape == (36, 60, 3)
    # unityeyes_json holds a lone annotation: detected as UnityEyes, its image is missing.
    assert detect.detect_format(shared_data / "unityeyes_json") == "unityeyes"
    ue = detect.open_dataset(shared_data / "unityeyes_json")
    assert len(ue) == 0 and "image missing" in ue.bad[0].reason

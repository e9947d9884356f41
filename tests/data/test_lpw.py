from __future__ import annotations

import pickle
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eyepurify.data import lpw
from eyepurify.errors import DataError

W, H = 48, 32


def _frame_value(k: int) -> int:
    return 10 + 15 * k


def _write_avi(path: Path, n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    assert w.isOpened(), "OpenCV cannot write MJPG here"
    for k in range(n):
        f = np.full((H, W, 3), _frame_value(k), np.uint8)
        f[:, :, 0] = 0  # blue channel 0: RGB order is checkable
        w.write(f)
    w.release()


def _write_txt(path: Path, n: int, cols: int = 2) -> np.ndarray:
    pts = np.stack([np.arange(n) + 10.25, np.arange(n) * 0.5 + 5.0], axis=1)
    lines = [f"{k} {x:.2f} {y:.2f}" if cols == 3 else f"{x:.2f} {y:.2f}" for k, (x, y) in enumerate(pts)]
    path.write_text("\n".join(lines) + "\n")
    return pts


@pytest.fixture
def lpw_root(tmp_path: Path) -> Path:
    root = tmp_path / "LPW"
    _write_avi(root / "1" / "1.avi", 5)
    _write_txt(root / "1" / "1.txt", 5)
    _write_avi(root / "1" / "2.avi", 4)
    _write_txt(root / "1" / "2.txt", 4, cols=3)
    _write_avi(root / "10" / "1.avi", 6)
    _write_txt(root / "10" / "1.txt", 6)
    _write_avi(root / "2" / "1.avi", 3)
    _write_txt(root / "2" / "1.txt", 3)
    return root


def test_frames_and_pupils(lpw_root: Path) -> None:
    assert lpw.sniff(lpw_root) and lpw.sniff(lpw_root / "1")
    ds = lpw.open_dataset(lpw_root)
    assert ds.format_name == "lpw" and len(ds) == 5 + 4 + 3 + 6 and ds.bad == []
    sources = [ds[i].source for i in range(len(ds))]
    assert sources[:6] == ["1/1#0", "1/1#1", "1/1#2", "1/1#3", "1/1#4", "1/2#0"]
    assert sources[9:12] == ["2/1#0", "2/1#1", "2/1#2"] and sources[12] == "10/1#0"  # natural order
    s = ds[2]
    assert s.image.shape == (H, W, 3) and s.image.dtype == np.uint8
    assert abs(float(s.image[..., 0].mean()) - _frame_value(2)) < 4  # red channel
    assert float(s.image[..., 2].mean()) < 4  # blue channel is 0
    np.testing.assert_allclose(s.pupil_center, [12.25, 6.0])
    assert s.gaze is None and s.labels is None
    np.testing.assert_allclose(ds[6].pupil_center, [11.25, 5.5])  # 3-column file, frame 1


@pytest.mark.parametrize("backends", [None, (cv2.CAP_ANY,)], ids=["mjpeg-reader", "ffmpeg"])
def test_random_access_matches_sequential(lpw_root: Path, backends, monkeypatch: pytest.MonkeyPatch) -> None:
    if backends is not None:
        monkeypatch.setattr(lpw, "_BACKENDS", backends)
    ds = lpw.open_dataset(lpw_root)
    assert ds.videos[0].api == (cv2.CAP_OPENCV_MJPEG if backends is None else cv2.CAP_ANY)
    seq = [ds[i].image for i in range(len(ds))]
    order = list(range(len(ds))) * 2
    random.Random(0).shuffle(order)
    for i in order:
        np.testing.assert_array_equal(ds[i].image, seq[i])
    for i in range(len(ds)):
        video_frame = int(ds[i].source.split("#")[1])
        assert abs(float(seq[i][..., 0].mean()) - _frame_value(video_frame)) < 4
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone[7].image, seq[7])
    ds.close()
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_row_count_mismatch_uses_min(lpw_root: Path) -> None:
    _write_txt(lpw_root / "1" / "1.txt", 7)  # video has 5 frames
    _write_txt(lpw_root / "2" / "1.txt", 2)  # video has 3 frames
    ds = lpw.open_dataset(lpw_root)
    assert len(ds) == 5 + 4 + 2 + 6
    reasons = [b.reason for b in ds.bad]
    assert any("5 readable frames but 1.txt has 7 rows; using the first 5" in r for r in reasons)
    assert any("3 readable frames but 1.txt has 2 rows; using the first 2" in r for r in reasons)


def test_truncated_and_corrupt_videos(lpw_root: Path) -> None:
    full = (lpw_root / "1" / "1.avi").read_bytes()
    movi, idx1 = full.index(b"movi"), full.rindex(b"idx1")
    frames = [i for i in range(movi, idx1) if full[i:i + 4] == b"00dc"]
    assert len(frames) == 5
    # Header still claims 5 frames, but only the first 3 are on disk (and no index).
    (lpw_root / "1" / "1.avi").write_bytes(full[: frames[3]])
    (lpw_root / "2" / "1.avi").write_bytes(b"RIFF" + bytes(64))  # not a video
    (lpw_root / "10" / "1.avi").write_bytes(full[: len(full) // 4])  # header only
    claimed, actual = lpw.count_frames(lpw_root / "1" / "1.avi")
    assert (claimed, actual) == (5, 3)
    ds = lpw.open_dataset(lpw_root)
    assert len(ds) == actual + 4
    bad = {Path(b.path).relative_to(lpw_root).as_posix(): b.reason for b in ds.bad}
    assert f"{actual} readable frames" in bad["1/1.avi"]
    assert "cannot open video" in bad["2/1.avi"] and "10/1.avi" in bad
    assert ds.videos[0].api == cv2.CAP_ANY  # the MJPEG reader refuses the index-less file
    for i in range(actual):
        assert abs(float(ds[i].image[..., 0].mean()) - _frame_value(i)) < 4
    assert ds[actual].source == "1/2#0"


def test_bad_pupil_files(lpw_root: Path, tmp_path: Path) -> None:
    t = lpw_root / "1" / "1.txt"
    t.write_text("1 2\n3 x\n")
    with pytest.raises(DataError, match="line 2 is not numbers"):
        lpw.read_pupil_txt(t)
    t.write_text("1 2\n3 4 5\n")
    with pytest.raises(DataError, match="different numbers of columns"):
        lpw.read_pupil_txt(t)
    t.write_text("5 1 2\n9 3 4\n")
    with pytest.raises(DataError, match="not a frame index"):
        lpw.read_pupil_txt(t)
    t.write_text("1 2 3 4\n")
    with pytest.raises(DataError, match="4 columns"):
        lpw.read_pupil_txt(t)
    t.write_text("\n\n")
    with pytest.raises(DataError, match="no pupil rows"):
        lpw.read_pupil_txt(t)
    t.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="cannot read pupil file"):
        lpw.read_pupil_txt(t)
    ds = lpw.open_dataset(lpw_root)
    assert len(ds) == 4 + 6 + 3 and str(t) in ds.bad[0].path
    (lpw_root / "2" / "1.txt").unlink()
    ds = lpw.open_dataset(lpw_root)
    assert len(ds) == 4 + 6 and any("1.txt" in b.reason and "file not found" in b.reason for b in ds.bad)


def test_missing_pupil_rows_and_separators(tmp_path: Path) -> None:
    t = tmp_path / "p.txt"
    t.write_text("1.5,2.5\n-1,-1\nnan nan\n4;5\n# comment\n")
    a = lpw.read_pupil_txt(t)
    assert a.shape == (4, 2)
    np.testing.assert_allclose(a[[0, 3]], [[1.5, 2.5], [4, 5]])
    assert np.isnan(a[1]).all() and np.isnan(a[2]).all()
    root = tmp_path / "LPW"
    _write_avi(root / "3" / "1.avi", 4)
    (root / "3" / "1.txt").write_text("1 1\n-1 -1\n2 2\n3 3\n")
    ds = lpw.open_dataset(root)
    assert ds[1].pupil_center is None and ds[2].pupil_center is not None


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e4, allow_nan=False), st.floats(0, 1e4, allow_nan=False)),
                min_size=1, max_size=30), st.sampled_from([0, 1, None]))
def test_pupil_txt_round_trip(tmp_path_factory: pytest.TempPathFactory, pts: list, start: int | None) -> None:
    t = tmp_path_factory.mktemp("txt") / "p.txt"
    if start is None:
        t.write_text("".join(f"{x!r} {y!r}\n" for x, y in pts))
    else:
        t.write_text("".join(f"{k + start} {x!r} {y!r}\n" for k, (x, y) in enumerate(pts)))
    np.testing.assert_array_equal(lpw.read_pupil_txt(t), np.array(pts, dtype=np.float64))


def test_roots_and_subjects(lpw_root: Path, tmp_path: Path) -> None:
    assert len(lpw.open_dataset(lpw_root / "1")) == 9  # one subject folder as root
    only = lpw.open_dataset(lpw_root, subjects=["10"])
    assert len(only) == 6 and only[0].source == "10/1#0"
    with pytest.raises(DataError, match="no subject folders"):
        lpw.open_dataset(lpw_root, subjects=["99"])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not lpw.sniff(empty) and not lpw.sniff(lpw_root / "1" / "1.avi")
    with pytest.raises(DataError, match="no readable"):
        lpw.open_dataset(empty)
    with pytest.raises(DataError, match="not a folder"):
        lpw.open_dataset(tmp_path / "missing")


def test_registry_detects_lpw(lpw_root: Path) -> None:
    from eyepurify.data import detect
    assert detect.detect_format(lpw_root) == "lpw"
    assert len(detect.open_dataset(lpw_root, subjects=["2"])) == 3

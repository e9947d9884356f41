from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from eyepurify import cli
from eyepurify.data import detect
from eyepurify.data.columbia import ColumbiaGaze, parse_name, patch_crop_box, sniff
from eyepurify.data.folder import ImageFolder
from eyepurify.errors import DataError
from eyepurify.eyescale import Box, EyeScale
from eyepurify.io import read_image, write_image

GOOD = (
    "0001_2m_-15P_10V_-5H_L.jpg",
    "0001_2m_-15P_10V_-5H_R.jpg",
    "0002_2m_0P_0V_0H_L.jpg",
    "0002_2m_30P_-10V_15H_R.jpg",
)
FLAGGED = "0003_2m_15P_0V_10H_L.jpg"  # bad_crop = 1 in labels.csv
CORRUPT = "0005_2m_0P_0V_5H_R.jpg"  # named right, not a JPEG
MISNAMED = "holiday.jpg"
HEADER = ["file", "subject", "head_pose_deg", "gaze_v_deg", "gaze_h_deg", "eye", "bad_crop"]


def patch(seed: int = 0) -> np.ndarray:
    """64×64×3 uint8: a smooth skin-like patch with a dark 6×6 "pupil" at the centre."""
    rng = np.random.default_rng(seed)
    img = np.full((64, 64, 3), (190, 140, 120), np.uint8)
    img = np.clip(img + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)
    img[29:35, 29:35] = 10
    return img


def csv_row(name: str, bad: int = 0, **override: object) -> list[str]:
    lab = parse_name(name)
    row = {"file": f"images/{name}", "subject": lab.subject, "head_pose_deg": lab.head_pose_deg,
           "gaze_v_deg": lab.gaze_v_deg, "gaze_h_deg": lab.gaze_h_deg, "eye": lab.eye, "bad_crop": bad}
    row.update(override)
    return [str(row[k]) for k in HEADER]


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\r\n")  # the shared labels.csv has CRLF lines
        w.writerow(header)
        w.writerows(rows)


def columbia_folder(root: Path, labels: bool = True) -> Path:
    """root/images/ with 4 good patches, one flagged, one corrupt, one misnamed (+ labels.csv)."""
    img = root / "images"
    for i, name in enumerate((*GOOD, FLAGGED, MISNAMED)):
        write_image(img / name, patch(i))
    (img / CORRUPT).write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    if labels:
        write_csv(root / "labels.csv", [csv_row(n) for n in (*GOOD, CORRUPT)] + [csv_row(FLAGGED, bad=1)])
    return root


def test_parse_name_signs_and_errors() -> None:
    lab = parse_name("0001_2m_-15P_10V_-5H_L.jpg")
    assert (lab.subject, lab.distance_m, lab.head_pose_deg, lab.gaze_v_deg, lab.gaze_h_deg, lab.eye) == (
        "0001", 2, -15, 10, -5, "L")
    np.testing.assert_allclose(lab.gaze_pitchyaw(), np.radians([10, 5]))  # (V, −H)
    np.testing.assert_allclose(lab.head_pitchyaw(), np.radians([0, 15]))  # (0, −P)
    assert parse_name("0002_2m_30P_-10V_15H_R.JPG").eye == "R"
    for bad, why in (("0001_2m_-15P_10V_-5H.jpg", "does not match"), ("0001_2m_-15P_10V_-5H_L.png", "does not match"),
                     ("01_2m_0P_0V_0H_L.jpg", "does not match"), ("0001_2m_0P_0V_95H_L.jpg", "out of range")):
        with pytest.raises(ValueError, match=why):
            parse_name(bad)


def test_sniff_and_detect(tmp_path: Path) -> None:
    root = columbia_folder(tmp_path / "col")
    assert sniff(root) and sniff(root / "images")
    assert detect.detect_format(root) == "columbia"
    assert detect.detect_format(root / "images") == "columbia"
    assert isinstance(detect.open_dataset(root), ColumbiaGaze)
    flat = tmp_path / "flat"
    for i, name in enumerate(GOOD):
        write_image(flat / name, patch(i))
    assert detect.detect_format(flat) == "columbia"
    other = tmp_path / "other"
    for name in ("a.jpg", "b.jpg", "c.jpg", GOOD[0]):
        write_image(other / name, patch())
    assert not sniff(other)  # one matching name of four is not a Columbia folder
    assert detect.detect_format(other) == "folder"
    assert isinstance(detect.open_dataset(other), ImageFolder)
    assert not sniff(flat / GOOD[0]) and not sniff(tmp_path / "missing")


def test_counts_and_bad_files(tmp_path: Path) -> None:
    root = columbia_folder(tmp_path)
    ds = ColumbiaGaze(root)
    assert ds.format_name == "columbia" and ds.labels_csv == root / "labels.csv"
    assert [p.name for p in ds.files] == sorted((*GOOD, CORRUPT))
    assert len(ds) == 5
    at_index = {Path(b.path).name: b.reason for b in ds.bad}
    assert set(at_index) == {FLAGGED, MISNAMED}
    assert "bad_crop = 1" in at_index[FLAGGED] and "labels.csv line" in at_index[FLAGGED]
    assert "does not match SSSS_2m_{P}P_{V}V_{H}H_{L|R}.jpg" in at_index[MISNAMED]
    good, bad = ds.scan()
    assert len(good) == 4 and len(bad) == 3
    corrupt = [b for b in bad if Path(b.path).name == CORRUPT]
    assert len(corrupt) == 1 and "cannot decode" in corrupt[0].reason
    for b in bad:
        assert "\n" not in b.reason and Path(b.path).name in b.reason
    with pytest.raises(DataError, match=CORRUPT):
        ds[ds.files.index(root / "images" / CORRUPT)]


def test_labels_from_names(tmp_path: Path) -> None:
    ds = ColumbiaGaze(columbia_folder(tmp_path))
    by_name = {p.name: i for i, p in enumerate(ds.files)}
    s = ds[by_name["0001_2m_-15P_10V_-5H_L.jpg"]]
    assert s.source == str(tmp_path / "images" / "0001_2m_-15P_10V_-5H_L.jpg")
    assert ds.subject(by_name["0001_2m_-15P_10V_-5H_L.jpg"]) == "0001"
    assert s.gaze is not None and s.head_pose is not None and s.labels is None
    np.testing.assert_allclose(np.linalg.norm(s.gaze), 1.0)
    np.testing.assert_allclose(s.pitchyaw, np.radians([10, 5]), atol=1e-12)
    # V = +10: looking up (y < 0); H = −5: towards the image's left (x < 0); towards the camera (z < 0)
    assert s.gaze[1] < 0 and s.gaze[0] < 0 and s.gaze[2] < 0
    np.testing.assert_allclose(s.head_pose, np.radians([0, 15]))
    s = ds[by_name["0002_2m_30P_-10V_15H_R.jpg"]]
    np.testing.assert_allclose(s.pitchyaw, np.radians([-10, -15]), atol=1e-12)
    assert s.gaze[1] > 0 and s.gaze[0] > 0  # down, towards the image's right
    np.testing.assert_allclose(s.head_pose, np.radians([0, -30]))
    s = ds[by_name["0002_2m_0P_0V_0H_L.jpg"]]
    np.testing.assert_allclose(s.gaze, [0, 0, -1], atol=1e-12)  # gaze locking: into the camera
    assert ds.entries[by_name["0002_2m_0P_0V_0H_L.jpg"]].eye == "L"


def test_crop_sizes_and_eye_scale(tmp_path: Path) -> None:
    root = columbia_folder(tmp_path)
    name = GOOD[2]
    i = [p.name for p in ColumbiaGaze(root).files].index(name)
    assert ColumbiaGaze(root)[i].image.shape == (36, 60, 3)
    assert ColumbiaGaze(root, crop=(72, 120))[i].image.shape == (72, 120, 3)
    raw = ColumbiaGaze(root, crop=None)[i].image
    assert raw.shape == (64, 64, 3) and raw.dtype == np.uint8
    np.testing.assert_array_equal(raw, read_image(root / "images" / name))
    # The eye (patch width / 1.5, centred) gets the render eye scale: width and centre.
    assert patch_crop_box((64, 64, 3), (36, 60)) == Box(-1, 12, 66, 52)
    scale = EyeScale.for_renders((36, 60))
    box = patch_crop_box((64, 64, 3), (36, 60))
    k = box.width / 60
    assert (64 / 1.5) / k == pytest.approx(scale.eye_width, rel=0.02)
    crop = ColumbiaGaze(root)[i].image.astype(float).sum(axis=2)
    ys, xs = np.nonzero(crop < crop.min() + 60)  # the dark centre square
    assert abs(xs.mean() - (scale.center[0] - 0.5)) <= 1.5 and abs(ys.mean() - (scale.center[1] - 0.5)) <= 1.5
    with pytest.raises(ValueError, match="crop"):
        ColumbiaGaze(root, crop=(1, 60))


def test_without_labels_csv(tmp_path: Path) -> None:
    ds = ColumbiaGaze(columbia_folder(tmp_path, labels=False))
    assert ds.labels_csv is None
    assert len(ds) == 6  # the flagged patch is a sample when no labels.csv says otherwise
    assert [Path(b.path).name for b in ds.bad] == [MISNAMED]


def test_labels_csv_checked_against_names(tmp_path: Path) -> None:
    root = columbia_folder(tmp_path, labels=False)
    rows = [csv_row(GOOD[0], head_pose_deg=15), csv_row(GOOD[1], bad_crop="yes"),
            csv_row(GOOD[2]), csv_row(GOOD[2]), csv_row("0009_2m_0P_0V_0H_L.jpg")]
    write_csv(root / "labels.csv", rows)
    ds = ColumbiaGaze(root)
    names = [p.name for p in ds.files]
    assert GOOD[0] not in names and GOOD[1] not in names and GOOD[2] in names
    reasons = [b.reason for b in ds.bad]
    assert any(GOOD[0] in r and "disagrees with the file name" in r and "head_pose_deg '15' vs -15" in r for r in reasons)
    assert any(GOOD[1] in r and "bad_crop is 'yes'" in r for r in reasons)
    assert any("listed twice" in r for r in reasons)
    assert any("0009_2m_0P_0V_0H_L.jpg" in r and "not among the patches" in r for r in reasons)
    assert all("\n" not in r for r in reasons)
    write_csv(root / "labels.csv", [["images/x.jpg", "1"]], header=["file", "bad"])
    ds = ColumbiaGaze(root)
    assert len(ds) == 6
    assert any("missing column(s) bad_crop" in b.reason and "labels.csv" in b.path for b in ds.bad)
    (root / "labels.csv").write_bytes(b"\xff\xfe\x00bad")
    ds = ColumbiaGaze(root)
    assert len(ds) == 6 and any("cannot read" in b.reason for b in ds.bad)


def test_no_patches_is_one_line_error(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", patch())
    with pytest.raises(DataError, match="no Columbia Gaze patches") as e:
        detect.open_dataset(tmp_path, format="columbia")
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="not a folder"):
        ColumbiaGaze(tmp_path / "a.jpg")


def _pupil_xy(image: np.ndarray) -> tuple[float, float]:
    """Darkest-blob pupil estimate of a 64×64 patch (the measurement in the module docstring)."""
    g = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 2.5)
    win = g[12:56, 8:56]
    ys, xs = np.nonzero(win <= np.percentile(win, 3))
    return float(xs.mean() + 8), float(ys.mean() + 12)


def test_shared_columbia(shared_data: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    root = shared_data / "columbia_gaze"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    assert len(list((root / "images").glob("*.jpg"))) == 7266
    assert detect.detect_format(root) == "columbia"
    ds = detect.open_dataset(root, crop=None)
    with open(root / "labels.csv", newline="") as f:
        flagged = sum(r["bad_crop"].strip() == "1" for r in csv.DictReader(f))
    assert flagged == 21  # the data README says 22; its labels.csv flags 21
    assert len(ds.bad) == flagged and all("bad_crop = 1" in b.reason for b in ds.bad)
    assert len(ds) + len(ds.bad) == 7266
    e = ds.entries
    assert {x.head_pose_deg for x in e} == {-30, -15, 0, 15, 30}
    assert {x.gaze_v_deg for x in e} == {-10, 0, 10}
    assert {x.gaze_h_deg for x in e} == {-15, -10, -5, 0, 5, 10, 15}
    assert {x.eye for x in e} == {"L", "R"} and len({x.subject for x in e}) == 35
    # The yaw sign: at P = 0 the pupil moves to the image's right (+x) as yaw falls
    # (MPIIGaze yaw > 0 looks towards −x); per subject and eye, with V fixed.
    idx = [i for i, x in enumerate(e) if x.head_pose_deg == 0]
    xs = np.array([_pupil_xy(ds[i].image)[0] for i in idx])
    yaw = np.array([ds[i].pitchyaw[1] for i in idx])
    groups: dict[tuple[str, str, int], list[int]] = {}
    for k, i in enumerate(idx):
        groups.setdefault((e[i].subject, e[i].eye, e[i].gaze_v_deg), []).append(k)
    for g in groups.values():
        xs[g] -= xs[g].mean()
    assert np.corrcoef(xs, yaw)[0, 1] < -0.6
    sample = detect.open_dataset(root)[0]
    assert sample.image.shape == (36, 60, 3) and sample.gaze is not None and sample.head_pose is not None
    assert cli.main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"{root}: format columbia, 7245 samples, 7245 usable, 21 bad" in out
    assert "image sizes (W x H): 60x36 (7245)" in out
    assert "with gaze                     7245" in out and "with head pose                7245" in out
    assert out.count("bad_crop = 1") == 21

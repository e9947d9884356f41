"""Face photos and videos → purified eyes (`purify --faces`), the MTCNN port, the warping error."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from eyepurify.cli import main
from eyepurify.eyescale import EyeScale
from eyepurify.faces import (
    EYE_WIDTH_MM,
    FACE_MODEL_MM,
    OneEuro,
    camera_matrix,
    normalise_eyes,
    paste_patch,
    warp_to_patch,
)
from eyepurify.temporal import warping_error

skimage_data = pytest.importorskip("skimage.data")

SCALE = EyeScale((72, 120), 76.0, (59.0, 35.0))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def detector():  # type: ignore[no-untyped-def]
    from eyepurify.models.mtcnn import MTCNN, weights_dir

    try:
        weights_dir()
    except Exception as e:  # the faces extra is not installed
        pytest.skip(str(e))
    return MTCNN.from_package()


@pytest.fixture(scope="module")
def face_purifier(detector):  # type: ignore[no-untyped-def]
    from eyepurify.faces import FacePurifier
    from eyepurify.purify import Purifier

    return FacePurifier(Purifier.from_pretrained(), detector)


def _frontal_landmarks(K: np.ndarray, depth: float = 600.0, shift=(0.0, 0.0)) -> np.ndarray:  # type: ignore[no-untyped-def]
    pts = FACE_MODEL_MM + np.array([shift[0], shift[1], depth])
    q = pts @ K.T
    return q[:, :2] / q[:, 2:3]


def test_normalisation_maps_eye_centres_to_the_trained_centre_and_back():
    K = camera_matrix((480, 640))
    lm = _frontal_landmarks(K, 550.0, (40.0, -20.0))
    for norm in normalise_eyes(lm, K, SCALE):
        c = norm.to_patch(np.array([norm.center]))[0]
        assert np.allclose(c, SCALE.center, atol=1e-6)
        assert np.allclose(norm.to_image(c[None])[0], norm.center, atol=1e-6)
    # the eye line is horizontal in the patch (roll removed), even for a rolled face
    R = cv2.getRotationMatrix2D((320.0, 240.0), 25.0, 1.0)
    rolled = np.c_[lm, np.ones(5)] @ R.T
    for norm in normalise_eyes(rolled, K, SCALE):
        a, b = norm.to_patch(rolled[:2])
        assert abs(a[1] - b[1]) < 0.5


def test_normalised_eye_width_matches_the_trained_scale():
    K = camera_matrix((480, 640))
    lm = _frontal_landmarks(K, 700.0)
    norm = normalise_eyes(lm, K, SCALE)[1]
    # two points EYE_WIDTH_MM apart across the eye, at its depth
    e = np.array(norm.center3d)
    q = np.stack([e - [EYE_WIDTH_MM / 2, 0, 0], e + [EYE_WIDTH_MM / 2, 0, 0]]) @ K.T
    a, b = norm.to_patch(q[:, :2] / q[:, 2:3])
    assert abs(np.linalg.norm(b - a) - SCALE.eye_width) < 2.0


def test_round_trip_lands_where_it_came_from():
    """A patch warped out and pasted back (unchanged) lands on itself: a dot at the eye
    centre comes back within 2 px; outside the footprint nothing changes."""
    K = camera_matrix((240, 320))
    lm = _frontal_landmarks(K, 500.0)
    img = np.full((240, 320, 3), 120, np.uint8)
    norms = normalise_eyes(lm, K, SCALE)
    out = img.copy()
    for norm in norms:
        patch = warp_to_patch(img, norm)
        dot = patch.copy()
        cx = SCALE.center[0] if not norm.mirrored else SCALE.size[1] - 1 - SCALE.center[0]
        cv2.circle(dot, (round(cx), round(SCALE.center[1])), 3, (255, 255, 255), -1)
        paste_patch(out, dot, norm, feather=0.0)
    diff = np.abs(out.astype(int) - img).sum(-1)
    for norm in norms:
        x, y = norm.center
        win = diff[int(y) - 6:int(y) + 7, int(x) - 6:int(x) + 7]
        yy, xx = np.nonzero(win > 200)
        assert len(yy)
        assert np.hypot(xx.mean() + int(x) - 6 - x, yy.mean() + int(y) - 6 - y) < 2.0
    assert diff[:, :10].max() == 0 and diff[-10:].max() == 0


def test_mtcnn_finds_the_astronaut(detector, astronaut):  # type: ignore[no-untyped-def]
    dets = detector(astronaut)
    assert len(dets) == 1 and dets[0].score > 0.99
    lm = dets[0].landmarks
    assert 195 < lm[0, 0] < 212 and 92 < lm[0, 1] < 108  # image-left eye (measured 203, 100)
    assert 238 < lm[1, 0] < 254 and 95 < lm[1, 1] < 110
    tracked = detector.track(astronaut, dets[0].box)
    assert tracked is not None and np.abs(tracked.landmarks - lm).max() < 2.0


def test_astronaut_purified_only_around_the_eyes(face_purifier, astronaut):  # type: ignore[no-untyped-def]
    r = face_purifier(astronaut)
    assert r.image.shape == astronaut.shape
    assert [e.norm.eye for e in r.eyes] == ["right", "left"]
    changed = np.abs(r.image.astype(int) - astronaut).sum(-1) > 0
    assert changed.sum() > 200
    ys, xs = np.nonzero(changed)
    lm = r.landmarks[0]
    ipd = float(np.linalg.norm(lm[1] - lm[0]))
    # every changed pixel is within an eye-sized neighbourhood of an eye landmark
    d = np.min([np.hypot(xs - x, ys - y) for x, y in lm[:2]], axis=0)
    assert d.max() < 1.2 * ipd
    assert not changed[lm[2, 1].astype(int) + 5:].any()  # nothing below the nose tip
    for e in r.eyes:  # eye centres round-trip within 2 px
        back = e.norm.to_image(np.array([SCALE.center]))[0]
        assert np.hypot(*(back - e.norm.center)) < 2.0


def test_warping_error_on_a_known_shift():
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (80, 120, 3)).astype(np.uint8), (0, 0), 2)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX)
    frames = [np.roll(base, 2 * t, axis=1) for t in range(5)]
    assert warping_error(frames) < 5e-4  # pure motion: the flow explains it
    flicker = [np.clip(f.astype(int) + (25 if t % 2 else 0), 0, 255).astype(np.uint8) for t, f in enumerate(frames)]
    assert warping_error(flicker, frames) == pytest.approx((25 / 255) ** 2, rel=0.15)


def test_one_euro_smooths_jitter_and_follows_motion():
    f = OneEuro(min_cutoff=2.0, beta=30.0)
    rng = np.random.default_rng(0)
    still = [f(np.array([100.0]) + rng.normal(0, 1, 1), 0.04, unit=100.0)[0] for _ in range(50)]
    assert np.std(still[10:]) < 0.8
    moving = [f(np.array([100.0 + 4 * t]), 0.04, unit=100.0)[0] for t in range(30)]
    assert abs(moving[-1] - (100 + 4 * 29)) < 3


def test_cli_photo_with_and_without_a_face(detector, astronaut, tmp_path: Path):  # type: ignore[no-untyped-def]
    cv2.imwrite(str(tmp_path / "astro.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "flat.png"), np.full((120, 160, 3), 128, np.uint8))
    out = tmp_path / "out"
    assert main(["purify", str(tmp_path / "astro.png"), str(tmp_path / "flat.png"), "--faces", "--out", str(out)]) == 1
    res = cv2.imread(str(out / "astro.png"))
    assert res.shape == astronaut.shape
    report = (out / "report.txt").read_text()
    assert "flat.png" in report and "no face" in report and "astro" not in report
    item = json.loads((out / "manifest.json").read_text())["items"]["astro.png"]
    assert item["status"] == "done" and len(item["eyes"]) == 2
    # no face at all: nothing done, exit 2
    assert main(["purify", str(tmp_path / "flat.png"), "--faces", "--out", str(tmp_path / "o2")]) == 2
    # crops with geometry; resume skips what is done
    o3 = tmp_path / "o3"
    assert main(["purify", str(tmp_path / "astro.png"), "--faces", "--output", "crop", "--out", str(o3)]) == 0
    assert cv2.imread(str(o3 / "astro_right.png")).shape == (72, 120, 3)
    eyes = json.loads((o3 / "manifest.json").read_text())["items"]["astro_right.png"]["eyes"]
    assert {e["eye"] for e in eyes} == {"right", "left"} and all(len(e["homography"]) == 3 for e in eyes)
    assert main(["purify", str(tmp_path / "astro.png"), "--faces", "--output", "crop", "--out", str(o3), "--resume"]) == 0


def test_cli_faces_shard(detector, astronaut, tmp_path: Path):  # type: ignore[no-untyped-def]
    """--shard K/N splits face photos as it splits eye images (names claimed over all inputs)."""
    cv2.imwrite(str(tmp_path / "astro.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "flat.png"), np.full((120, 160, 3), 128, np.uint8))
    inputs = [str(tmp_path / "astro.png"), str(tmp_path / "flat.png"), "--faces"]
    assert main(["purify", *inputs, "--shard", "1/2", "--out", str(tmp_path / "s1")]) == 0  # astro.png only
    assert main(["purify", *inputs, "--shard", "2/2", "--out", str(tmp_path / "s2")]) == 2  # flat.png: no face
    assert (tmp_path / "s1" / "astro.png").is_file() and not (tmp_path / "s2" / "astro.png").exists()
    assert set(json.loads((tmp_path / "s1" / "manifest.json").read_text())["items"]) == {"astro.png"}
    assert "flat.png" in (tmp_path / "s2" / "report.txt").read_text()


def test_cli_face_video_keeps_fps_and_size(detector, tmp_path: Path):  # type: ignore[no-untyped-def]
    from eyepurify.bench.video import face_video

    frames = face_video(4, (240, 320))
    src = tmp_path / "face.avi"
    w = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (320, 240))
    for f in frames:
        w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    w.release()
    out = tmp_path / "out"
    assert main(["purify", str(src), "--faces", "--out", str(out)]) == 0
    cap = cv2.VideoCapture(str(out / "face.avi"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (320, 240)
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    cap.release()
    item = json.loads((out / "manifest.json").read_text())["items"]["face.avi"]
    assert item["frames"] == 4 and item["frames_without_face"] == ""


def test_missing_faces_extra_is_one_line_exit_2(monkeypatch, tmp_path: Path, capsys):  # type: ignore[no-untyped-def]
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mtcnn" else real(name, *a))
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.zeros((40, 40, 3), np.uint8))
    assert main(["purify", str(img), "--faces", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "eyepurify[faces]" in err[0]
    assert not (tmp_path / "o").exists()

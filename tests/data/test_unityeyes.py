from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eyepurify.data import unityeyes_spec as spec
from eyepurify.data.unityeyes import UnityEyesDataset, apply_affine, crop_matrix, sniff
from eyepurify.errors import DataError
from eyepurify.io import write_image
from eyepurify.sample import IRIS, PUPIL, SCLERA

H, W = 120, 160


def _ellipse(c: tuple[float, float], rx: float, ry: float, n: int) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([c[0] + rx * np.cos(t), c[1] + ry * np.sin(t)], axis=1)


def annotation(
    height: int = H,
    look_vec: str = "(0.3404, 0.3879, -0.8566, 0.0000)",
    head_pose: str = "(355.0770, 203.8451, 0.0000)",
    iris_center: tuple[float, float] = (84.0, 58.0),
) -> dict:
    """A UnityEyes-format annotation of an eye centred at (80, 60) in an H×W image."""
    margin = _ellipse((80.0, 60.0), 45.0, 22.0, 16)
    caruncle = _ellipse((33.0, 62.0), 3.0, 2.0, 7)
    iris = _ellipse(iris_center, 17.0, 17.0, 32)
    return {
        "interior_margin_2d": spec.points_to_json(margin, height),
        "caruncle_2d": spec.points_to_json(caruncle, height),
        "iris_2d": spec.points_to_json(iris, height),
        "eye_details": {
            "look_vec": look_vec, "pupil_size": "0.1020631",
            "iris_size": "0.9349335", "iris_texture": "eyeball_brown",
        },
        "lighting_details": {"skybox_texture": "bergen_2k", "light_rotation": "(30.0, 248.5, 0.0)"},
        "head_pose": head_pose,
    }


def write_pair(folder: Path, stem: str, data: dict | str, size: tuple[int, int] = (H, W)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_image(folder / f"{stem}.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    text = data if isinstance(data, str) else json.dumps(data, indent=2)
    (folder / f"{stem}.json").write_text(text)


def test_labels_gaze_and_landmarks(tmp_path: Path) -> None:
    write_pair(tmp_path, "1", annotation())
    ds = UnityEyesDataset(tmp_path)
    assert len(ds) == 1 and ds.bad == []
    s = ds[0]
    assert s.image.shape == (H, W, 3) and s.labels.shape == (H, W)
    counts = np.bincount(s.labels.ravel(), minlength=4)
    assert counts[SCLERA] > 0 and counts[IRIS] > 0 and counts[PUPIL] > 0
    # The y flip puts the iris centre back at (84, 58) image pixels.
    np.testing.assert_allclose(s.landmarks["iris"].mean(axis=0), [84.0, 58.0], atol=1e-3)
    assert set(s.landmarks) == {"interior_margin", "caruncle", "iris"}
    assert s.landmarks["interior_margin"].shape == (16, 2) and s.landmarks["caruncle"].shape == (7, 2)
    # Pupil radius = (0.25 + pupil_size) × iris radius around the iris centre.
    r = np.sqrt(counts[PUPIL] / np.pi)
    assert r == pytest.approx(spec.pupil_radius_ratio(0.1020631) * 17.0, rel=0.08)
    np.testing.assert_allclose(s.pupil_center, [84.0, 58.0], atol=1e-3)
    np.testing.assert_allclose(s.gaze, spec.look_vec_to_gaze((0.3404, 0.3879, -0.8566)))
    assert np.linalg.norm(s.gaze) == pytest.approx(1.0)
    np.testing.assert_allclose(np.degrees(s.head_pose), [4.923, -23.8451], atol=1e-3)


def test_renderer_pupil_center_is_used_exactly(tmp_path: Path) -> None:
    data = annotation()
    data["eyepurify"] = {"pupil_center": [85.25, 57.5]}
    write_pair(tmp_path, "3", data)
    np.testing.assert_array_equal(UnityEyesDataset(tmp_path)[0].pupil_center, [85.25, 57.5])


@pytest.mark.parametrize("with_override", [False, True])
def test_crop_transforms_everything_with_one_matrix(tmp_path: Path, with_override: bool) -> None:
    data = annotation()
    if with_override:
        data["eyepurify"] = {"pupil_center": [85.0, 57.0]}
    write_pair(tmp_path, "1", data)
    full = UnityEyesDataset(tmp_path)[0]
    crop = UnityEyesDataset(tmp_path, crop=(36, 60), crop_scale=1.75)[0]
    assert crop.image.shape == (36, 60, 3) and crop.labels.shape == (36, 60)
    m = crop_matrix(full.landmarks["interior_margin"], (36, 60), 1.75)
    # Width: 1.75 × the 90 px corner distance maps onto 60 px.
    assert m[0, 0] == pytest.approx(60 / (1.75 * 90.0), rel=1e-6)
    expected = apply_affine(m, full.pupil_center)[0]
    np.testing.assert_allclose(crop.pupil_center, expected, atol=1e-9)
    for k in full.landmarks:
        np.testing.assert_allclose(crop.landmarks[k], apply_affine(m, full.landmarks[k]), atol=1e-9)
    x, y = np.round(crop.pupil_center).astype(int)
    assert crop.labels[y, x] == PUPIL
    # The cropped pupil region's centroid agrees with the transformed centre (to a pixel).
    ys, xs = np.nonzero(crop.labels == PUPIL)
    if not with_override:
        np.testing.assert_allclose([xs.mean(), ys.mean()], crop.pupil_center, atol=0.75)
    # The image is warped by the same matrix: the dark iris disc lands on the iris labels.
    img = np.full((H, W, 3), 220, np.uint8)
    cv2.circle(img, (84, 58), 17, (20, 20, 20), -1)
    write_image(tmp_path / "1.png", img)
    crop = UnityEyesDataset(tmp_path, crop=(36, 60))[0]
    gray = crop.image.mean(axis=2)
    inner = (crop.labels == PUPIL)
    assert gray[inner].mean() < 60 and gray[crop.labels == SCLERA].mean() > 150


def test_unpaired_files_are_bad_not_samples(tmp_path: Path) -> None:
    write_pair(tmp_path, "1", annotation())
    (tmp_path / "2.json").write_text(json.dumps(annotation()))
    write_image(tmp_path / "3.jpg", np.zeros((H, W, 3), np.uint8))
    ds = UnityEyesDataset(tmp_path)
    assert len(ds) == 1
    reasons = {Path(b.path).name: b.reason for b in ds.bad}
    assert "image missing" in reasons["2.json"] and "JSON missing" in reasons["3.jpg"]


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d.pop("iris_2d"), "'iris_2d': missing"),
        (lambda d: d["eye_details"].pop("look_vec"), "'eye_details.look_vec': missing"),
        (lambda d: d.__setitem__("head_pose", "(1, 'a')"), "'head_pose'"),
        (lambda d: d.__setitem__("head_pose", "__import__('os').getcwd()"), "'head_pose'"),
        (lambda d: d["eye_details"].__setitem__("pupil_size", "big"), "'eye_details.pupil_size'"),
        (lambda d: d["interior_margin_2d"].__setitem__(2, "(1.0,)"), "'interior_margin_2d'"),
        (lambda d: d.__setitem__("caruncle_2d", "(1, 2)"), "'caruncle_2d'"),
        (lambda d: d["eye_details"].__setitem__("look_vec", "(0, 0, 0, 0)"), "look_vec is zero"),
        (lambda d: d.__setitem__("eyepurify", {"pupil_center": [1, "x"]}), "'eyepurify.pupil_center'"),
    ],
)
def test_malformed_values_name_file_and_key(tmp_path: Path, edit, needle: str) -> None:
    data = annotation()
    edit(data)
    write_pair(tmp_path, "7", data)
    with pytest.raises(DataError) as err:
        UnityEyesDataset(tmp_path)[0]
    assert "7.json" in str(err.value) and needle in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_json_syntax(tmp_path: Path) -> None:
    write_pair(tmp_path, "7", '{"interior_margin_2d": [ "(1, 2, 3)", ')
    with pytest.raises(DataError, match=r"7\.json: invalid JSON \(line 1"):
        UnityEyesDataset(tmp_path)[0]


def test_sniff(tmp_path: Path) -> None:
    write_pair(tmp_path / "ue", "1", annotation())
    (tmp_path / "imgs").mkdir()
    write_image(tmp_path / "imgs" / "a.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "imgs" / "meta.json").write_text('{"other": 1}')
    assert sniff(tmp_path / "ue")
    assert not sniff(tmp_path / "imgs")
    assert not sniff(tmp_path / "missing")


def test_shared_unityeyes_json(shared_data: Path, tmp_path: Path) -> None:
    # 1.json comes with an 800×600 render in its source project (which asserts that size);
    # the eyeball centre projects to the image centre, which fixes the axis conventions.
    shutil.copy(shared_data / "unityeyes_json" / "1.json", tmp_path / "1.json")
    write_image(tmp_path / "1.jpg", np.zeros((600, 800, 3), np.uint8))
    s = UnityEyesDataset(tmp_path)[0]
    counts = np.bincount(s.labels.ravel(), minlength=4)
    assert counts[SCLERA] > 0 and counts[IRIS] > 0 and counts[PUPIL] > 0
    iris_poly = np.zeros((600, 800), np.uint8)
    cv2.fillPoly(iris_poly, [np.round(s.landmarks["iris"]).astype(np.int32)], 1)
    assert iris_poly[s.labels == PUPIL].all()
    assert np.linalg.norm(s.gaze) == pytest.approx(1.0)
    # The iris sits above the eye opening's centre: the eye looks up, y < 0 (y down).
    iris_c = s.landmarks["iris"].mean(axis=0)
    assert iris_c[1] < s.landmarks["interior_margin"].mean(axis=0)[1]
    assert s.gaze[1] < 0 and s.gaze[2] < 0
    # iris centre − eyeball centre (image centre) is parallel to the gaze's (x, y): x is
    # not mirrored, and both components give the same projected radius (about 80 px).
    offset = iris_c - np.array([399.5, 299.5])
    ratio = offset / s.gaze[:2]
    assert ratio.min() > 0 and ratio.max() / ratio.min() < 1.1
    # The head faces about 24° towards the image's right (yaw < 0), like the gaze, so the
    # iris sits midway between the eye corners.
    assert np.degrees(s.head_pose[1]) == pytest.approx(-23.8451, abs=1e-3)


finite = st.floats(-5000, 5000, allow_nan=False)


@settings(max_examples=25, deadline=None)
@given(st.lists(finite, min_size=1, max_size=5))
def test_parse_tuple_round_trips_format_tuple(values: list[float]) -> None:
    out = spec.parse_tuple(spec.format_tuple(values))
    np.testing.assert_allclose(out, values, atol=5.1e-5)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([
    "__import__('os')", "(1, 'a')", "os.system('true')", "(1, (2, 3))", "[1, 2]",
    "(True, 1)", "(1,,", "", "(nan, 1)", "(1e999,)", "{'a': 1}", "(1j, 2)",
]))
def test_parse_tuple_rejects_non_number_literals(text: str) -> None:
    with pytest.raises(ValueError):
        spec.parse_tuple(text)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 800), st.floats(0, 600)), min_size=1, max_size=8),
    st.integers(2, 1000),
)
def test_points_y_flip_round_trips(points: list[tuple[float, float]], height: int) -> None:
    pts = np.array(points, dtype=np.float64)
    back = spec.points_from_json(spec.points_to_json(pts, height), height)
    np.testing.assert_allclose(back, pts, atol=1e-4)
    raw = np.array([spec.parse_tuple(s)[:2] for s in spec.points_to_json(pts, height)])
    np.testing.assert_allclose(raw[:, 1], height - pts[:, 1], atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(st.floats(-1.4, 1.4), st.floats(-3.1, 3.1))
def test_gaze_and_head_pose_conversions_invert(pitch: float, yaw: float) -> None:
    from eyepurify.gaze.geometry import pitchyaw_to_vector

    g = pitchyaw_to_vector(np.array([pitch, yaw]))
    np.testing.assert_allclose(spec.look_vec_to_gaze(spec.gaze_to_look_vec(g)), g, atol=1e-12)
    back = spec.head_pose_from_unity(spec.head_pose_to_unity(np.array([pitch, yaw])))
    np.testing.assert_allclose(back, [pitch, yaw], atol=1e-9)


def test_json_paired_with_a_resized_image_is_rejected(tmp_path: Path) -> None:
    write_pair(tmp_path, "1", annotation(), size=(40, 50))
    with pytest.raises(DataError, match=r"1\.json: eye centre \(80, -20\) lies outside its 50×40 image"):
        UnityEyesDataset(tmp_path)[0]

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from eyepurify.data import syntheseyes as se
from eyepurify.errors import DataError
from eyepurify.gaze.geometry import vector_to_pitchyaw


def _png(path: Path, value: int = 100, rgba: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.full((80, 120, 4 if rgba else 3), value, np.uint8)
    a[..., 0] = np.arange(120, dtype=np.uint8)[None, :]
    if rgba:
        a[..., 3] = 255
    Image.fromarray(a).save(path)


def _labels(look_vec=(0.1, 0.2, 0.97)) -> dict:
    pupil = np.array([[60 + 3 * np.cos(t), 40 + 3 * np.sin(t)] for t in np.linspace(0, 2 * np.pi, 8, endpoint=False)])
    return {
        "look_vec": np.array(look_vec),
        "head_pose": np.eye(3),
        "ldmks": {
            "ldmks_lids_2d": np.array([[10.0, 40.0, 0.5], [60.0, 20.0, 0.5], [110.0, 40.0, 0.5], [60.0, 60.0, 0.5]]),
            "ldmks_iris_2d": [(60.0 + 8 * np.cos(t), 40.0 + 8 * np.sin(t)) for t in np.linspace(0, 6, 12)],
            "ldmks_pupil_2d": pupil,
            "ldmks_pupil_3d": np.zeros((8, 3)),
        },
    }


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "SynthesEyes_dataset"
    _png(root / "f01" / "f01_36_0.1963_-0.7854.png")
    (root / "f01" / "f01_36_0.1963_-0.7854.pkl").write_bytes(pickle.dumps(_labels(), protocol=2))
    _png(root / "f01" / "f01_37_0.0000_-0.7854.png", rgba=False)  # no pickle
    _png(root / "m05" / "m05_1_0.0000_0.0000.png")
    (root / "m05" / "m05_1_0.0000_0.0000.pkl").write_bytes(pickle.dumps(_labels((0, 0, 1))))
    return root


def test_loads_images_and_labels(tree: Path) -> None:
    assert se.sniff(tree) and se.sniff(tree / "f01")
    ds = se.open_dataset(tree)
    assert len(ds) == 3 and ds.format_name == "syntheseyes"
    s = ds[0]
    assert s.source == "f01/f01_36_0.1963_-0.7854.png"
    assert s.image.shape == (80, 120, 3) and s.image.dtype == np.uint8
    np.testing.assert_array_equal(s.image[0, :, 0], np.arange(120))
    np.testing.assert_allclose(s.pupil_center, [60, 40], atol=1e-9)
    assert set(s.landmarks) == {"lids", "iris", "pupil"}
    assert s.landmarks["lids"].shape == (4, 2) and s.landmarks["iris"].shape == (12, 2)
    v = np.array([0.1, 0.2, 0.97])
    np.testing.assert_allclose(s.gaze, np.array([v[0], -v[1], -v[2]]) / np.linalg.norm(v))
    assert s.head_pose is None and s.labels is None
    bare = ds[1]
    assert bare.gaze is None and bare.landmarks == {} and bare.image.shape == (80, 120, 3)
    # look_vec (0, 0, 1) points at the viewer in the OpenGL frame: gaze straight at the camera.
    np.testing.assert_allclose(vector_to_pitchyaw(ds[2].gaze), [0, 0], atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.tuples(*[st.floats(-1, 1) for _ in range(3)]).filter(lambda v: np.linalg.norm(v) > 1e-3))
def test_look_vec_conversion_is_invertible_and_unit(v: tuple[float, float, float]) -> None:
    g = se.look_vec_to_gaze(np.array(v))
    assert abs(np.linalg.norm(g) - 1) < 1e-12
    np.testing.assert_allclose(se.gaze_to_look_vec(g), np.array(v) / np.linalg.norm(v), atol=1e-12)
    np.testing.assert_allclose(se.look_vec_to_gaze(se.gaze_to_look_vec(g)), g, atol=1e-12)


def test_malicious_pickle_is_refused_and_not_run(tree: Path) -> None:
    marker = tree / "pwned"

    class Shell:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    pkl = tree / "f01" / "f01_36_0.1963_-0.7854.pkl"
    pkl.write_bytes(pickle.dumps({"look_vec": Shell()}))
    ds = se.open_dataset(tree)
    with pytest.raises(DataError, match="refusing to unpickle"):
        ds[0]
    assert not marker.exists()
    good, bad = ds.scan()
    assert good == [1, 2] and len(bad) == 1 and str(pkl) in bad[0].path


@pytest.mark.parametrize(
    "labels, field",
    [
        ([1, 2, 3], "labels must be a dict"),
        ({"look_vec": [0, 0]}, "look_vec"),
        ({"look_vec": ["a", "b", "c"]}, "look_vec"),
        ({"look_vec": [0, 0, 0]}, "look_vec"),
        ({"ldmks": [1, 2]}, "ldmks must be a dict"),
        ({"ldmks": {"ldmks_pupil_2d": [1.0, 2.0]}}, "ldmks.ldmks_pupil_2d"),
        ({"ldmks": {"ldmks_iris_2d": [[1.0, float("nan")]]}}, "ldmks.ldmks_iris_2d"),
    ],
)
def test_malformed_labels_name_file_and_field(tree: Path, labels: object, field: str) -> None:
    pkl = tree / "m05" / "m05_1_0.0000_0.0000.pkl"
    pkl.write_bytes(pickle.dumps(labels))
    ds = se.open_dataset(tree)
    with pytest.raises(DataError) as e:
        ds[2]
    assert field in str(e.value) and str(pkl) in str(e.value)


def test_corrupt_png_and_bad_roots(tree: Path, tmp_path: Path) -> None:
    (tree / "f01" / "f01_37_0.0000_-0.7854.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    ds = se.open_dataset(tree)
    with pytest.raises(DataError, match="f01_37"):
        ds[1]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not se.sniff(empty) and not se.sniff(tree / "f01" / "f01_36_0.1963_-0.7854.png")
    with pytest.raises(DataError, match="no PNG"):
        se.open_dataset(empty)
    with pytest.raises(DataError, match="not a folder"):
        se.open_dataset(tmp_path / "missing")
    with pytest.raises(TypeError):
        se.open_dataset(tree, persons=["x"])


def test_other_pngs_are_not_sniffed(tmp_path: Path) -> None:
    _png(tmp_path / "eye_001.png")
    assert not se.sniff(tmp_path)


def test_shared_syntheseyes_renders_all_load(shared_data: Path) -> None:
    folder = shared_data / "syntheseyes"
    assert se.sniff(folder)
    ds = se.open_dataset(folder)
    assert len(ds) == 52
    good, bad = ds.scan()
    assert len(good) == 52 and bad == []
    for i in (0, 25, 51):
        s = ds[i]
        assert s.image.shape == (80, 120, 3) and s.image.dtype == np.uint8
        rgba = np.asarray(Image.open(folder / s.source))
        assert rgba.shape == (80, 120, 4) and rgba[..., 3].min() == 255  # opaque: dropping alpha is lossless
        np.testing.assert_array_equal(s.image, rgba[..., :3])
        assert s.gaze is None  # the shared copy has no label pickles


def test_registry_detects_syntheseyes(tree: Path) -> None:
    from eyepurify.data import detect
    assert detect.detect_format(tree) == "syntheseyes"
    assert len(detect.open_dataset(tree)) == 3

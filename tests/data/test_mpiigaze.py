from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.spatial.transform import Rotation

from eyepurify.data import mpiigaze as mg
from eyepurify.errors import DataError
from eyepurify.gaze.geometry import pitchyaw_to_vector, vector_to_pitchyaw

EVAL = ("Evaluation Subset", "sample list for eye image")


def _side(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    g = rng.normal(size=(n, 3))
    g[:, 2] = -np.abs(g[:, 2]) - 1.0
    return {
        "image": rng.integers(0, 256, (n, 36, 60), dtype=np.uint8),
        "gaze": g / np.linalg.norm(g, axis=1, keepdims=True),
        "pose": rng.normal(scale=0.3, size=(n, 3)),
    }


def _write_mat(path: Path, names: list[str], seed: int, drop: str | None = None) -> dict:
    rng = np.random.default_rng(seed)
    data = {"left": _side(rng, len(names)), "right": _side(rng, len(names))}
    if drop:
        side, field = drop.split(".")
        del data[side][field]
    cell = np.empty((len(names), 1), dtype=object)
    cell[:, 0] = names
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"data": data, "filenames": cell})
    return data


def _ref_pose(rvec: np.ndarray) -> np.ndarray:
    z = Rotation.from_rotvec(rvec).as_matrix()[:, 2]
    return np.array([np.arcsin(z[1]), np.arctan2(z[0], z[2])])


@pytest.fixture
def mpii(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "MPIIGaze"
    norm = root / "Data" / "Normalized"
    names = [f"{i:04d}.jpg" for i in range(1, 5)]
    truth = {
        ("p00", "day01"): _write_mat(norm / "p00" / "day01.mat", names, 1),
        ("p00", "day02"): _write_mat(norm / "p00" / "day02.mat", names[:3], 2),
        ("p01", "day01"): _write_mat(norm / "p01" / "day01.mat", names[:2], 3),
    }
    ev = root.joinpath(*EVAL)
    ev.mkdir(parents=True)
    (ev / "p00.txt").write_text(
        "day01/0001.jpg left\nday01/0003.jpg right\r\nday02/0002.jpg left\n"
        "day02/0009.jpg right\nday03/0001.jpg left\n\n"
    )
    (ev / "p01.txt").write_text("day01/0002.jpg right\n")
    return root, truth


def test_evaluation_subset_values_follow_pytorch_mpiigaze(mpii: tuple[Path, dict]) -> None:
    root, truth = mpii
    assert mg.sniff(root) == "mpiigaze-mat" and mg.sniff(root / "Data" / "Normalized") == "mpiigaze-mat"
    ds = mg.open_dataset(root)
    assert ds.subset == "evaluation" and ds.format_name == "mpiigaze-mat"
    assert [ds[i].source for i in range(len(ds))] == [
        "p00/day01/0001/left", "p00/day01/0003/right", "p00/day02/0002/left", "p01/day01/0002/right",
    ]
    reasons = " | ".join(b.reason for b in ds.bad)
    assert "0009.jpg right" in reasons and "day03.mat" in reasons and len(ds.bad) == 2

    left, t = ds[0], truth[("p00", "day01")]["left"]
    np.testing.assert_array_equal(left.image, np.repeat(t["image"][0][:, :, None], 3, axis=2))
    np.testing.assert_allclose(left.gaze, t["gaze"][0])
    np.testing.assert_allclose(left.head_pose, _ref_pose(t["pose"][0]), atol=1e-9)

    right, t = ds[1], truth[("p00", "day01")]["right"]
    assert right.image.shape == (36, 60, 3) and right.image.dtype == np.uint8
    np.testing.assert_array_equal(right.image[:, :, 0], t["image"][2][:, ::-1])
    np.testing.assert_allclose(right.gaze, t["gaze"][2] * [-1, 1, 1])
    py = vector_to_pitchyaw(t["gaze"][2])
    np.testing.assert_allclose(right.pitchyaw, [py[0], -py[1]], atol=1e-12)
    np.testing.assert_allclose(right.head_pose, _ref_pose(t["pose"][2]) * [1, -1], atol=1e-9)

    unmirrored = mg.open_dataset(root, mirror_right=False)[1]
    np.testing.assert_array_equal(unmirrored.image[:, :, 0], t["image"][2])


def test_roots_subsets_and_persons(mpii: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = mpii
    via_norm = mg.open_dataset(root / "Data" / "Normalized")
    assert via_norm.subset == "evaluation" and len(via_norm) == 4
    everything = mg.open_dataset(root, subset="all")
    assert len(everything) == 2 * (4 + 3 + 2) and everything.bad == []
    assert everything[0].source == "p00/day01/0001/left" and everything[1].source == "p00/day01/0001/right"
    only = mg.open_dataset(root, subset="all", persons=["p01"])
    assert len(only) == 4 and all(s.source.startswith("p01/") for s in only)
    assert len(mg.open_dataset(root, persons=["p01"])) == 1
    with pytest.raises(DataError, match="p07"):
        mg.open_dataset(root, persons=["p07"])
    with pytest.raises(ValueError):
        mg.open_dataset(root, subset="train")
    # A bare Normalized copy without evaluation lists: default "all", explicit "evaluation" fails.
    bare = tmp_path / "bare"
    shutil.copytree(root / "Data" / "Normalized", bare)
    assert mg.open_dataset(bare).subset == "all"
    with pytest.raises(DataError, match="evaluation lists not found"):
        mg.open_dataset(bare, subset="evaluation")
    assert not mg.sniff(tmp_path / "nothing") and not mg.sniff(root / "Data" / "Normalized" / "p00" / "day01.mat")
    with pytest.raises(DataError, match="no Data/Normalized"):
        mg.open_dataset(tmp_path)


def test_corrupt_mat_is_reported_not_fatal(mpii: tuple[Path, dict]) -> None:
    root, _ = mpii
    bad = root / "Data" / "Normalized" / "p00" / "day02.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    ds = mg.open_dataset(root, subset="all")
    assert len(ds) == 2 * (4 + 2)
    assert any(b.path == str(bad) for b in ds.bad)
    ev = mg.open_dataset(root)
    assert len(ev) == 3 and any(b.path == str(bad) for b in ev.bad)
    with pytest.raises(DataError, match="day02.mat"):
        mg.read_mat(bad)


@pytest.mark.parametrize("drop, field", [("right.pose", "data.right.pose"), ("left.image", "data.left.image")])
def test_missing_field_names_file_and_field(mpii: tuple[Path, dict], drop: str, field: str) -> None:
    root, _ = mpii
    path = root / "Data" / "Normalized" / "p01" / "day01.mat"
    _write_mat(path, ["0001.jpg", "0002.jpg"], 9, drop=drop)
    ds = mg.open_dataset(root, persons=["p01"])
    assert len(ds) == 1
    with pytest.raises(DataError) as e:
        ds[0]
    assert str(path) in str(e.value) and f"missing field '{field}'" in str(e.value)
    good, bad = ds.scan()
    assert good == [] and len(bad) == 1


def test_mat_without_data_or_with_wrong_shapes(tmp_path: Path) -> None:
    cell = np.empty((2, 1), dtype=object)
    cell[:, 0] = ["a.jpg", "b.jpg"]
    p = tmp_path / "day01.mat"
    scipy.io.savemat(p, {"filenames": cell})
    with pytest.raises(DataError, match="missing variable 'data'"):
        mg.read_mat(p)
    rng = np.random.default_rng(0)
    side = _side(rng, 3)
    scipy.io.savemat(p, {"data": {"left": side, "right": side}, "filenames": cell})
    with pytest.raises(DataError, match="3 rows but filenames has 2"):
        mg.read_mat(p)
    side = {**_side(rng, 2), "gaze": np.zeros((2, 2))}
    scipy.io.savemat(p, {"data": {"left": side, "right": side}, "filenames": cell})
    with pytest.raises(DataError, match="data.left.gaze has shape"):
        mg.read_mat(p)


def test_lru_cache_reuses_loaded_files(mpii: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = mpii
    calls: list[Path] = []
    real = mg.read_mat

    def counting(path: Path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(mg, "read_mat", counting)
    ds = mg.open_dataset(root, subset="all", cache_size=2)
    for i in list(range(len(ds))) * 2:
        ds[i]
    assert len(calls) == 3 * 2  # each of the 3 files once per pass (2 cached, visited in order)
    calls.clear()
    for _ in range(5):
        ds[0], ds[9]  # noqa: B018 - two files alternate within the cache
    assert len(calls) <= 2
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone[3].image, ds[3].image)


# ------------------------------------------------------------------ pure conversions

@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=7)))
def test_image_mirror_is_an_involution(img: np.ndarray) -> None:
    once = mg.mirror_image(img)
    np.testing.assert_array_equal(mg.mirror_image(once), img)
    np.testing.assert_array_equal(once[:, 0], img[:, -1])


_angle = st.floats(-1.4, 1.4)


@settings(max_examples=60, deadline=None)
@given(_angle, _angle)
def test_gaze_mirror_negates_yaw_and_is_an_involution(pitch: float, yaw: float) -> None:
    g = pitchyaw_to_vector(np.array([pitch, yaw]))
    m = mg.mirror_gaze(g)
    np.testing.assert_allclose(mg.mirror_gaze(m), g, atol=1e-15)
    np.testing.assert_allclose(vector_to_pitchyaw(m), mg.mirror_pitchyaw([pitch, yaw]), atol=1e-9)
    np.testing.assert_allclose(mg.mirror_pitchyaw(mg.mirror_pitchyaw([pitch, yaw])), [pitch, yaw])


@settings(max_examples=60, deadline=None)
@given(st.tuples(*[st.floats(-1.2, 1.2) for _ in range(3)]))
def test_pose_conversion_matches_rotation_and_mirrors(r: tuple[float, float, float]) -> None:
    rvec = np.array(r)
    py = mg.pose_to_pitchyaw(rvec)
    np.testing.assert_allclose(py, _ref_pose(rvec), atol=1e-7)
    # The mirror image M R M (M = diag(-1, 1, 1)) has rotation vector (r0, -r1, -r2):
    # negating the yaw is exactly a left-right mirror of the head.
    np.testing.assert_allclose(mg.pose_to_pitchyaw(rvec * [1, -1, -1]), mg.mirror_pitchyaw(py), atol=1e-7)


def test_pose_axes() -> None:
    np.testing.assert_allclose(mg.pose_to_pitchyaw([0, 0.3, 0]), [0, 0.3], atol=1e-12)
    np.testing.assert_allclose(mg.pose_to_pitchyaw([0.2, 0, 0]), [-0.2, 0], atol=1e-12)
    with pytest.raises(ValueError):
        mg.pose_to_pitchyaw([np.nan, 0, 0])


# ------------------------------------------------------------------ HDF5 exports

def _h5_person_layout(path: Path) -> dict:
    rng = np.random.default_rng(5)
    out = {}
    with h5py.File(path, "w") as f:
        for p, n in (("p00", 4), ("p01", 3)):
            d = {"image": rng.integers(0, 256, (n, 36, 60), dtype=np.uint8),
                 "gaze": rng.uniform(-0.5, 0.5, (n, 2)).astype(np.float32),
                 "pose": rng.uniform(-0.5, 0.5, (n, 2)).astype(np.float32)}
            for k, v in d.items():
                f.create_dataset(f"{p}/{k}", data=v)
            out[p] = d
    return out


def test_h5_pytorch_mpiigaze_layout(tmp_path: Path) -> None:
    path = tmp_path / "MPIIGaze.h5"
    truth = _h5_person_layout(path)
    assert mg.sniff_h5(path) and not mg.sniff_mat(path) and mg.sniff(path) == "mpiigaze-h5"
    ds = mg.open_dataset(path)
    assert isinstance(ds, mg.MPIIGazeH5Dataset) and ds.layout == "person" and len(ds) == 7
    s = ds[5]
    assert s.source == "p01/1"
    np.testing.assert_array_equal(s.image[:, :, 2], truth["p01"]["image"][1])
    np.testing.assert_allclose(s.pitchyaw, truth["p01"]["gaze"][1], atol=1e-6)
    np.testing.assert_allclose(s.head_pose, truth["p01"]["pose"][1], atol=1e-7)
    assert ds[-1].source == "p01/2"
    with pytest.raises(IndexError):
        ds[7]
    assert len(mg.open_dataset(path, persons=["p00"])) == 4
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone[0].image, ds[0].image)
    ds.close()


def test_h5_gazeml_layout_split_and_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "gazeml.h5"
    rng = np.random.default_rng(6)
    with h5py.File(path, "w") as f:
        for split, n in (("train", 3), ("test", 2)):
            f.create_dataset(f"{split}/p00/eye", data=rng.integers(0, 256, (n, 36, 60), dtype=np.uint8))
            f.create_dataset(f"{split}/p00/gaze", data=rng.uniform(-0.3, 0.3, (n, 2)))
            f.create_dataset(f"{split}/p00/head", data=rng.uniform(-0.3, 0.3, (n, 2)))
        f.create_dataset("train/p02/eye", data=rng.integers(0, 256, (4, 36, 60), dtype=np.uint8))
        f.create_dataset("train/p02/gaze", data=np.tile([[0.0, 0.0, -2.0]], (3, 1)))  # vectors, one short
        f.create_dataset("test/p03/eye", data=rng.random((2, 36, 60)))  # float images: skipped
        f.create_dataset("test/p03/gaze", data=np.zeros((2, 2)))
        gz = f["test/p00/gaze"][1]
    assert mg.sniff_h5(path)
    ds = mg.open_dataset(path)
    assert ds.layout == "split" and ds.format_name == "mpiigaze-h5"
    assert len(ds) == 2 + 3 + 3
    reasons = " | ".join(b.reason for b in ds.bad)
    assert "train/p02" in reasons and "using the first 3" in reasons and "test/p03" in reasons
    sources = [ds[i].source for i in range(len(ds))]
    assert sources[:2] == ["train/p00/0", "train/p00/1"] and "test/p00/1" in sources
    v = ds[sources.index("train/p02/0")]
    np.testing.assert_allclose(v.gaze, [0, 0, -1])
    assert v.head_pose is None
    np.testing.assert_allclose(ds[sources.index("test/p00/1")].pitchyaw, gz, atol=1e-12)
    test_only = mg.open_dataset(path, split="test")
    assert [test_only[i].source for i in range(len(test_only))] == ["test/p00/0", "test/p00/1"]
    with pytest.raises(DataError, match="no usable"):
        mg.open_dataset(path, persons=["p09"])


def test_h5_bad_files(tmp_path: Path) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("images", data=np.zeros((2, 4, 4), np.uint8))
    assert not mg.sniff_h5(other) and mg.sniff(other) is False
    with pytest.raises(DataError, match="unrecognised HDF5 layout"):
        mg.open_h5(other)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    assert not mg.sniff_h5(junk)
    with pytest.raises(DataError, match="junk.h5"):
        mg.open_h5(junk)
    with pytest.raises(DataError, match="file not found"):
        mg.open_h5(tmp_path / "missing.h5")
    path = tmp_path / "nan.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("p00/image", data=np.zeros((1, 36, 60), np.uint8))
        f.create_dataset("p00/gaze", data=np.full((1, 2), np.nan))
    with pytest.raises(DataError, match="nan.h5#p00/0"):
        mg.open_h5(path)[0]


def test_registry_detects_both_formats(mpii: tuple[Path, dict], tmp_path: Path) -> None:
    from eyepurify.data import detect
    root, _ = mpii
    assert detect.detect_format(root) == "mpiigaze-mat"
    assert len(detect.open_dataset(root)) == 4
    path = tmp_path / "MPIIGaze.h5"
    _h5_person_layout(path)
    assert detect.detect_format(path) == "mpiigaze-h5"
    assert len(detect.open_dataset(path, persons=["p01"])) == 3


def test_nothing_usable_is_one_clear_error(mpii: tuple[Path, dict]) -> None:
    root, _ = mpii
    (root / "Data" / "Normalized" / "p01" / "day01.mat").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"no usable eye images \(1 problem\(s\), first: .*day01.mat"):
        mg.open_dataset(root, persons=["p01"])

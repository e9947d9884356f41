"""Property-based fuzzing of the loaders that parse untrusted files: whatever the bytes, a
UnityEyes JSON, an MPIIGaze .mat or .h5 and a label pickle give a sample or one DataError,
never another exception, and a pickle never runs anything; a batch run's manifest.json gives
one one-line error or output paths inside --out. ``EYEPURIFY_FUZZ_EXAMPLES=2000``
runs a long randomised search instead of CI's fixed 40 examples per property."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eyepurify.cli import main
from eyepurify.data.mpiigaze import MPIIGazeH5Dataset, read_mat, read_mat_filenames
from eyepurify.data.safe_pickle import safe_loads
from eyepurify.data.unityeyes import UnityEyesDataset
from eyepurify.errors import DataError

# CI runs a fixed, small sample; EYEPURIFY_FUZZ_EXAMPLES=2000 runs a long random search.
_N = int(os.environ.get("EYEPURIFY_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_N or 40, deadline=None, derandomize=not _N, suppress_health_check=[HealthCheck.too_slow])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**500), max_value=10**500)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)
TUPLE_TEXT = st.text(alphabet="()[]0123456789.,-+e naifNIjx'\"_", max_size=40)
KEYS = ("interior_margin_2d", "caruncle_2d", "iris_2d", "eye_details", "eye_details.look_vec",
        "eye_details.pupil_size", "head_pose", "eyepurify", "eyepurify.pupil_center")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """(PNG bytes, JSON text) of one valid render."""
    out = tmp_path_factory.mktemp("render") / "r"
    assert main(["render", "--domain", "wild", "--n", "1", "--size", "36x60", "--seed", "3", "--out", str(out)]) == 0
    png = next((out / "wild").glob("*.png"))
    return png.read_bytes(), png.with_suffix(".json").read_bytes()


def _load_unityeyes(png: bytes, text: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "0.png").write_bytes(png)
        (Path(d) / "0.json").write_bytes(text)
        try:
            UnityEyesDataset(d)[0]
        except DataError as e:
            assert "0.json" in str(e) or "0.png" in str(e)


def _mutate(data: bytes, edits: list[tuple[float, int]], cut: float | None) -> bytes:
    b = bytearray(data)
    for where, value in edits:
        b[int(where * (len(b) - 1))] = value
    return bytes(b[: int(cut * len(b))] if cut is not None else b)


EDITS = st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8)
CUT = st.none() | st.floats(0, 1)


@FUZZ
@given(key=st.sampled_from(KEYS), value=JSON | TUPLE_TEXT | st.lists(TUPLE_TEXT, max_size=40))
def test_unityeyes_json_values(pair: tuple[bytes, bytes], key: str, value: object) -> None:
    d = json.loads(pair[1])
    node = d
    *path, last = key.split(".")
    for k in path:
        node = node[k]
    node[last] = value
    _load_unityeyes(pair[0], json.dumps(d).encode())


@FUZZ
@given(edits=EDITS, cut=CUT)
def test_unityeyes_json_bytes(pair: tuple[bytes, bytes], edits: list[tuple[float, int]], cut: float | None) -> None:
    _load_unityeyes(pair[0], _mutate(pair[1], edits, cut))


@pytest.fixture(scope="module")
def mat_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A small MPIIGaze normalized .mat (3 samples per eye), compressed as the originals."""
    rng = np.random.default_rng(0)
    side = {"image": rng.integers(0, 255, (3, 36, 60), dtype=np.uint8), "gaze": rng.normal(size=(3, 3)),
            "pose": rng.normal(size=(3, 3))}
    path = tmp_path_factory.mktemp("mat") / "day01.mat"
    scipy.io.savemat(str(path), {"filenames": np.array(["0001.jpg", "0002.jpg", "0003.jpg"], dtype=object),
                                 "data": {"left": side, "right": side}}, do_compression=True)
    return path.read_bytes()


@FUZZ
@given(edits=EDITS, cut=CUT)
def test_mat_bytes(mat_bytes: bytes, edits: list[tuple[float, int]], cut: float | None) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "day01.mat"
        path.write_bytes(_mutate(mat_bytes, edits, cut))
        for reader in (read_mat_filenames, read_mat):
            try:
                reader(path)
            except DataError as e:
                assert "day01.mat" in str(e)


@pytest.fixture(scope="module")
def h5_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    import h5py

    path = tmp_path_factory.mktemp("h5") / "m.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        g = f.create_group("p00")
        g["image"] = rng.integers(0, 255, (3, 36, 60), dtype=np.uint8)
        g["gaze"] = rng.normal(0, 0.3, (3, 2))
        g["pose"] = rng.normal(0, 0.3, (3, 2))
    return path.read_bytes()


@FUZZ
@given(edits=EDITS, cut=CUT)
def test_h5_bytes(h5_bytes: bytes, edits: list[tuple[float, int]], cut: float | None) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.h5"
        path.write_bytes(_mutate(h5_bytes, edits, cut))
        try:
            ds = MPIIGazeH5Dataset(path)
            for i in range(len(ds)):
                try:
                    ds[i]
                except DataError as e:
                    assert "m.h5" in str(e)
            ds.close()
        except DataError as e:
            assert "m.h5" in str(e)


# A payload any unpickler that resolves globals freely would run.
DANGEROUS = [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
             ("builtins", "getattr"), ("builtins", "__import__"), ("subprocess", "Popen"),
             ("numpy", "load"), ("numpy.testing", "runstring"), ("shutil", "rmtree"), ("__builtin__", "open")]


@FUZZ
@given(edits=EDITS, cut=CUT, protocol=st.integers(0, pickle.HIGHEST_PROTOCOL),
       value=st.recursive(st.none() | st.integers() | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                          max_leaves=8))
def test_pickle_bytes(edits: list[tuple[float, int]], cut: float | None, protocol: int, value: object) -> None:
    data = _mutate(pickle.dumps({"v": value, "a": np.arange(4.0)}, protocol=protocol), edits, cut)
    try:
        safe_loads(data, "fuzz.pkl")
    except DataError as e:
        assert "fuzz.pkl" in str(e)


@FUZZ
@given(target=st.sampled_from(DANGEROUS), arg=st.text(max_size=20), stack=st.booleans())
def test_pickle_globals_never_run(tmp_path_factory: pytest.TempPathFactory, target: tuple[str, str], arg: str, stack: bool) -> None:
    marker = tmp_path_factory.getbasetemp() / "pwned"
    module, name = target
    call = f"touch {marker}" if name == "system" else arg
    body = f"c{module}\n{name}\n(V{call.replace(chr(10), ' ')}\ntR.".encode("raw_unicode_escape")
    if stack:  # hidden inside a container
        body = b"(l" + body[:-1] + b"a."
    with pytest.raises(DataError, match="refusing to unpickle"):
        safe_loads(body, "evil.pkl")
    assert not os.path.exists(marker)


def test_codecs_encode_takes_only_latin1() -> None:
    """Found by test_pickle_bytes: the allowed ``_codecs.encode`` with another codec name
    raised LookupError (and would import an ``encodings`` module of the file's choosing)."""
    good = pickle.dumps({"b": b"\x00\xffab"}, protocol=0)
    assert safe_loads(good) == {"b": b"\x00\xffab"}
    for codec in (b"latin1rp12", b"utf_16", b"rot13", b"zlib"):
        with pytest.raises(DataError, match="only latin1"):
            safe_loads(good.replace(b"Vlatin1", b"V" + codec))


# ---------------------------------------------------------------- manifest.json (issue 25)

MANIFEST_SETTINGS = {"command": "purify", "model_sha256": "0" * 64}
PATHS = st.sampled_from(["../victim.txt", "/etc/passwd", "a/../../b", "", ".", "a//b", "a\0b", "x" * 300,
                         "masks/a.png", "a.png", "manifest.json", ".eyepurify.lock", "~/x", "C:\\x", "\udcff.png"])
MANIFEST_FIELDS = ("outputs", "status", "input", "error", "resolved", "input_sha256", "labels", "mask", "frames",
                   "labels.gaze", "labels.source", "item", "items", "meta", "meta.settings", "top")


@pytest.fixture(scope="module")
def manifest_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(an input image, the manifest a finished run over it wrote)."""
    from PIL import Image

    from eyepurify.engines.manifest import Manifest
    from eyepurify.engines.plan import IMAGE_LAYOUT, InputItem, plan

    d = tmp_path_factory.mktemp("manifest")
    img = d / "in" / "a.png"
    img.parent.mkdir()
    Image.fromarray(np.full((8, 12, 3), 100, np.uint8)).save(img)
    m = Manifest.open(d / "out", settings=MANIFEST_SETTINGS, inputs=[img])
    plan([InputItem("image", img)], m, IMAGE_LAYOUT)
    m.mark("a.png", str(img), "done", mask="predicted", labels={"source": "a", "gaze": [0.1, 0.2, -1.0]})
    m.save()
    m.close()
    return img, json.loads((d / "out" / "manifest.json").read_text())


def _resume_from(img: Path, data: bytes) -> None:
    """Resume (and --overwrite) over a manifest holding ``data``: one one-line error naming
    --out, or output paths inside --out, never another exception."""
    from eyepurify.engines.manifest import Manifest, check_relpath
    from eyepurify.engines.plan import IMAGE_LAYOUT, InputItem, plan
    from eyepurify.errors import EyepurifyError

    for mode in ({"resume": True}, {"overwrite": True}):
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "out"
            out.mkdir()
            (out / "manifest.json").write_bytes(data)
            try:
                m = Manifest.open(out, settings=MANIFEST_SETTINGS, inputs=[img], **mode)
            except EyepurifyError as e:
                assert str(out) in str(e) and "\n" not in str(e), str(e)
                continue
            try:
                units = plan([InputItem("image", img)], m, IMAGE_LAYOUT)
                for u in units:
                    for o in u.outputs:
                        check_relpath(o)
                        assert os.path.realpath(out / o).startswith(os.path.realpath(out) + os.sep)
                m.is_done(units[0].key, units[0].source)
                m.save()
                m.write_report()
            finally:
                m.close()


@FUZZ
@given(field=st.sampled_from(MANIFEST_FIELDS), value=JSON | PATHS | st.lists(PATHS, max_size=4))
def test_manifest_values(manifest_case: tuple[Path, dict], field: str, value: object) -> None:
    img, base = manifest_case
    m = json.loads(json.dumps(base))
    item = m["items"]["a.png"]
    if field == "top":
        m = value
    elif field == "item":
        m["items"]["a.png"] = value
    elif field in ("items", "meta"):
        m[field] = value
    elif field == "meta.settings":
        m["meta"]["settings"] = value
    elif field.startswith("labels."):
        item["labels"][field.split(".", 1)[1]] = value
    else:
        item[field] = value
    _resume_from(img, json.dumps(m).encode())


@FUZZ
@given(edits=EDITS, cut=CUT)
def test_manifest_bytes(manifest_case: tuple[Path, dict], edits: list[tuple[float, int]], cut: float | None) -> None:
    img, base = manifest_case
    _resume_from(img, _mutate(json.dumps(base).encode(), edits, cut))

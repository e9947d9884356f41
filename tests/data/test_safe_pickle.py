from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from eyepurify.data.safe_pickle import safe_load, safe_loads
from eyepurify.errors import DataError


class _Shell:
    """Pickles as a call to os.system(cmd)."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


class _Eval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_os_system_is_refused_and_nothing_runs(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"look_vec": _Shell(f"touch {marker}")}, protocol=protocol))
    with pytest.raises(DataError) as e:
        safe_load(path)
    msg = str(e.value)
    assert "refusing to unpickle" in msg and "system" in msg and str(path) in msg
    assert not marker.exists()


def test_builtins_eval_and_getattr_are_refused() -> None:
    with pytest.raises(DataError, match="refusing to unpickle builtins.eval"):
        safe_loads(pickle.dumps(_Eval()))
    # A hand-written protocol-0 pickle: builtins.getattr(builtins, "eval")
    crafted = b"cbuiltins\ngetattr\n(cbuiltins\nlist\nS'append'\ntR."
    with pytest.raises(DataError, match="refusing to unpickle builtins.getattr"):
        safe_loads(crafted)


def test_unknown_numpy_function_is_refused() -> None:
    crafted = b"cnumpy\nload\n(S'x.npy'\ntR."
    with pytest.raises(DataError, match="refusing to unpickle numpy.load"):
        safe_loads(crafted)


@settings(max_examples=30, deadline=None)
@given(
    arr=hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64, np.int16, np.uint8, np.int64]),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
    ),
    protocol=st.integers(0, pickle.HIGHEST_PROTOCOL),
)
def test_dicts_with_numpy_arrays_round_trip(arr: np.ndarray, protocol: int) -> None:
    data = {
        "look_vec": arr,
        "ldmks": {"ldmks_iris_2d": [(1.5, 2.0), (3.0, 4.5)], "ldmks_pupil_2d": arr.T.copy()},
        "name": "f01", "scale": np.float32(1.5), "n": np.int64(7), "flags": {1, 2},
        "order": OrderedDict(a=1), "raw": b"\x00\xff", "c": 1 + 2j, "t": (None, True),
    }
    out = safe_loads(pickle.dumps(data, protocol=protocol))
    np.testing.assert_array_equal(out["look_vec"], arr)
    assert out["look_vec"].dtype == arr.dtype
    np.testing.assert_array_equal(out["ldmks"]["ldmks_pupil_2d"], arr.T)
    assert out["ldmks"]["ldmks_iris_2d"] == [(1.5, 2.0), (3.0, 4.5)]
    assert out["scale"] == np.float32(1.5) and out["n"] == 7 and out["flags"] == {1, 2}
    assert out["order"] == OrderedDict(a=1) and out["raw"] == b"\x00\xff" and out["c"] == 1 + 2j
    assert out["t"] == (None, True)


def test_numpy1_module_names_and_python2_builtins_load() -> None:
    # Protocol 2 writes module names as text lines: rewrite them as numpy 1 wrote them.
    data = pickle.dumps({"a": np.arange(6.0).reshape(2, 3), "s": {3}}, protocol=2)
    assert b"__builtin__\nset" in data  # Python 2 name written by fix_imports
    old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert old != data
    out = safe_loads(old)
    np.testing.assert_array_equal(out["a"], np.arange(6.0).reshape(2, 3))
    assert out["s"] == {3}


def test_python2_str_payload_decodes_as_latin1() -> None:
    # Protocol 2 with a Python 2 8-bit string (BINSTRING) as dict key and value.
    crafted = b"\x80\x02}q\x00U\x03keyq\x01U\x02\xe9\xe8q\x02s."
    assert safe_loads(crafted) == {"key": "\xe9\xe8"}


@pytest.mark.parametrize("blob", [b"", b"\x80\x04garbage", pickle.dumps({"a": 1})[:-3]])
def test_corrupt_pickles_raise_data_error(blob: bytes, tmp_path: Path) -> None:
    path = tmp_path / "bad.pkl"
    path.write_bytes(blob)
    with pytest.raises(DataError, match="bad.pkl"):
        safe_load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        safe_load(tmp_path / "nope.pkl")

"""Load label pickles without running code: an allow-list unpickler.

``pickle.load`` calls whatever callable a file names, so a label file from the internet can
run any command. :func:`safe_load` resolves only the globals in :data:`ALLOWED` (plain
containers, numbers, strings, and the numpy functions that rebuild arrays, dtypes and
scalars) and raises :class:`DataError` ("refusing to unpickle module.name") for anything
else, before it is imported or called. Python 2 pickles load too (``__builtin__`` names are
mapped, 8-bit strings are decoded as latin-1, as numpy recommends for such files).
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

from eyepurify.errors import DataError

_BUILTINS = (
    "dict", "list", "tuple", "set", "frozenset", "bytearray", "bytes", "str",
    "int", "float", "complex", "bool", "slice", "range",
)

# (module, name) -> candidate modules to take ``name`` from (first importable one wins), so
# files written under numpy 1 (numpy.core) and numpy 2 (numpy._core) both load, and numpy's
# deprecated numpy.core shim is never imported.
_NUMPY_CORE = ("numpy._core", "numpy.core")
ALLOWED: dict[tuple[str, str], tuple[str, ...]] = {
    **{("builtins", n): ("builtins",) for n in _BUILTINS},
    ("collections", "OrderedDict"): ("collections",),
    # Protocol 0-2 pickles written by Python 3 store bytes as _codecs.encode(str, "latin1").
    ("_codecs", "encode"): ("_codecs",),
    ("numpy", "ndarray"): ("numpy",),
    ("numpy", "dtype"): ("numpy",),
    **{
        (f"{core}.multiarray", name): tuple(f"{c}.multiarray" for c in _NUMPY_CORE)
        for core in _NUMPY_CORE
        for name in ("_reconstruct", "scalar")
    },
    **{(f"{core}.numeric", "_frombuffer"): tuple(f"{c}.numeric" for c in _NUMPY_CORE) for core in _NUMPY_CORE},
}

# Python 2 module names that Python 3 renamed (the subset that can reach ALLOWED).
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


_LATIN1 = {"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "l1"}


def _latin1_encode(text: Any, encoding: Any = "latin1", *rest: Any) -> bytes:
    """``_codecs.encode`` as pickles use it (str -> bytes in latin-1), and nothing else: an
    arbitrary codec name would make Python import an ``encodings`` module on the file's say."""
    if rest or not isinstance(text, str) or not isinstance(encoding, str) or encoding.lower() not in _LATIN1:
        raise ValueError(f"_codecs.encode with encoding {str(encoding)[:20]!r} (only latin1 is allowed)")
    return text.encode("latin1")


def _resolve(module: str, name: str) -> Any:
    if (module, name) == ("_codecs", "encode"):
        return _latin1_encode
    for candidate in ALLOWED[(module, name)]:
        try:
            mod = importlib.import_module(candidate)
        except ImportError:
            continue
        if hasattr(mod, name):
            return getattr(mod, name)
    raise AttributeError(f"{module}.{name}")


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        if (module, name) not in ALLOWED:
            raise DataError(
                self._source, f"refusing to unpickle {module}.{name}",
                "label pickles may hold only containers, numbers, strings and numpy arrays; "
                "re-save the file without custom objects",
            )
        try:
            return _resolve(module, name)
        except AttributeError:
            raise DataError(
                self._source, f"{module}.{name} is not available in this numpy",
                "re-save the file with a current numpy",
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(self._source, "pickle uses persistent ids", "re-save it as a plain pickle")


def safe_loads(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` allowing only containers, numbers, strings and numpy arrays.

    ``source`` names the data in error messages. Raises DataError for refused globals and
    for corrupt or truncated pickles.
    """
    try:
        return _AllowListUnpickler(io.BytesIO(data), source).load()
    except DataError:
        raise
    except Exception as e:  # UnpicklingError, EOFError, ValueError, LookupError, MemoryError, ...
        raise DataError(
            source, f"not a readable pickle ({type(e).__name__}: {e})",
            "the file is corrupt or truncated; re-export it",
        ) from None


def safe_load(path: str | os.PathLike[str]) -> Any:
    """Read and unpickle the file at ``path`` with :func:`safe_loads`' allow-list."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "file not found", "check the path") from None
    except OSError as e:
        raise DataError(path, f"cannot read ({e.strerror})", "check the file's permissions") from None
    return safe_loads(data, str(path))

"""Format detection and one entry point, :func:`open_dataset`, for every data format.

Each format module exposes ``FORMAT`` (its name), ``sniff(path) -> bool`` (a cheap check;
a module holding several formats may return the matching format's name instead of True)
and ``open_dataset(path, **kw) -> EyeDataset``. Modules are imported lazily, and a module
that is not installed is skipped.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from eyepurify.data.base import EyeDataset
from eyepurify.errors import DataError

#: (format name, module), in sniff order: the specific formats first, a plain folder last.
FORMATS: tuple[tuple[str, str], ...] = (
    ("mpiigaze-mat", "eyepurify.data.mpiigaze"),
    ("mpiigaze-h5", "eyepurify.data.mpiigaze"),
    ("lpw", "eyepurify.data.lpw"),
    ("syntheseyes", "eyepurify.data.syntheseyes"),
    ("render", "eyepurify.data.render_folder"),
    ("unityeyes", "eyepurify.data.unityeyes"),
    ("columbia", "eyepurify.data.columbia"),
    ("folder", "eyepurify.data.folder"),
)


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name == name:
            return None
        raise


def available_formats() -> list[str]:
    """Names of the formats whose module can be imported, in sniff order."""
    return [fmt for fmt, mod in FORMATS if _module(mod) is not None]


def _known() -> str:
    return ", ".join(available_formats())


def detect_format(path: str | Path) -> str:
    """Name of the first format whose ``sniff`` accepts ``path``; DataError when none does."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "does not exist", "check the path")
    tried: set[str] = set()
    for fmt, name in FORMATS:
        if name in tried:
            continue
        tried.add(name)
        mod = _module(name)
        if mod is None:
            continue
        found = mod.sniff(path)
        if isinstance(found, str):
            return found
        if found:
            return str(getattr(mod, "FORMAT", fmt))
    raise DataError(
        path, "unknown data format", f"known formats: {_known()}; pass --format to choose one"
    )


def open_dataset(path: str | Path, format: str | None = None, **kw: object) -> EyeDataset:
    """Open ``path`` as a dataset of ``format`` (detected when None); ``kw`` go to the loader."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "does not exist", "check the path")
    fmt = detect_format(path) if format is None else format
    modules = dict(FORMATS)
    if fmt not in modules:
        raise DataError(path, f"unknown format {fmt!r}", f"known formats: {_known()}")
    mod = _module(modules[fmt])
    if mod is None:
        raise DataError(path, f"format {fmt!r} is not available in this install", f"available: {_known()}")
    return mod.open_dataset(path, **kw)

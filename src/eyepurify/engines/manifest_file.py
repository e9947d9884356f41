"""``manifest.json`` read as untrusted input: a regular file (no symlink, FIFO or device) of at
most :data:`MANIFEST_LIMIT` bytes, valid JSON, and every field eyepurify reads back of the type
and size it writes (:func:`check_manifest`). Output paths must stay inside ``--out``
(:func:`eyepurify.engines.outdir.check_relpath`); they only tell which files a run wrote, never where
the next one writes (names come from the inputs, :meth:`eyepurify.engines.manifest.Manifest.claim`).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from eyepurify.engines.outdir import UnsafePath, check_relpath
from eyepurify.errors import DataError
from eyepurify.io import read_state_file

#: 512 MiB: a manifest of 1.5 million items (MPIIGaze has 213,659 patches: ~40 MB).
MANIFEST_LIMIT = 512 << 20
STATUSES = ("pending", "done", "failed")
#: Outputs one item may have (purify writes 2, purify --faces --output crop of a video 3).
MAX_OUTPUTS = 16
#: Characters in an input, an item key or an error line.
MAX_TEXT = 8192
FIX = "delete it to start over, or choose another --out"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _text(v: object, limit: int = MAX_TEXT) -> bool:
    return isinstance(v, str) and len(v) <= limit


def _numbers(v: object, n: int) -> bool:
    return (isinstance(v, list) and len(v) <= n
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v))


def _short(v: object) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:59] + "…"


def _item_problem(key: str, it: object) -> str:
    """Why item ``key`` is not one eyepurify writes ("" when it is)."""
    if not isinstance(it, dict):
        return f"is a {type(it).__name__}, not an object"
    if it.get("status") not in STATUSES:
        return f"status is {_short(it.get('status'))}, not one of {', '.join(STATUSES)}"
    if not _text(it.get("input")):
        return f"input is {_short(it.get('input'))}, not a path"
    outs = it.get("outputs")
    if outs is not None:
        if not isinstance(outs, list) or not 1 <= len(outs) <= MAX_OUTPUTS:
            return f"outputs is {_short(outs)}, not a list of 1 to {MAX_OUTPUTS} paths"
        for o in outs:
            try:
                check_relpath(o)
            except UnsafePath as e:
                return f"output {e} (outputs stay inside --out)"
    for field in ("error", "resolved", "mask", "note", "frames_without_face"):
        if field in it and not _text(it[field]):
            return f"{field} is {_short(it[field])}, not a string"
    if "input_sha256" in it and not (it["input_sha256"] is None or (isinstance(it["input_sha256"], str)
                                                                    and _HEX64.fullmatch(it["input_sha256"]))):
        return f"input_sha256 is {_short(it['input_sha256'])}, not a SHA-256"
    for field in ("frames", "frames_declared"):
        v = it.get(field)
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            return f"{field} is {_short(v)}, not a frame count"
    labels = it.get("labels")
    if labels is not None:
        if not isinstance(labels, dict):
            return f"labels is {_short(labels)}, not an object"
        if "source" in labels and not _text(labels["source"]):
            return f"labels.source is {_short(labels['source'])}, not a path"
        for field, n in (("gaze", 3), ("head_pose", 3), ("pupil_center", 2)):
            if labels.get(field) is not None and not _numbers(labels[field], n):
                return f"labels.{field} is {_short(labels[field])}, not up to {n} finite numbers"
    return ""


def check_manifest(path: object, data: object) -> dict[str, Any]:
    """``{"meta": ..., "items": ...}`` of a parsed manifest if it has eyepurify's schema, else a
    one-line DataError naming the file, the first bad field and the fix."""
    def bad(problem: str) -> DataError:
        return DataError(path, f"not an eyepurify manifest ({problem})", FIX)

    if not isinstance(data, dict):
        raise bad(f"a {type(data).__name__} instead of an object")
    items, meta = data.get("items"), data.get("meta", {})
    if not isinstance(items, dict):
        raise bad("no 'items' object")
    if not isinstance(meta, dict):
        raise bad("'meta' is not an object")
    if "settings" in meta and not isinstance(meta["settings"], dict):
        raise bad("'meta.settings' is not an object")
    for key, it in items.items():
        if not _text(key) or not key:
            raise bad(f"item key {_short(key)} is not a path")
        problem = _item_problem(key, it)
        if problem:
            raise bad(f"item {_short(key)}: {problem}")
    return {"meta": meta, "items": items}


def load_manifest(path: Path) -> dict[str, Any]:
    """Read and check ``path`` (see the module docstring); DataError naming it when unusable."""
    raw = read_state_file(path, MANIFEST_LIMIT, "an eyepurify manifest", FIX)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise DataError(path, f"not an eyepurify manifest ({type(e).__name__}: {e})", FIX) from None
    return check_manifest(path, data)

"""Training checkpoint files: the format and its readers (inference reads them too).

A checkpoint is one safetensors file, never pickle. Tensors (model state, optimizer tensors,
torch RNG states) go into the safetensors body; everything else (step, run config, optimizer
hyper-parameters, numpy and Python RNG states, free-form ``extra``, the model ``kind``) is
JSON in the header's ``"eyepurify"`` metadata entry, readable without loading the tensors.

Tensor names: ``model/<key>``, ``optim/<param index>/<key>`` (or, for several named
optimizers, ``optims/<name>/<param index>/<key>``), ``rng/torch``, ``rng/generator/<name>``. Writing and restoring (RNGs, optimizer) is training's business:
:mod:`eyepurify.train.checkpoint`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load

from eyepurify.errors import WeightsError

FORMAT = "eyepurify-checkpoint"
VERSION = 1
METADATA_KEY = "eyepurify"


def weights_error(path: object, problem: str, fix: str) -> WeightsError:
    """The one-line WeightsError for a model or checkpoint file: what is wrong, and the fix."""
    return WeightsError(f"{path}: {problem} ({fix})".replace("\n", " "))


def tagged_json(obj: Any) -> Any:
    """JSON-safe copy keeping tuples distinguishable from lists."""
    if isinstance(obj, tuple):
        return {"__tuple__": [tagged_json(v) for v in obj]}
    if isinstance(obj, list):
        return [tagged_json(v) for v in obj]
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError(f"checkpoint metadata keys must be strings, got {list(obj)[:3]}")
        return {k: tagged_json(v) for k, v in obj.items()}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in checkpoint metadata")


def untagged_json(obj: Any) -> Any:
    """The inverse of :func:`tagged_json` (tuples restored)."""
    if isinstance(obj, dict):
        if set(obj) == {"__tuple__"}:
            return tuple(untagged_json(v) for v in obj["__tuple__"])
        return {k: untagged_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [untagged_json(v) for v in obj]
    return obj


@dataclass
class Checkpoint:
    """The contents of a checkpoint file (see the module docstring for the layout)."""

    step: int
    config: dict[str, Any]
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None = None
    optimizer_states: dict[str, dict[str, Any]] = field(default_factory=dict)  # named optimizers
    rng: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    path: str = ""


def _optimizer_join(tensors: dict[str, torch.Tensor], meta: dict[str, Any], prefix: str = "optim/") -> dict[str, Any]:
    """An optimizer state dict from its JSON part and the tensors named ``<prefix><index>/<key>``."""
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in meta["state"].items()}
    for name, t in tensors.items():
        if name.startswith(prefix):
            idx, key = name[len(prefix):].split("/", 1)
            state.setdefault(int(idx), {})[key] = t
    return {"state": state, "param_groups": meta["param_groups"]}


def read_checkpoint_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON header of a checkpoint (cheap: tensors are not read)."""
    path = Path(path)
    if not path.is_file():
        raise weights_error(path, "checkpoint not found", "check the path, or train without --resume")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise weights_error(path, f"cannot read the checkpoint ({e.strerror or e})", "check its permissions") from None
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise weights_error(path, f"not a readable safetensors file ({e})", "the file is corrupt or truncated; delete it or use an older checkpoint") from None
    if raw is None:
        raise weights_error(path, "no eyepurify metadata", "this is not an eyepurify checkpoint")
    try:
        meta = untagged_json(json.loads(raw))
    except (ValueError, RecursionError) as e:
        raise weights_error(path, f"metadata is not valid JSON ({e})", "the file is corrupt; use an older checkpoint") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise weights_error(path, "not an eyepurify training checkpoint", "pass a checkpoint written by eyepurify training")
    if meta.get("version") != VERSION:
        raise weights_error(path, f"checkpoint version {meta.get('version')} is not supported (expected {VERSION})", "use the eyepurify version that wrote it")
    return meta


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint file (tensors on CPU); WeightsError naming the file when unusable."""
    path = Path(path)
    meta = read_checkpoint_meta(path)
    try:
        tensors = st_load(path.read_bytes())
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise weights_error(path, f"cannot read tensors ({e})", "the file is corrupt or truncated; use an older checkpoint") from None
    if "rng/torch" not in tensors:
        raise weights_error(path, "checkpoint has no RNG state", "the file is incomplete; use an older checkpoint")
    model_state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    opt = _optimizer_join(tensors, meta["optimizer"]) if "optimizer" in meta else None
    named = {n: _optimizer_join(tensors, m, f"optims/{n}/") for n, m in meta.get("optimizers", {}).items()}
    rng = dict(meta["rng"])
    rng["tensors"] = {k: v for k, v in tensors.items() if k.startswith("rng/")}
    return Checkpoint(
        step=int(meta["step"]), config=meta.get("config", {}), model_state=model_state,
        optimizer_state=opt, optimizer_states=named, rng=rng, extra=meta.get("extra", {}), path=str(path),
    )

"""Single-file model weights: a safetensors file whose metadata holds the JSON config.

Used for shipped and exported models (inference only). Training checkpoints, which also
carry optimizer and RNG state, live in ``eyepurify.train.checkpoint``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from eyepurify.errors import WeightsError
from eyepurify.io import file_mode

METADATA_KEY = "eyepurify"


def save_model(path: str | os.PathLike[str], module: torch.nn.Module, meta: dict[str, object]) -> None:
    """Write ``module``'s state dict and JSON-serialisable ``meta`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata={METADATA_KEY: json.dumps(meta)})
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_model_meta(path: str | os.PathLike[str]) -> dict[str, object]:
    """The JSON metadata of a model file (reads the header only)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: model file not found (pass an existing .safetensors file)")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e}); re-export it") from None
    if raw is None:
        raise WeightsError(f"{path}: no eyepurify metadata in this safetensors file; export it with eyepurify")
    return json.loads(raw)


def load_model(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """(state dict, metadata) of a model file; WeightsError with the fix when unreadable."""
    meta = read_model_meta(path)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: cannot read tensors ({e}); the file is corrupt, re-export it") from None
    return state, meta


def load_state_checked(module: torch.nn.Module, state: dict[str, torch.Tensor], path: object) -> None:
    """Strict load with a one-line WeightsError naming the file and the first bad key."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise WeightsError(
            f"{path}: weights do not fit the architecture (missing {missing[:3]}, unexpected "
            f"{extra[:3]}); use the model file made for this network"
        )
    for k, v in own.items():
        if v.shape != state[k].shape:
            raise WeightsError(
                f"{path}: {k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}; "
                "use the model file made for this network"
            )
        if v.is_floating_point() and not torch.isfinite(state[k]).all():
            raise WeightsError(f"{path}: {k} contains NaN/inf; the model is broken, retrain or re-export")
    module.load_state_dict(state)

"""Single-file model weights: a safetensors file whose metadata holds the JSON config.

Used for shipped and exported models (inference only); every file says its ``kind``
(:mod:`eyepurify.models.registry`). Training checkpoints, which also carry optimizer and RNG
state, are read by ``eyepurify.models.files`` and written by ``eyepurify.train.checkpoint``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from eyepurify.errors import WeightsError
from eyepurify.io import file_mode, fsync_file, temp_file
from eyepurify.models.transformer import UPSAMPLE_MODES

METADATA_KEY = "eyepurify"


def save_model(path: str | os.PathLike[str], module: torch.nn.Module, meta: dict[str, object]) -> None:
    """Write ``module``'s state dict and JSON-serialisable ``meta`` atomically (fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    fd, tmp = temp_file(path.parent)
    os.close(fd)
    try:
        save_file(state, tmp, metadata={METADATA_KEY: json.dumps(meta)})
        fsync_file(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


#: Upper bounds for architecture numbers read from a file (beyond them a file is not trusted).
_NET_LIMITS = {"width": (1, 4096), "n_res": (0, 64), "depth": (0, 16), "in_channels": (1, 64),
               "num_classes": (1, 256), "mask_channels": (0, 64), "blocks": (0, 64), "filters": (1, 4096),
               "outer_kernel": (1, 31), "fc": (1, 1 << 16)}
#: architecture fields that are names (their allowed values) or lists of sizes
_NET_CHOICES = {"upsample": UPSAMPLE_MODES}
_NET_LISTS = ("input_size", "convs1", "convs2")


def _bad_meta(path: object, what: str) -> WeightsError:
    return WeightsError(f"{path}: {what} in the model metadata; the file is damaged or not an eyepurify model (re-export it)")


def _short(v: object) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:39] + "…"


def _check_size(path: object, key: str, v: object) -> None:
    if v is None:
        return
    ok = isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) and 2 <= x <= 4096 for x in v)
    if not ok:
        raise _bad_meta(path, f"{key} is {_short(v)}, not [H, W] with 2..4096 pixels per side")


def check_model_meta(path: object, meta: object) -> dict[str, object]:
    """``meta`` if its architecture and sizes are usable, else a WeightsError naming the file:
    ``net`` numbers must be non-negative, finite and of sane size, ``size`` [H, W] ≥ 2, and
    an ``eye_scale`` entry complete. Checkpoint headers are checked the same way."""
    if not isinstance(meta, dict):
        raise _bad_meta(path, f"a {type(meta).__name__} instead of an object")
    parts = [meta]
    if meta.get("format") == "eyepurify-checkpoint":
        from eyepurify.models.files import _from_json

        cfg, extra = _from_json(meta.get("config")), _from_json(meta.get("extra"))
        cfg = cfg if isinstance(cfg, dict) else {}
        extra = extra if isinstance(extra, dict) else {}
        size = cfg.get("size")
        parts = [{"size": list(size) if isinstance(size, tuple) else size, "net": extra.get("net")}]
    for part in parts:
        net = part.get("net")
        if net is not None:
            if not isinstance(net, dict):
                raise _bad_meta(path, "'net' is not an object")
            for k, v in net.items():
                if k in _NET_CHOICES:
                    if v not in _NET_CHOICES[k]:
                        raise _bad_meta(path, f"net.{k} = {_short(v)} (must be one of {', '.join(_NET_CHOICES[k])})")
                    continue
                if k in _NET_LISTS:
                    if not isinstance(v, list) or not 1 <= len(v) <= 16 or not all(
                        isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 4096 for x in v
                    ):
                        raise _bad_meta(path, f"net.{k} = {_short(v)} (must be a list of 1..16 whole numbers in 1..4096)")
                    continue
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                    raise _bad_meta(path, f"net.{k} = {_short(v)} (must be a number ≥ 0)")
                lo, hi = _NET_LIMITS.get(k, (0, 1 << 16))
                if k == "dropout" and not v < 1:
                    raise _bad_meta(path, f"net.dropout = {v} (must be below 1)")
                if k != "dropout" and (not float(v).is_integer() or not lo <= v <= hi):
                    raise _bad_meta(path, f"net.{k} = {v} (must be a whole number in {lo}..{hi})")
        _check_size(path, "size", part.get("size"))
        train = part.get("train")
        if isinstance(train, dict):
            _check_size(path, "train.size", train.get("size"))
        es = part.get("eye_scale")
        if es is not None:
            ok = isinstance(es, dict) and isinstance(es.get("center"), list) and len(es["center"]) == 2
            nums = [es.get("eye_width"), *es["center"]] if ok else []
            ok = ok and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in nums)
            if not ok or not nums[0] > 0:
                raise _bad_meta(path, f"eye_scale is {_short(es)}, not {{size, eye_width > 0, center}}")
            _check_size(path, "eye_scale.size", es.get("size"))
    return meta


def read_model_meta(path: str | os.PathLike[str]) -> dict[str, object]:
    """The JSON metadata of a model file (reads the header only), checked by :func:`check_model_meta`."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"{path}: is a folder, not a model file (pass the .safetensors file)")
    if not path.is_file():
        raise WeightsError(f"{path}: model file not found (pass an existing .safetensors file)")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise WeightsError(f"{path}: cannot read the model file ({e.strerror or e}; check its permissions)") from None
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e}); re-export it") from None
    if raw is None:
        raise WeightsError(f"{path}: no eyepurify metadata in this safetensors file; export it with eyepurify")
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise WeightsError(f"{path}: the model metadata is not valid JSON ({type(e).__name__}: {e}); the file is damaged, re-export it") from None
    return check_model_meta(path, meta)


def load_model(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """(state dict, metadata) of a model file; WeightsError with the fix when unreadable."""
    meta = read_model_meta(path)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
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

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
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from eyepurify.errors import WeightsError
from eyepurify.io import file_mode, fsync_file, temp_file
from eyepurify.models.transformer import UPSAMPLE_MODES
from eyepurify.sample import NUM_CLASSES

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


#: Sane ranges (inclusive) of the architecture numbers the network configs read
#: (:class:`~eyepurify.models.transformer.TransformNetConfig`, :class:`~eyepurify.models.
#: segmentation.SegmentationNetConfig`, :class:`~eyepurify.models.simgan.RefinerConfig`,
#: :class:`~eyepurify.gaze.cnn.GazeCNNConfig`); a file outside them is refused before anything
#: is built. The shipped models use width ≤ 16, 4 residual blocks, depth 3.
NET_LIMITS = {"width": (1, 256), "n_res": (0, 32), "depth": (0, 6), "in_channels": (1, 4),
              "num_classes": (NUM_CLASSES, NUM_CLASSES), "mask_channels": (0, NUM_CLASSES),
              "outer_kernel": (1, 15), "blocks": (0, 32), "filters": (1, 512), "channels": (1, 3),
              "fc": (1, 8192)}
#: architecture fields that are names (their allowed values), lists of channel counts, or a size
_NET_CHOICES = {"upsample": UPSAMPLE_MODES}
_NET_LISTS = ("convs1", "convs2")
_NET_SIZES = ("input_size",)
_NET_FLAGS = ("input_skip",)
#: Channels of a segmentation network's deepest level (width · 2^depth).
MAX_DEEP_CHANNELS = 2048
#: Pixels per side of a training size recorded in a model file.
SIDE_LIMITS = (8, 1024)


def _bad_meta(path: object, what: str) -> WeightsError:
    return WeightsError(f"{path}: {what} in the model metadata; the file is damaged or not an eyepurify model (re-export it)")


def _short(v: object) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:39] + "…"


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_size(path: object, key: str, v: object) -> None:
    if v is None:
        return
    lo, hi = SIDE_LIMITS
    ok = isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) and lo <= x <= hi for x in v)
    if not ok:
        raise _bad_meta(path, f"{key} is {_short(v)}, not [H, W] with {lo}..{hi} pixels per side")


def _check_config(path: object, name: str, net: object) -> None:
    """A network config (``net`` or ``refiner``): every number in its range, every name
    one of its choices, every list of channel counts short and in range."""
    if not isinstance(net, dict):
        raise _bad_meta(path, f"'{name}' is not an object")
    for k, v in net.items():
        if k in _NET_CHOICES:
            if v not in _NET_CHOICES[k]:
                raise _bad_meta(path, f"{name}.{k} = {_short(v)} (must be one of {', '.join(_NET_CHOICES[k])})")
            continue
        if k in _NET_LISTS:
            if not isinstance(v, list) or not 1 <= len(v) <= 16 or not all(
                isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 1024 for x in v
            ):
                raise _bad_meta(path, f"{name}.{k} = {_short(v)} (must be a list of 1..16 whole numbers in 1..1024)")
            continue
        if k in _NET_SIZES:
            _check_size(path, f"{name}.{k}", v)
            continue
        if k in _NET_FLAGS:
            if not isinstance(v, bool):
                raise _bad_meta(path, f"{name}.{k} = {_short(v)} (must be true or false)")
            continue
        if not _number(v) or v < 0:
            raise _bad_meta(path, f"{name}.{k} = {_short(v)} (must be a number ≥ 0)")
        if k == "dropout":
            if not v < 1:
                raise _bad_meta(path, f"{name}.dropout = {v} (must be below 1)")
            continue
        lo, hi = NET_LIMITS.get(k, (0, 1 << 16))
        if not float(v).is_integer() or not lo <= v <= hi:
            raise _bad_meta(path, f"{name}.{k} = {v} (must be a whole number in {lo}..{hi})")
    if net.get("mask_channels") not in (None, 0, NUM_CLASSES):
        raise _bad_meta(path, f"{name}.mask_channels = {net['mask_channels']} (must be 0 or {NUM_CLASSES}, one per label class)")
    if net.get("channels") not in (None, 1, 3):
        raise _bad_meta(path, f"{name}.channels = {net['channels']} (must be 1 or 3)")
    if "depth" in net and int(net.get("width", 12)) * 2 ** int(net["depth"]) > MAX_DEEP_CHANNELS:
        raise _bad_meta(path, f"{name}.width · 2^depth = {int(net.get('width', 12)) * 2 ** int(net['depth'])} "
                        f"(at most {MAX_DEEP_CHANNELS})")


def _check_eye_scale(path: object, es: object) -> None:
    """An ``eye_scale`` entry: a size, an eye width of 1/16 to all of that width, a centre inside it."""
    ok = isinstance(es, dict) and isinstance(es.get("center"), list) and len(es["center"]) == 2
    d: dict[str, Any] = es if isinstance(es, dict) else {}
    nums = [d.get("eye_width"), *d["center"]] if ok else []
    if not (ok and all(_number(x) for x in nums) and nums[0] > 0):
        raise _bad_meta(path, f"eye_scale is {_short(es)}, not {{size, eye_width > 0, center}}")
    assert isinstance(es, dict)
    size = es.get("size")
    if size is None:
        raise _bad_meta(path, f"eye_scale is {_short(es)}, without its size")
    _check_size(path, "eye_scale.size", size)
    h, w = size
    width, cx, cy = nums
    if not max(1.0, w / 16) <= width <= w:
        raise _bad_meta(path, f"eye_scale.eye_width = {_short(width)} (must be {max(1.0, w / 16):g}..{w} px at {h}×{w})")
    if not (0 <= cx <= w and 0 <= cy <= h):
        raise _bad_meta(path, f"eye_scale.center = {_short(es['center'])} (must lie inside {h}×{w})")


def check_model_meta(path: object, meta: object) -> dict[str, object]:
    """``meta`` if its architecture and sizes are usable, else a WeightsError naming the file:
    every number of the ``net`` (or ``refiner``) config in its sane range (:data:`NET_LIMITS`),
    sizes [H, W] within :data:`SIDE_LIMITS`, and an ``eye_scale`` entry complete with its eye
    width and centre inside its size. Checked before anything is built; checkpoint headers
    are checked the same way."""
    if not isinstance(meta, dict):
        raise _bad_meta(path, f"a {type(meta).__name__} instead of an object")
    parts = [meta]
    if meta.get("format") == "eyepurify-checkpoint":
        from eyepurify.models.files import untagged_json

        cfg, extra = untagged_json(meta.get("config")), untagged_json(meta.get("extra"))
        cfg = cfg if isinstance(cfg, dict) else {}
        extra = extra if isinstance(extra, dict) else {}
        size = cfg.get("size")
        parts = [{"size": list(size) if isinstance(size, tuple) else size, "net": extra.get("net")}]
    for part in parts:
        for name in ("net", "refiner"):
            if part.get(name) is not None:
                _check_config(path, name, part[name])
        _check_size(path, "size", part.get("size"))
        train = part.get("train")
        if isinstance(train, dict):
            _check_size(path, "train.size", train.get("size"))
        if part.get("eye_scale") is not None:
            _check_eye_scale(path, part["eye_scale"])
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


def read_model_file(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """(state dict, metadata) of a model file; WeightsError with the fix when unreadable."""
    meta = read_model_meta(path)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise WeightsError(f"{path}: cannot read tensors ({e}); the file is corrupt, re-export it") from None
    return state, meta


def check_state(module: torch.nn.Module, state: dict[str, torch.Tensor], path: object) -> None:
    """WeightsError naming the file and the first bad key unless ``state`` has exactly
    ``module``'s keys and shapes and finite floats (``module`` may live on the meta device:
    nothing is allocated)."""
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
        if state[k].is_floating_point() and not torch.isfinite(state[k]).all():
            raise WeightsError(f"{path}: {k} contains NaN/inf; the model is broken, retrain or re-export")


def load_state_checked(module: torch.nn.Module, state: dict[str, torch.Tensor], path: object) -> None:
    """Strict load with a one-line WeightsError naming the file and the first bad key."""
    check_state(module, state, path)
    module.load_state_dict(state)

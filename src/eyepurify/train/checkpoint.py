"""Training checkpoints: one safetensors file, never pickle.

Tensors (model state, optimizer tensors, torch RNG states) go into the safetensors body;
everything else (step, run config, optimizer hyper-parameters, numpy and Python RNG states,
free-form ``extra``) is JSON in the header's ``"eyepurify"`` metadata entry, readable
without loading the tensors. Writes are atomic (temp file + rename), so an interrupted
save leaves the previous checkpoint intact.

Tensor names: ``model/<key>``, ``optim/<param index>/<key>``, ``rng/torch``,
``rng/generator/<name>``. Restoring model, optimizer, the global torch/numpy/Python RNGs
and any named generators continues a run bit-exactly.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from eyepurify.errors import WeightsError
from eyepurify.io import write_bytes

FORMAT = "eyepurify-checkpoint"
VERSION = 1
METADATA_KEY = "eyepurify"

Generators = dict[str, torch.Generator | np.random.Generator]


def _err(path: object, problem: str, fix: str) -> WeightsError:
    return WeightsError(f"{path}: {problem} ({fix})".replace("\n", " "))


def _to_json(obj: Any) -> Any:
    """JSON-safe copy keeping tuples distinguishable from lists."""
    if isinstance(obj, tuple):
        return {"__tuple__": [_to_json(v) for v in obj]}
    if isinstance(obj, list):
        return [_to_json(v) for v in obj]
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError(f"checkpoint metadata keys must be strings, got {list(obj)[:3]}")
        return {k: _to_json(v) for k, v in obj.items()}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in checkpoint metadata")


def _from_json(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__tuple__"}:
            return tuple(_from_json(v) for v in obj["__tuple__"])
        return {k: _from_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_json(v) for v in obj]
    return obj


@dataclass
class Checkpoint:
    """The contents of a checkpoint file (see the module docstring for the layout)."""

    step: int
    config: dict[str, Any]
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None = None
    rng: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    path: str = ""


def capture_rng(generators: Generators | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, json) snapshot of the global torch/numpy/Python RNGs and named generators."""
    tensors = {"rng/torch": torch.get_rng_state().clone()}
    np_state = np.random.get_state()
    meta: dict[str, Any] = {
        "numpy": [np_state[0], np.asarray(np_state[1]).tolist(), *np_state[2:]],
        "python": random.getstate(),
        "generators": {},
    }
    for name, g in (generators or {}).items():
        if isinstance(g, torch.Generator):
            tensors[f"rng/generator/{name}"] = g.get_state().clone()
            meta["generators"][name] = "torch"
        elif isinstance(g, np.random.Generator):
            meta["generators"][name] = {"numpy": g.bit_generator.state}
        else:
            raise TypeError(f"generator {name!r} is a {type(g).__name__}, not a torch or numpy generator")
    return tensors, meta


def restore_rng(ckpt: Checkpoint, generators: Generators | None = None, global_rng: bool = True) -> None:
    """Set the global RNGs (when ``global_rng``) and the named generators from ``ckpt``."""
    rng = ckpt.rng
    if global_rng:
        torch.set_rng_state(rng["tensors"]["rng/torch"])
        n = rng["numpy"]
        np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), *n[2:]))
        py = rng["python"]
        random.setstate((py[0], tuple(py[1]), py[2]))
    for name, g in (generators or {}).items():
        kind = rng["generators"].get(name)
        if kind is None:
            raise _err(ckpt.path, f"no state for generator {name!r}", "resume with the code that wrote it")
        if isinstance(g, torch.Generator):
            g.set_state(rng["tensors"][f"rng/generator/{name}"])
        else:
            g.bit_generator.state = kind["numpy"]


def _optimizer_split(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        scalars[str(idx)] = {}
        for k, v in entry.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim/{idx}/{k}"] = v.detach().cpu().clone().contiguous()
            else:
                scalars[str(idx)][k] = v
    return tensors, {"state": scalars, "param_groups": state["param_groups"]}


def _optimizer_join(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in meta["state"].items()}
    for name, t in tensors.items():
        if name.startswith("optim/"):
            _, idx, key = name.split("/", 2)
            state.setdefault(int(idx), {})[key] = t
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    *,
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    config: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    generators: Generators | None = None,
) -> None:
    """Write model, optimizer, step, config, RNG states and ``extra`` to ``path`` atomically.

    ``config`` and ``extra`` must be JSON-serialisable (tuples are kept as tuples).
    """
    tensors = {f"model/{k}": v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    meta: dict[str, Any] = {"format": FORMAT, "version": VERSION, "step": int(step)}
    if optimizer is not None:
        opt_tensors, meta["optimizer"] = _optimizer_split(optimizer.state_dict())
        tensors.update(opt_tensors)
    rng_tensors, meta["rng"] = capture_rng(generators)
    tensors.update(rng_tensors)
    meta["config"] = config or {}
    meta["extra"] = extra or {}
    header = json.dumps(_to_json(meta), allow_nan=True)
    write_bytes(Path(path), st_save(tensors, metadata={METADATA_KEY: header}))


def read_checkpoint_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON header of a checkpoint (cheap: tensors are not read)."""
    path = Path(path)
    if not path.is_file():
        raise _err(path, "checkpoint not found", "check the path, or train without --resume")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise _err(path, f"cannot read the checkpoint ({e.strerror or e})", "check its permissions") from None
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _err(path, f"not a readable safetensors file ({e})", "the file is corrupt or truncated; delete it or use an older checkpoint") from None
    if raw is None:
        raise _err(path, "no eyepurify metadata", "this is not an eyepurify checkpoint")
    try:
        meta = _from_json(json.loads(raw))
    except (ValueError, RecursionError) as e:
        raise _err(path, f"metadata is not valid JSON ({e})", "the file is corrupt; use an older checkpoint") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _err(path, "not an eyepurify training checkpoint", "pass a checkpoint written by eyepurify training")
    if meta.get("version") != VERSION:
        raise _err(path, f"checkpoint version {meta.get('version')} is not supported (expected {VERSION})", "use the eyepurify version that wrote it")
    return meta


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint file (tensors on CPU); WeightsError naming the file when unusable."""
    path = Path(path)
    meta = read_checkpoint_meta(path)
    try:
        tensors = st_load(path.read_bytes())
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _err(path, f"cannot read tensors ({e})", "the file is corrupt or truncated; use an older checkpoint") from None
    if "rng/torch" not in tensors:
        raise _err(path, "checkpoint has no RNG state", "the file is incomplete; use an older checkpoint")
    model_state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    opt = _optimizer_join(tensors, meta["optimizer"]) if "optimizer" in meta else None
    rng = dict(meta["rng"])
    rng["tensors"] = {k: v for k, v in tensors.items() if k.startswith("rng/")}
    return Checkpoint(
        step=int(meta["step"]), config=meta.get("config", {}), model_state=model_state,
        optimizer_state=opt, rng=rng, extra=meta.get("extra", {}), path=str(path),
    )


def restore(
    ckpt: Checkpoint,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    generators: Generators | None = None,
    global_rng: bool = True,
) -> None:
    """Load ``ckpt`` into ``model`` (strict, shapes checked), ``optimizer`` and the RNGs."""
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(ckpt.model_state)), sorted(set(ckpt.model_state) - set(own))
    if missing or extra:
        raise _err(ckpt.path, f"weights do not fit the model (missing {missing[:3]}, unexpected {extra[:3]})", "resume with the same model settings")
    for k, v in own.items():
        if v.shape != ckpt.model_state[k].shape:
            raise _err(ckpt.path, f"{k} has shape {tuple(ckpt.model_state[k].shape)}, expected {tuple(v.shape)}", "resume with the same model settings")
    model.load_state_dict(ckpt.model_state)
    if optimizer is not None:
        if ckpt.optimizer_state is None:
            raise _err(ckpt.path, "checkpoint has no optimizer state", "it is an inference-only file; start a new run")
        try:
            optimizer.load_state_dict(ckpt.optimizer_state)
        except (ValueError, KeyError) as e:
            raise _err(ckpt.path, f"optimizer state does not fit ({e})", "resume with the same optimizer settings") from None
    restore_rng(ckpt, generators, global_rng)


class StopOnSignal:
    """Context manager: the first SIGINT/SIGTERM sets ``requested`` (and ``signum``, the
    signal's number) instead of raising.

    The training loop polls ``requested``, writes a checkpoint and stops; the CLI then
    exits 128 + ``signum`` (130 for Ctrl-C, 143 for SIGTERM). A second signal raises
    KeyboardInterrupt as usual. Previous handlers come back on exit. Outside the main
    thread (where handlers cannot be installed) it only provides the flag.
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
        self.signals = signals
        self.requested = False
        self.signum = 0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.signum = signum

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous.clear()

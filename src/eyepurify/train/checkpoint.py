"""Training checkpoints: writing them, restoring a run from one, stopping on a signal.

The file format and its readers live in :mod:`eyepurify.models.files` (re-exported here).
Writes are atomic (temp file + rename), so an interrupted save leaves the previous
checkpoint intact. Restoring model, optimizer, the global torch/numpy/Python RNGs and any
named generators continues a run bit-exactly.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as st_save

from eyepurify.io import write_bytes
from eyepurify.models.files import (  # the file format; re-exported for the trainers
    FORMAT,
    METADATA_KEY,
    VERSION,
    Checkpoint,
    load_checkpoint,
    read_checkpoint_meta,
    tagged_json,
    weights_error,
)

__all__ = [
    "FORMAT", "VERSION", "Checkpoint", "StopOnSignal", "capture_rng", "load_checkpoint",
    "read_checkpoint_meta", "restore", "restore_rng", "save_checkpoint",
]

Generators = dict[str, torch.Generator | np.random.Generator]


def capture_rng(generators: Generators | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, json) snapshot of the global torch/numpy/Python RNGs and named generators."""
    tensors = {"rng/torch": torch.get_rng_state().clone()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # dropout on a GPU draws from its RNG
        tensors["rng/cuda"] = torch.cuda.get_rng_state().clone()
    np_state: tuple[Any, ...] = tuple(np.random.get_state())
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
        if "rng/cuda" in rng["tensors"] and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["tensors"]["rng/cuda"])
        n = rng["numpy"]
        np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), *n[2:]))
        py = rng["python"]
        random.setstate((py[0], tuple(py[1]), py[2]))
    for name, g in (generators or {}).items():
        kind = rng["generators"].get(name)
        if kind is None:
            raise weights_error(ckpt.path, f"no state for generator {name!r}", "resume with the code that wrote it")
        if isinstance(g, torch.Generator):
            g.set_state(rng["tensors"][f"rng/generator/{name}"])
        else:
            g.bit_generator.state = kind["numpy"]


def _optimizer_split(state: dict[str, Any], prefix: str = "optim/") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors named ``<prefix><index>/<key>``, JSON part) of an optimizer state dict."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        scalars[str(idx)] = {}
        for k, v in entry.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{prefix}{idx}/{k}"] = v.detach().cpu().clone().contiguous()
            else:
                scalars[str(idx)][k] = v
    return tensors, {"state": scalars, "param_groups": state["param_groups"]}


def save_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    *,
    step: int,
    optimizer: torch.optim.Optimizer | dict[str, torch.optim.Optimizer] | None = None,
    config: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    generators: Generators | None = None,
    kind: str | None = None,
) -> None:
    """Write model, optimizer, step, config, RNG states and ``extra`` to ``path`` atomically.

    ``optimizer``: one, or several by name (a GAN's two). ``config`` and ``extra`` must be
    JSON-serialisable (tuples are kept as tuples); ``kind``
    is the model's registry kind (:mod:`eyepurify.models.registry`), stored in the header.
    """
    tensors = {f"model/{k}": v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    meta: dict[str, Any] = {"format": FORMAT, "version": VERSION, "step": int(step)}
    if kind is not None:
        meta["kind"] = kind
    if isinstance(optimizer, dict):
        meta["optimizers"] = {}
        for name, opt in optimizer.items():
            opt_tensors, meta["optimizers"][name] = _optimizer_split(opt.state_dict(), f"optims/{name}/")
            tensors.update(opt_tensors)
    elif optimizer is not None:
        opt_tensors, meta["optimizer"] = _optimizer_split(optimizer.state_dict())
        tensors.update(opt_tensors)
    rng_tensors, meta["rng"] = capture_rng(generators)
    tensors.update(rng_tensors)
    meta["config"] = config or {}
    meta["extra"] = extra or {}
    header = json.dumps(tagged_json(meta), allow_nan=True)
    write_bytes(Path(path), st_save(tensors, metadata={METADATA_KEY: header}))


def restore(
    ckpt: Checkpoint,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | dict[str, torch.optim.Optimizer] | None = None,
    generators: Generators | None = None,
    global_rng: bool = True,
) -> None:
    """Load ``ckpt`` into ``model`` (strict, shapes checked), ``optimizer`` (one, or several
    by the names they were saved under) and the RNGs."""
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(ckpt.model_state)), sorted(set(ckpt.model_state) - set(own))
    if missing or extra:
        raise weights_error(ckpt.path, f"weights do not fit the model (missing {missing[:3]}, unexpected {extra[:3]})", "resume with the same model settings")
    for k, v in own.items():
        if v.shape != ckpt.model_state[k].shape:
            raise weights_error(ckpt.path, f"{k} has shape {tuple(ckpt.model_state[k].shape)}, expected {tuple(v.shape)}", "resume with the same model settings")
    model.load_state_dict(ckpt.model_state)
    named = optimizer if isinstance(optimizer, dict) else {} if optimizer is None else {"": optimizer}
    for name, opt in named.items():
        state = ckpt.optimizer_states.get(name) if name else ckpt.optimizer_state
        if state is None:
            raise weights_error(ckpt.path, f"checkpoint has no {name + ' ' if name else ''}optimizer state",
                       "it is an inference-only file; start a new run")
        try:
            opt.load_state_dict(state)
        except (ValueError, KeyError) as e:
            raise weights_error(ckpt.path, f"optimizer state does not fit ({e})", "resume with the same optimizer settings") from None
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

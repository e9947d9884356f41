"""Inference backends: the same networks on torch, ONNX Runtime (fp32) or ONNX Runtime int8.

``accelerate(purifier, "auto")`` swaps a :class:`~eyepurify.purify.Purifier`'s networks
(purifier, gray purifier, segmenter) for faster runners with the same call signature, so
the rest of the pipeline (eye scale, masks, paste-back) is unchanged:

* ``torch``: BatchNorm folded into the convolutions (a copy; outputs equal to float
  rounding, ≤ 1e-5).
* ``onnx``: the folded network exported to ONNX (dynamic batch, height and width) and run on
  ONNX Runtime's CPU provider; outputs within 1e-4 of torch (float32, [0, 1] images; logits
  within 1e-3), tested in ``tests/test_backends.py``.
* ``int8``: that ONNX model statically quantised (QDQ, per-channel weights) with ranges
  calibrated on procedural renders (:mod:`eyepurify.data.render`) at the trained size;
  its cost is measured by ``eyepurify bench throughput`` on paired renders.
* ``openvino``: the same ONNX file compiled by OpenVINO's CPU plugin, float32
  (``pip install eyepurify[openvino]``); outputs within the ONNX tolerances of torch, tested.
* ``bf16``: OpenVINO in bfloat16 where the CPU has it (AVX512-BF16/AMX), else float32; its
  cost is measured by ``eyepurify bench throughput``.
* ``eager``: the networks as loaded (no folding): the reference the others are compared to.
* ``auto``: ``openvino`` when OpenVINO and the exporter are installed, else ``onnx`` when
  onnxruntime is (``pip install eyepurify[fast]``), else ``torch``.

Exported files are data, never code: they are written to :func:`cache_dir` (the
``EYEPURIFY_CACHE_DIR`` environment variable, else ``$XDG_CACHE_HOME/eyepurify``, else
``~/.cache/eyepurify``), named by the SHA-256 of the network's weights, so a changed model
is never run from a stale file; nothing is downloaded.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eyepurify.errors import EyepurifyError

if TYPE_CHECKING:  # torch is imported where a network is touched: choosing a backend (the CLI) stays light
    from torch import nn

BACKENDS = ("auto", "torch", "onnx", "int8", "openvino", "bf16", "eager")
#: bump when the exported graph changes, so old cache files are not reused
EXPORT_VERSION = 2
INSTALL_HINT = "install eyepurify[fast] (pip install 'eyepurify[fast]') or use --backend torch"
OPENVINO_HINT = "install eyepurify[openvino] (pip install 'eyepurify[openvino]') or use --backend onnx"


def onnx_available() -> bool:
    """True when onnxruntime and the ONNX exporter's packages (onnx, onnxscript) are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx", "onnxscript"))


def exporter_available() -> bool:
    """True when the ONNX exporter's packages (onnx, onnxscript) are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript"))


def openvino_available() -> bool:
    """True when OpenVINO and the ONNX exporter are installed."""
    return importlib.util.find_spec("openvino") is not None and exporter_available()


def resolve_backend(name: str, placement: Any = None) -> str:
    """``auto`` → ``openvino``, else ``onnx``, else ``torch``, whichever is installed first;
    a backend whose packages are missing → EyepurifyError with the install hint; an unknown
    name → EyepurifyError. Off the CPU (``placement``, default the process's:
    :mod:`eyepurify.device`), or in another precision or compiled, ``auto`` is ``torch``, and
    the CPU-only backends are refused."""
    if name not in BACKENDS:
        raise EyepurifyError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    from eyepurify.device import current

    placement = placement or current()
    if not placement.trivial:
        if name in ("onnx", "int8", "openvino", "bf16"):
            raise EyepurifyError(f"--backend {name} runs on the CPU in float32 only: use --backend torch (or auto) "
                                 f"with --device {placement.device.type}, or --device cpu --precision fp32")
        return "eager" if name == "eager" else "torch"
    if name == "auto":
        return "openvino" if openvino_available() else "onnx" if onnx_available() else "torch"
    if name in ("onnx", "int8") and not onnx_available():
        raise EyepurifyError(f"--backend {name} needs onnxruntime, onnx and onnxscript: {INSTALL_HINT}")
    if name in ("openvino", "bf16") and not openvino_available():
        raise EyepurifyError(f"--backend {name} needs openvino, onnx and onnxscript: {OPENVINO_HINT}")
    return name


def cache_dir() -> Path:
    """Where exported models are kept: $EYEPURIFY_CACHE_DIR, else $XDG_CACHE_HOME/eyepurify,
    else ~/.cache/eyepurify (created on first use)."""
    env = os.environ.get("EYEPURIFY_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "eyepurify"


def state_digest(module: nn.Module) -> str:
    """Hex SHA-256 of a module's state dict (names, shapes, dtypes and bytes): the cache key."""
    import torch

    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# ---------------------------------------------------------------- BatchNorm folding


def _last_conv(m: nn.Module) -> nn.Module | None:
    """The convolution ``m`` ends in (itself, or the last child of a Sequential), else None."""
    from torch import nn

    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        return m
    if isinstance(m, nn.Sequential) and len(m):
        return _last_conv(m[-1])
    return None


def _fold_into(conv: nn.Module, bn: nn.BatchNorm2d) -> None:
    """Fold eval-mode ``bn`` into ``conv``'s weight and bias in place."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    transpose = isinstance(conv, nn.ConvTranspose2d)
    w, b = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                bn.weight, bn.bias, transpose=transpose)
    conv.weight, conv.bias = w, b  # type: ignore[assignment]


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """An eval-mode copy of ``module`` where every BatchNorm2d that directly follows a
    convolution in a Sequential (also one ending a nested Sequential) is folded into it and
    replaced by Identity; dropout layers become Identity too. Same outputs in eval mode."""
    from torch import nn

    m = copy.deepcopy(module).eval()

    def walk(seq: nn.Module) -> None:
        for child in seq.children():
            walk(child)
        if isinstance(seq, nn.Sequential):
            for i in range(1, len(seq)):
                conv = _last_conv(seq[i - 1])
                if isinstance(seq[i], nn.BatchNorm2d) and conv is not None:
                    _fold_into(conv, seq[i])  # type: ignore[arg-type]
                    seq[i] = nn.Identity()
            for i in range(len(seq)):
                if isinstance(seq[i], (nn.Dropout, nn.Dropout2d)):
                    seq[i] = nn.Identity()

    walk(m)
    for p in m.parameters():
        p.requires_grad_(False)
    return m


# ---------------------------------------------------------------- accelerating a Purifier


def accelerate(purifier: Any, backend: str = "auto", threads: int | None = None) -> str:
    """Swap ``purifier``'s networks (and its :class:`~eyepurify.segment.Segmenter`'s, when it
    has one) for ``backend`` runners in place; returns the backend used (``auto`` resolved).
    A segmenter given as a plain function is left as it is."""
    placement = getattr(purifier, "placement", None)
    name = resolve_backend(backend, placement)
    if name == "eager":
        return name
    from eyepurify.backends.runners import wrap_transform
    from eyepurify.device import place

    for entry in purifier.nets:
        entry.net = place(wrap_transform(entry.net, name, threads), placement)
    seg = purifier.segmenter
    if seg is not None and hasattr(seg, "model"):
        accelerate_segmenter(seg, name, threads)
    return name


def accelerate_segmenter(segmenter: Any, backend: str = "auto", threads: int | None = None) -> str:
    """Swap a :class:`~eyepurify.segment.Segmenter`'s network for a ``backend`` runner in place."""
    placement = getattr(segmenter, "placement", None)
    name = resolve_backend(backend, placement)
    if name == "eager":
        return name
    from eyepurify.backends.runners import wrap_segmentation
    from eyepurify.device import place

    segmenter.model = place(wrap_segmentation(segmenter.model, name, threads), placement)
    return name

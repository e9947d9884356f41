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

import importlib.util
from typing import TYPE_CHECKING, Any, Protocol, cast

from eyepurify.errors import EyepurifyError

if TYPE_CHECKING:  # torch is imported where a network is touched: choosing a backend (the CLI) stays light
    from torch import Tensor

    from eyepurify.models.segmentation import SegmentationNet, SegmentationNetConfig
    from eyepurify.models.transformer import TransformNet, TransformNetConfig
    from eyepurify.purify import Purifier
    from eyepurify.segment import Segmenter

__all__ = ["BACKENDS", "EXPORT_VERSION", "SegmentationRunner", "TransformRunner", "accelerate", "accelerate_segmenter",
           "cache_dir", "fold_batchnorm", "resolve_backend", "state_digest", "wrap_segmentation", "wrap_transform"]

class TransformRunner(Protocol):
    """A purification network on some backend: ``runner(image N×3×H×W in [0, 1], mask
    N×K×H×W or None) → N×3×H×W in [0, 1]`` (a TransformNet, or a runner standing in for one)."""

    @property
    def config(self) -> TransformNetConfig: ...

    def __call__(self, image: Tensor, mask: Tensor | None = None) -> Tensor: ...
    def eval(self) -> Any: ...


class SegmentationRunner(Protocol):
    """A segmentation network on some backend: ``runner(image N×3×H×W in [0, 1]) → logits N×C×H×W``."""

    @property
    def config(self) -> SegmentationNetConfig: ...

    def __call__(self, x: Tensor) -> Tensor: ...
    def eval(self) -> Any: ...


BACKENDS = ("auto", "torch", "onnx", "int8", "openvino", "bf16", "eager")
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


# ---------------------------------------------------------------- accelerating a Purifier


def accelerate(purifier: Purifier, backend: str = "auto", threads: int | None = None) -> str:
    """Swap ``purifier``'s networks (and its :class:`~eyepurify.segment.Segmenter`'s, when it
    has one) for ``backend`` runners in place; returns the backend used (``auto`` resolved).
    A segmenter given as a plain function is left as it is."""
    placement = getattr(purifier, "placement", None)
    name = resolve_backend(backend, placement)
    if name == "eager":
        return name
    from eyepurify.device import place

    for entry in purifier.nets:
        entry.net = place(wrap_transform(entry.net, name, threads), placement)
    seg = purifier.segmenter
    for one in getattr(seg, "segmenters", [seg]):  # ScaledSegmenters: each of its Segmenters
        if hasattr(one, "model"):  # a Segmenter (this floor does not import the one above it)
            accelerate_segmenter(cast("Segmenter", one), name, threads)
    return name


def accelerate_segmenter(segmenter: Segmenter, backend: str = "auto", threads: int | None = None) -> str:
    """Swap a :class:`~eyepurify.segment.Segmenter`'s network for a ``backend`` runner in place."""
    placement = getattr(segmenter, "placement", None)
    name = resolve_backend(backend, placement)
    if name == "eager":
        return name
    from eyepurify.device import place

    segmenter.model = place(wrap_segmentation(segmenter.model, name, threads), placement)
    return name


def wrap_transform(net: TransformNet | TransformRunner, backend: str, threads: int | None = None,
                   size: tuple[int, int] | None = None) -> TransformRunner:
    """``net`` (a TransformNet, or a runner of one) on ``backend`` ("torch": BatchNorm folded;
    "onnx", "int8": ONNX Runtime; "openvino", "bf16": OpenVINO)."""
    return _wrap(net, "purifier", backend, threads, size)


def wrap_segmentation(net: SegmentationNet | SegmentationRunner, backend: str, threads: int | None = None,
                      size: tuple[int, int] | None = None) -> SegmentationRunner:
    """``net`` (a SegmentationNet, or a runner of one) on ``backend``."""
    return _wrap(net, "segmenter", backend, threads, size)


def _wrap(net: Any, kind: str, backend: str, threads: int | None, size: tuple[int, int] | None) -> Any:
    from eyepurify.backends import runners
    from eyepurify.models.segmentation import SegmentationNet
    from eyepurify.models.transformer import TransformNet

    torch_net = runners.unwrap(net)
    want = TransformNet if kind == "purifier" else SegmentationNet
    if not isinstance(torch_net, want):
        raise TypeError(f"expected a {want.__name__}, got {type(torch_net).__name__}")
    if backend == "torch":
        return runners.fold_batchnorm(torch_net)
    if backend in ("openvino", "bf16"):
        ov = runners.OpenVinoTransformNet if kind == "purifier" else runners.OpenVinoSegmentationNet
        return ov(torch_net, backend, threads, size)
    onnx = runners.OnnxTransformNet if kind == "purifier" else runners.OnnxSegmentationNet
    return onnx(torch_net, "int8" if backend == "int8" else "fp32", threads, size)


def __getattr__(name: str) -> Any:
    """The export cache's pieces, loaded with torch only when asked for
    (:func:`~eyepurify.backends.runners.cache_dir`, ``EXPORT_VERSION``, ``fold_batchnorm``,
    ``state_digest``)."""
    if name in ("EXPORT_VERSION", "cache_dir", "fold_batchnorm", "state_digest"):
        from eyepurify.backends import runners

        return getattr(runners, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

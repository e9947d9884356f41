"""The runners: the same networks on torch (BatchNorm folded), ONNX Runtime and OpenVINO,
with the torch networks' call signatures (see :mod:`eyepurify.backends`).

:class:`OnnxTransformNet` stands in for a :class:`~eyepurify.models.transformer.TransformNet`
(``net(image N×3×H×W, mask N×K×H×W) → N×3×H×W`` in [0, 1]) and
:class:`OnnxSegmentationNet` for a :class:`~eyepurify.models.segmentation.SegmentationNet`
(``net(image N×3×H×W) → logits N×C×H×W``): padding and cropping stay in torch, exactly as
the networks' own ``forward`` does them; the exported graph holds ``core`` only.

OpenVINO (:class:`OpenVinoTransformNet`, :class:`OpenVinoSegmentationNet`) compiles the same
exported fp32 ONNX file with its CPU plugin: ``precision`` "f32" keeps float32 arithmetic
(outputs within the ONNX tolerances of torch, tested); "bf16" lets OpenVINO run in bfloat16
where the CPU has it (AVX512-BF16 / AMX; on other CPUs it stays f32), faster and less exact:
its cost is measured by ``eyepurify bench throughput``. The cache holds only the ONNX file;
OpenVINO compiles it in memory at start-up (a second or so) and writes nothing. No
telemetry is sent: the runtime has none (the ``openvino-telemetry`` dependency serves
OpenVINO's conversion tools only).

Exported files are named by :func:`state_digest` of the network (BatchNorm folded by
:func:`fold_batchnorm`) and kept in :func:`cache_dir`.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import functools
import hashlib
import io
import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from eyepurify.errors import DataError, EyepurifyError, one_line, printable
from eyepurify.io import file_mode, read_state_file, regular_file_sha256, temp_file, write_json
from eyepurify.models.transformer import TransformNet, network_input, pad_to_multiple

#: bump when the exported graph changes, so old cache files are not reused
EXPORT_VERSION = 2


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


def _last_conv(m: nn.Module) -> nn.Conv2d | nn.ConvTranspose2d | None:
    """The convolution ``m`` ends in (itself, or the last child of a Sequential), else None."""
    from torch import nn

    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        return m
    if isinstance(m, nn.Sequential) and len(m):
        return _last_conv(m[-1])
    return None


def _fold_into(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    """Fold eval-mode ``bn`` into ``conv``'s weight and bias in place."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    transpose = isinstance(conv, nn.ConvTranspose2d)
    assert bn.running_mean is not None and bn.running_var is not None
    w, b = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                bn.weight, bn.bias, transpose=transpose)
    conv.weight, conv.bias = w, b


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


#: Renders the int8 ranges are calibrated on (per network), and their seed.
CALIBRATION_IMAGES = 64
CALIBRATION_SEED = 1234
CALIBRATION_PERCENTILE = 99.99
#: The size calibration renders are made at when a network records none (the shipped models' size).
CALIBRATION_SIZE = (72, 120)


class _Core(nn.Module):
    """``net.core`` as a module of its own (what is exported), its output channels-last
    (N×H×W×C: the per-pixel arg-max and the uint8 conversion that follow read it contiguously)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.core(x).permute(0, 2, 3, 1)  # type: ignore[operator]


def _quiet() -> contextlib.ExitStack:
    """Silence the exporter's and quantiser's progress output and warnings."""
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "root"):
        lg = logging.getLogger(name)
        old = lg.level
        lg.setLevel(logging.ERROR)
        stack.callback(lg.setLevel, old)
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    return stack


def _cache_error(path: Path, e: OSError) -> EyepurifyError:
    fix = "free some space" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "check its permissions"
    return EyepurifyError(f"{path}: cannot write the exported model cache ({e.strerror or e}): {fix}, "
                          "or set EYEPURIFY_CACHE_DIR to another folder")


def _atomic_target(path: Path) -> Iterator[str]:
    """Yield a temp path next to ``path``; rename it over ``path`` when the block succeeds. A
    write that fails (a full disk) is an EyepurifyError naming ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = temp_file(path.parent, ".onnx")
        os.close(fd)
    except OSError as e:
        raise _cache_error(path, e) from None
    try:
        yield tmp
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as e:
        raise _cache_error(path, e) from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


atomic_target = contextlib.contextmanager(_atomic_target)


def export_onnx(net: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Export ``net.core`` (BatchNorm folded) to ``path`` with dynamic batch, height and width."""
    from torch.export import Dim

    core = _Core(fold_batchnorm(net)).eval()
    with atomic_target(path) as tmp, _quiet():
        prog = torch.onnx.export(
            core, (example,), None, input_names=["x"], output_names=["y"], dynamo=True,
            dynamic_shapes={"x": {0: Dim("n"), 2: Dim("h"), 3: Dim("w")}}, optimize=True, verbose=False,
        )
        assert prog is not None
        prog.save(tmp, external_data=False)  # one self-contained file (weights inside)
    return path


def _calibration_inputs(net: nn.Module, size: tuple[int, int], n: int = CALIBRATION_IMAGES) -> list[np.ndarray]:
    """Padded float32 1×C×H×W core inputs from paired renders (wild and indoor) at ``size``:
    the first ``n`` (the same first ones whatever ``n``)."""
    from eyepurify.data.render import render_pair, sample_params
    from eyepurify.tensors import images_to_tensor, labels_to_tensor, one_hot

    rng = np.random.default_rng(CALIBRATION_SEED)
    out = []
    for _ in range(max(1, n // 2)):
        a, b = render_pair(sample_params(rng), size, rng=rng)
        for s in (a, b):
            x = images_to_tensor(s.image)
            if isinstance(net, TransformNet):
                k = net.config.mask_channels
                if k:
                    assert s.labels is not None
                    x = torch.cat([x, one_hot(labels_to_tensor(s.labels), k)], 1)
                x = pad_to_multiple(x)
            else:
                x = net.pad_input(x)  # type: ignore[operator]
            out.append(x.numpy().astype(np.float32))
    return out


def quantize_int8(fp32: Path, path: Path, inputs: list[np.ndarray]) -> Path:
    """Static int8 quantisation of ``fp32`` (QDQ; uint8 activations, per-channel int8
    weights; activation ranges: the CALIBRATION_PERCENTILE of each tensor over ``inputs``)
    written to ``path``. Percentile ranges (ignoring the rarest 0.01 % of values) keep the
    purifier's SSIM about 2.5× closer to fp32 than min/max ranges (bench throughput)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.it, None)
            return None if x is None else {"x": x}

    with atomic_target(path) as tmp, _quiet():
        pre = tmp + ".pre.onnx"
        try:
            quant_pre_process(str(fp32), pre, skip_symbolic_shape=True)
            quantize_static(pre, tmp, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.Percentile,
                            extra_options={"CalibPercentile": CALIBRATION_PERCENTILE})
        finally:
            if os.path.exists(pre):
                os.unlink(pre)
    return path


#: Largest :meth:`_OnnxNet.disagreement` accepted: float32 runners compute the network
#: (measured ≤ 1e-5); int8 and bf16 approximate it (a different network gives about 1).
EXACT_TOLERANCE = 1e-3
LOSSY_TOLERANCE = 0.2
#: The record beside a cache entry (``<entry>.json``) is at most this many bytes.
RECORD_LIMIT = 4096


def record_path(path: Path) -> Path:
    """The record of cache entry ``path``: what it was made from and its own SHA-256."""
    return path.with_name(path.name + ".json")


def _record(path: Path, made_from: str) -> None:
    """Write ``path``'s record: the SHA-256 of what it was made from (the weights, or the fp32
    export for int8) and of the export itself."""
    digest = regular_file_sha256(path)
    try:
        write_json(record_path(path), {"format": "eyepurify-export", "version": EXPORT_VERSION,
                                       "made_from_sha256": made_from, "export_sha256": digest})
    except OSError as e:
        raise _cache_error(record_path(path), e) from None


def cache_entry_problem(path: Path, made_from: str) -> str:
    """Why the cache entry ``path`` may not be used for a network whose weights (or fp32
    export) hash to ``made_from`` ("" when it may): it and its record must exist and agree
    with each other and with ``made_from``."""
    if not os.path.lexists(path):
        return "missing"
    if not os.path.lexists(record_path(path)):
        return "no record of what it was made from"
    try:
        raw = read_state_file(record_path(path), RECORD_LIMIT, "an export record", "it is re-made")
        rec = json.loads(raw.decode("utf-8"))
    except (DataError, ValueError, RecursionError) as e:
        return f"its record is unreadable ({one_line(str(e), 200)})"
    if not isinstance(rec, dict) or rec.get("version") != EXPORT_VERSION or rec.get("made_from_sha256") != made_from:
        return "its record is for another network or version"
    digest = regular_file_sha256(path)
    if digest is None or rec.get("export_sha256") != digest:
        return "its SHA-256 differs from its record (changed or replaced since it was made)"
    return ""


def _checked(path: Path, made_from: str) -> bool:
    """True when cache entry ``path`` may be used; a present but unusable one is reported on
    stderr (it is then re-made, never used)."""
    problem = cache_entry_problem(path, made_from)
    if problem and problem != "missing":
        print(f"eyepurify: warning: {path}: cached export not used ({problem}); re-exporting", file=sys.stderr)
    return not problem


#: How the first-use line names each backend ("preparing the OpenVINO purifier model (once)").
BACKEND_NAMES = {"openvino": "OpenVINO", "bf16": "OpenVINO bf16", "fp32": "ONNX Runtime", "onnx": "ONNX Runtime",
                 "int8": "ONNX Runtime int8"}


def _preparing(kind: str, backend: str) -> None:
    """Say on stderr why the first run of a model on a backend takes seconds longer."""
    print(f"eyepurify: preparing the {BACKEND_NAMES.get(backend, backend)} {kind} model (once; cached in "
          f"{printable(str(cache_dir()))})", file=sys.stderr, flush=True)


def model_file(net: nn.Module, variant: str, size: tuple[int, int] | None = None, backend: str | None = None) -> Path:
    """The cached ONNX file of ``net`` (``variant`` "fp32" or "int8"), exported (and
    quantised) on first use, said on stderr (``backend`` names it there). Every use checks
    the entry against its record (:func:`cache_entry_problem`); one that does not match is
    reported and re-made."""
    kind = "purifier" if isinstance(net, TransformNet) else "segmenter"
    weights = state_digest(net)
    base = cache_dir() / f"{kind}-{weights[:20]}-v{EXPORT_VERSION}"
    fp32 = Path(f"{base}-fp32.onnx")
    if not _checked(fp32, weights):
        _preparing(kind, backend or variant)
        calib = _calibration_inputs(net, size or CALIBRATION_SIZE, 2)  # an example input: only its shape counts
        export_onnx(net, torch.from_numpy(np.concatenate(calib[:2])), fp32)
        _record(fp32, weights)
    if variant == "fp32":
        return fp32
    q = Path(f"{base}-int8-c{CALIBRATION_IMAGES}s{CALIBRATION_SEED}p{CALIBRATION_PERCENTILE:g}.onnx")
    made_from = regular_file_sha256(fp32) or ""
    if not _checked(q, made_from):
        _preparing(kind, "int8")
        quantize_int8(fp32, q, _calibration_inputs(net, size or CALIBRATION_SIZE))
        _record(q, made_from)
    return q


def session(path: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for ``path`` (all graph optimisations; ``threads`` intra-op
    threads, default torch's thread count; no busy-waiting, so decode/encode threads get the CPU)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or torch.get_num_threads())
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:  # a damaged cache file: name it and the fix
        raise EyepurifyError(f"{path}: cannot load the exported model ({type(e).__name__}); delete it to re-export") from None


def _discard(path: Path) -> None:
    for p in (path, record_path(path)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


class _OnnxNet:
    """Shared plumbing: the torch net's config, ``eval()``, and the session, checked against
    the torch network on the probe eye (:mod:`eyepurify.models.probe`) before any use."""

    #: the cache variant it runs ("fp32" or "int8")
    file_variant = "fp32"

    def __init__(self, net: nn.Module, variant: str, threads: int | None, size: tuple[int, int] | None) -> None:
        self.config: Any = net.config
        self.torch_net = net.eval()
        self.variant = variant
        self.file_variant = "int8" if variant == "int8" else "fp32"
        self._load(size, threads)

    def _open(self, threads: int | None) -> None:
        self.session = session(self.path, threads)

    def disagreement(self) -> float:
        """RMS of (runner − torch) over the standard deviation of torch's output (at least
        0.01) on the probe eye: 0 for the same network, about 1 or more for another."""
        from eyepurify.models.probe import run_probe

        kind = "purifier" if isinstance(self.torch_net, TransformNet) else "segmentation"
        want = run_probe(self.torch_net, kind).float()
        got = run_probe(self, kind).float()
        if not torch.isfinite(got).all():
            return float("inf")
        return float((got - want).pow(2).mean().sqrt() / max(float(want.std()), 0.01))

    def _load(self, size: tuple[int, int] | None, threads: int | None) -> None:
        """Open the cached export; one that does not compute the torch network (another
        network's file with a forged record) is reported, re-made once, and never used."""
        tolerance = EXACT_TOLERANCE if self.variant in ("fp32", "openvino") else LOSSY_TOLERANCE
        for attempt in range(2):
            self.path = model_file(self.torch_net, self.file_variant, size, backend=self.variant)
            self._open(threads)
            err = self.disagreement()
            if err <= tolerance:
                return
            if attempt == 0:
                print(f"eyepurify: warning: {self.path}: cached export does not compute this network "
                      f"(error {err:.3g} on a probe image); re-exporting", file=sys.stderr)
                _discard(self.path)
                if self.file_variant == "int8":
                    _discard(Path(str(self.path).split("-int8-")[0] + "-fp32.onnx"))
        raise EyepurifyError(f"{self.path}: the exported network differs from {type(self.torch_net).__name__} "
                             f"(error {err:.3g} on a probe image); use --backend torch")

    def eval(self) -> _OnnxNet:
        return self

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """N×C×H×W → N×C'×H×W (a channels-last view of the session's N×H×W×C' output)."""
        arr = np.ascontiguousarray(x.detach().float().numpy())
        return torch.from_numpy(self.session.run(None, {"x": arr})[0]).permute(0, 3, 1, 2)


class OnnxTransformNet(_OnnxNet):
    """image N×3×H×W in [0, 1] (+ mask N×K×H×W) → N×3×H×W in [0, 1], on ONNX Runtime."""

    def __call__(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = network_input(image, mask, self.config.mask_channels)
        h, w = x.shape[-2:]
        return self._run(pad_to_multiple(x))[..., :h, :w]


class OnnxSegmentationNet(_OnnxNet):
    """image N×3×H×W in [0, 1] → logits N×C×H×W, on ONNX Runtime."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected N×{self.config.in_channels}×H×W input, got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        return self._run(self.torch_net.pad_input(x))[..., :h, :w]  # type: ignore[operator]


def unwrap(net: Any) -> nn.Module:
    """The torch network behind a runner (ONNX Runtime or OpenVINO), or ``net``."""
    return getattr(net, "torch_net", net)


# ---------------------------------------------------------------- OpenVINO


PRECISIONS = {"openvino": "f32", "bf16": "bf16"}


@functools.cache
def openvino_core() -> Any:
    """The process's one ``openvino.Core``, kept until exit.

    Each Core's CPU plugin installs an alternate signal stack on the calling thread and puts
    back the one it found when the Core dies. Two Cores that die in the order they were made
    leave the main thread on an unmapped stack, so the next signal (Ctrl-C, SIGTERM) crashes
    the process (exit 139) instead of stopping it cleanly. One Core never does that.
    """
    import openvino as ov

    return ov.Core()


def compile_model(path: Any, precision: str, threads: int | None) -> Any:
    """An OpenVINO infer request for the ONNX file ``path`` on the CPU (``threads``: default torch's)."""
    config = {"INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()), "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_PRECISION_HINT": precision}
    try:
        return openvino_core().compile_model(str(path), "CPU", config).create_infer_request()
    except Exception as e:  # a damaged cache file: name it and the fix
        raise EyepurifyError(f"{path}: OpenVINO cannot compile the exported model ({type(e).__name__}); "
                             "delete it to re-export") from None


class _OpenVinoRun:
    """Mixin for the ONNX Runtime runners: the same file compiled by OpenVINO; only the
    session and ``_run`` differ (padding, cropping and checks are the ONNX runners')."""

    variant: str
    path: Any

    def __init__(self, net: nn.Module, backend: str, threads: int | None, size: tuple[int, int] | None) -> None:
        self.config: Any = net.config
        self.torch_net = net.eval()
        self.variant = backend
        self.file_variant = "fp32"
        self._load(size, threads)  # type: ignore[attr-defined]

    def _open(self, threads: int | None) -> None:
        self.request = compile_model(self.path, PRECISIONS[self.variant], threads)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """N×C×H×W → N×C'×H×W (a channels-last view of the model's N×H×W×C' output, a copy)."""
        arr = np.ascontiguousarray(x.detach().float().numpy())
        out = self.request.infer({0: arr})[0]
        return torch.from_numpy(np.array(out, copy=True)).permute(0, 3, 1, 2)


class OpenVinoTransformNet(_OpenVinoRun, OnnxTransformNet):
    """image N×3×H×W in [0, 1] (+ mask N×K×H×W) → N×3×H×W in [0, 1], on OpenVINO."""


class OpenVinoSegmentationNet(_OpenVinoRun, OnnxSegmentationNet):
    """image N×3×H×W in [0, 1] → logits N×C×H×W, on OpenVINO."""

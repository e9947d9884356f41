"""Where networks run: the one place that decides the device and the precision.

``resolve_device("auto")`` is CUDA when available, else Apple's MPS, else the CPU;
``cuda``, ``cuda:N`` and ``mps`` are checked, and one that is missing is a
:class:`DeviceError` (one line naming the fix, exit 2). A :class:`Placement` bundles the
device with the autocast precision (``fp32``, ``bf16``, ``fp16``; ``auto``: bf16 on GPUs
that have it, else fp16 on CUDA, fp32 on the CPU and MPS), ``torch.compile`` and the memory
format (channels-last on CUDA). Everything that runs a network asks a placement:

* :meth:`Placement.module` moves a network there (channels-last, compiled when asked);
* :meth:`Placement.to` moves a batch there (pinned host memory, non-blocking copies on CUDA);
* :meth:`Placement.autocast` is the autocast context of its precision (a no-op for fp32);
* :meth:`Placement.grad_scaler` is the fp16 gradient scaler (disabled otherwise);
* :meth:`Placement.generator` is a seeded generator on the device;
* :func:`place` wraps an inference network so that it takes and returns CPU tensors (the
  call signature of the ONNX runners), running on the device in between.

The command line sets the process's placement once (:func:`configure`, from ``--device``,
``--precision``, ``--compile``, before anything is written); API calls given ``device=None``
use it (``auto`` when nothing was configured). On the CPU in fp32 without ``--compile``
nothing is wrapped or copied: the code path is the one from before this module.

Nothing here calls ``.cuda()``: every move goes through ``.to(device)``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from eyepurify.errors import EyepurifyError

if TYPE_CHECKING:  # torch is imported when a device is resolved: ``eyepurify --help`` stays light
    import torch
    from torch import nn

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CUDA_FIX = ("install a CUDA build of torch (pip install torch --index-url https://download.pytorch.org/whl/cu124) "
            "on a machine with an NVIDIA GPU and driver, or use --device cpu")


class DeviceError(EyepurifyError):
    """A device or precision that this machine cannot provide (exit 2)."""


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _local_rank() -> int | None:
    """``torchrun``'s LOCAL_RANK when several processes run, else None."""
    try:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        return None
    return None


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The torch device ``spec`` names (None or "auto": CUDA, else MPS, else CPU; under
    ``torchrun`` on CUDA each process takes the GPU of its LOCAL_RANK). ``cuda``,
    ``cuda:N`` and ``mps`` are checked: missing → :class:`DeviceError` naming the fix.
    ``meta`` is accepted (tests: shapes and devices without data)."""
    import torch

    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    if text == "auto":
        if cuda_available():
            text = "cuda"
        elif mps_available():
            return torch.device("mps")
        else:
            return torch.device("cpu")
    if text in ("cpu", "meta"):
        return torch.device(text)
    if text == "mps":
        if not mps_available():
            raise DeviceError("--device mps: Apple's MPS is not available here (it needs macOS 12.3+ on Apple "
                              "silicon and a torch build with MPS); use --device cpu")
        return torch.device("mps")
    if text == "cuda" or text.startswith("cuda:"):
        index: int | None = None
        if text != "cuda":
            try:
                index = int(text.split(":", 1)[1])
            except ValueError:
                raise DeviceError(f"--device {spec!r}: write cuda:N with N a GPU number (cuda:0), or auto") from None
            if index < 0:
                raise DeviceError(f"--device {spec!r}: the GPU number must be ≥ 0")
        if not cuda_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise DeviceError(f"--device {text}: {why}; {CUDA_FIX}")
        count = torch.cuda.device_count()
        if index is None:
            local = _local_rank()
            index = local if local is not None and local < count else torch.cuda.current_device()
        if index >= count:
            raise DeviceError(f"--device {text}: only {count} GPU(s) visible (cuda:0 .. cuda:{count - 1}); "
                              "pick one of those or check CUDA_VISIBLE_DEVICES")
        return torch.device("cuda", index)
    raise DeviceError(f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N or mps")


def bf16_supported(device: torch.device) -> bool:
    """True when autocast in bfloat16 runs natively on ``device`` (Ampere and newer GPUs; the CPU always)."""
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type in ("cpu", "meta")


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """``precision`` ("auto"/None: bf16 on CUDA GPUs that have it, else fp16 on CUDA, fp32
    on the CPU and MPS) checked against ``device``."""
    p = (precision or "auto").lower()
    if p not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    if p == "auto":
        if device.type == "cuda":
            return "bf16" if bf16_supported(device) else "fp16"
        return "fp32"
    if p == "bf16" and not bf16_supported(device):
        raise DeviceError(f"--precision bf16: {device} has no bfloat16 support; use --precision fp16 or fp32")
    if p == "fp16" and device.type == "cpu":
        raise DeviceError("--precision fp16 runs on GPUs only; on the CPU use --precision bf16 or fp32")
    return p


def compiler_problem() -> str:
    """Why ``torch.compile`` cannot work here ("" when it can): on the CPU its code
    generator needs a C++ compiler."""
    if not any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c):
        return "torch.compile needs a C++ compiler on the CPU (install g++, or leave out --compile)"
    return ""


@dataclass(frozen=True)
class Placement:
    """A device, an autocast precision and the options that go with them (see the module docstring)."""

    device: torch.device
    precision: str = "fp32"
    compile: bool = False

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype (None for fp32)."""
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def trivial(self) -> bool:
        """True when networks run as they are: CPU, fp32, not compiled (nothing to wrap or copy)."""
        return self.device.type == "cpu" and self.precision == "fp32" and not self.compile

    @property
    def channels_last(self) -> bool:
        """Channels-last memory on CUDA (tensor cores read NHWC convolutions natively)."""
        return self.cuda

    def describe(self) -> str:
        """e.g. "cuda:0 (NVIDIA H100 80GB HBM3), bf16" or "cpu, fp32"."""
        import torch

        name = f" ({torch.cuda.get_device_name(self.device)})" if self.cuda else ""
        return f"{self.device}{name}, {self.precision}" + (", compiled" if self.compile else "")

    def to(self, x: Any) -> Any:
        """``x`` (a tensor, or a tuple/list/dict of them and None) on the device: CPU tensors
        are pinned and copied without blocking on CUDA; already there: returned as is."""
        import torch

        if isinstance(x, torch.Tensor):
            if x.device == self.device:
                return x
            if self.cuda and x.device.type == "cpu":
                return x.pin_memory().to(self.device, non_blocking=True)
            return x.to(self.device)
        if isinstance(x, (tuple, list)):
            return type(x)(self.to(v) for v in x) if not hasattr(x, "_fields") else type(x)(*(self.to(v) for v in x))
        if isinstance(x, dict):
            return {k: self.to(v) for k, v in x.items()}
        if x is not None and hasattr(x, "__dataclass_fields__"):
            return replace(x, **{k: self.to(getattr(x, k)) for k in x.__dataclass_fields__})
        return x

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Autocast to the precision's dtype on the device (a no-op context for fp32)."""
        import torch

        if self.dtype is None or self.device.type == "meta":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """The gradient scaler of this precision: enabled for fp16 only (bf16 and fp32 need none)."""
        import torch

        return torch.amp.GradScaler(self.device.type if self.device.type != "meta" else "cpu",
                                    enabled=self.precision == "fp16")

    def generator(self, seed: int) -> torch.Generator:
        """A generator on the device seeded with ``seed``."""
        import torch

        return torch.Generator(device=self.device).manual_seed(seed)

    def module(self, net: nn.Module) -> nn.Module:
        """``net`` moved to the device (in place), channels-last on CUDA; compiled when asked
        (the compiled wrapper shares the parameters)."""
        import torch

        if self.device.type != "cpu" or any(p.device.type != "cpu" for p in net.parameters()):
            net.to(self.device)
        if self.cuda:  # fp32 means fp32 (equal to the CPU within the ONNX tolerances), not TF32
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = self.precision != "fp32"
        if self.channels_last:
            net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if self.compile:
            problem = compiler_problem()
            if problem and self.device.type == "cpu":
                raise DeviceError(problem)
            return torch.compile(net)  # type: ignore[return-value]
        return net

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """A 4-D image batch on the device, channels-last on CUDA."""
        import torch

        x = self.to(x)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.ndim == 4 else x

    def synchronize(self) -> None:
        """Wait for the device's queued work (timings)."""
        import torch

        if self.cuda:
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()



def fork_rng() -> contextlib.AbstractContextManager[Any]:
    """``torch.random.fork_rng`` over the CPU and every CUDA device in use (the RNGs dropout draws from)."""
    import torch

    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    return torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda else [])


def make_placement(device: str | torch.device | Placement | None = None, precision: str | None = None,
                   compile: bool | None = None) -> Placement:
    """A :class:`Placement`; ``device`` None: the process's (see :func:`configure`), with
    ``precision``/``compile`` overriding it when given."""
    if isinstance(device, Placement):
        return device
    if device is None:
        base = current()
        if precision is None and compile is None:
            return base
        return Placement(base.device, resolve_precision(precision or base.precision, base.device),
                         base.compile if compile is None else compile)
    dev = resolve_device(device)
    return Placement(dev, resolve_precision(precision, dev), bool(compile))


_CURRENT: Placement | None = None
#: GPUs per ``--engine ray`` worker (None: 1 when the placement is CUDA, else 0)
_GPUS_PER_WORKER: float | None = None


def current() -> Placement:
    """The process's placement: what :func:`configure` set, else ``auto`` (resolved once)."""
    global _CURRENT
    if _CURRENT is None:
        _CURRENT = make_placement("auto")
    return _CURRENT


def configure(device: str | None = "auto", precision: str | None = "auto", compile: bool = False,
              gpus_per_worker: float | None = None) -> Placement:
    """Set (and return) the process's placement; DeviceError for a device or precision this
    machine lacks. The command line calls it once, before any output is written."""
    global _CURRENT, _GPUS_PER_WORKER
    place_ = make_placement(device or "auto", precision, compile)
    if compile and place_.device.type == "cpu" and compiler_problem():
        raise DeviceError(compiler_problem())
    if gpus_per_worker is not None and gpus_per_worker < 0:
        raise DeviceError("--gpus-per-worker must be ≥ 0")
    _CURRENT, _GPUS_PER_WORKER = place_, gpus_per_worker
    return place_


def reset() -> None:
    """Forget the configured placement (tests)."""
    global _CURRENT, _GPUS_PER_WORKER
    _CURRENT, _GPUS_PER_WORKER = None, None


@contextlib.contextmanager
def using(placement: Placement) -> Iterator[Placement]:
    """The process's placement is ``placement`` inside the block."""
    global _CURRENT
    old = _CURRENT
    _CURRENT = placement
    try:
        yield placement
    finally:
        _CURRENT = old


def gpus_per_worker(placement: Placement | None = None) -> float:
    """GPUs each ``--engine ray`` worker asks for: ``--gpus-per-worker``, else 1 when
    ``placement`` (default this process's) is on CUDA, else 0."""
    if _GPUS_PER_WORKER is not None:
        return _GPUS_PER_WORKER
    return 1.0 if (current() if placement is None else placement).cuda else 0.0


def worker_gpus(settings: dict[str, Any]) -> float:
    """GPUs a Ray worker that runs with ``settings`` (:func:`worker_settings`) asks for."""
    if settings.get("device") != "cuda":
        return 0.0
    return _GPUS_PER_WORKER or 1.0


def worker_settings(placement: Placement | None = None) -> dict[str, Any]:
    """What a Ray worker needs to place its networks as ``placement`` (default this
    process's) does (plain values: ``device``, ``precision``, ``compile``): a worker given
    GPUs uses the one Ray assigned it (``cuda``)."""
    p = current() if placement is None else placement
    gpus = gpus_per_worker(p)
    device = "cuda" if gpus > 0 else "cpu" if p.device.type != "mps" else "mps"
    return {"device": device, "precision": p.precision if device != "cpu" or p.precision != "fp16" else "fp32",
            "compile": p.compile}


def cli_args(placement: Placement | None = None) -> list[str]:
    """The command-line options that give a child ``eyepurify`` process this placement."""
    p = current() if placement is None else placement
    return ["--device", str(p.device), "--precision", p.precision] + (["--compile"] if p.compile else [])


def ddp_backend(device: torch.device | None = None) -> str:
    """The process-group backend for data-parallel training on ``device``: NCCL on CUDA, gloo otherwise."""
    dev = current().device if device is None else device
    return "nccl" if dev.type == "cuda" else "gloo"


class DeviceNet:
    """An inference network on a device with the call signature of the CPU one: CPU
    tensors in (moved there, channels-last on CUDA), float32 CPU tensors out; run under the
    placement's autocast. ``torch_net`` is the network (on the device)."""

    def __init__(self, net: nn.Module, placement: Placement) -> None:
        self.torch_net = net.eval()
        self.placement = placement
        self._run = placement.module(self.torch_net)

    def __getattr__(self, name: str) -> Any:  # config, pad_input, core, ...: the network's
        if name in ("torch_net", "placement", "_run"):
            raise AttributeError(name)
        return getattr(self.torch_net, name)

    def eval(self) -> DeviceNet:
        return self

    def __call__(self, *args: Any) -> Any:
        import torch

        p = self.placement
        moved = [p.input(a) if isinstance(a, torch.Tensor) else a for a in args]
        with torch.inference_mode(), p.autocast():
            y = self._run(*moved)
        return y.float().cpu() if p.device.type != "meta" else y.float()


def place(net: Any, placement: Placement | None = None) -> Any:
    """``net`` to run on ``placement`` (default: the process's): unchanged when the
    placement is trivial (CPU, fp32, not compiled), else a :class:`DeviceNet`. A runner that
    is not a torch module (ONNX Runtime, OpenVINO) is returned as it is."""
    from torch import nn

    p = current() if placement is None else placement
    inner = net.torch_net if isinstance(net, DeviceNet) else net
    if p.trivial or not isinstance(inner, nn.Module):
        if isinstance(net, DeviceNet) and p.trivial:
            inner.to("cpu")
            return inner
        return net
    return DeviceNet(inner, p)

"""OpenVINO runners: the exported fp32 ONNX networks (:mod:`eyepurify.backends.runners`)
compiled by OpenVINO's CPU plugin, with the torch networks' call signatures.

``precision`` "f32" keeps float32 arithmetic (outputs within the ONNX tolerances of torch,
tested); "bf16" lets OpenVINO run in bfloat16 where the CPU has it (AVX512-BF16 / AMX; on
other CPUs it stays f32), faster and less exact: its cost is measured by
``eyepurify bench throughput``. The cache holds only the ONNX file; OpenVINO compiles it in
memory at start-up (a second or so) and writes nothing. No telemetry is sent: the runtime
has none (the ``openvino-telemetry`` dependency serves OpenVINO's conversion tools only).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from eyepurify.backends.runners import OnnxSegmentationNet, OnnxTransformNet
from eyepurify.errors import EyepurifyError

PRECISIONS = {"openvino": "f32", "bf16": "bf16"}


def compile_model(path: Any, precision: str, threads: int | None) -> Any:
    """An OpenVINO infer request for the ONNX file ``path`` on the CPU (``threads``: default torch's)."""
    import openvino as ov

    config = {"INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()), "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_PRECISION_HINT": precision}
    try:
        return ov.Core().compile_model(str(path), "CPU", config).create_infer_request()
    except Exception as e:  # a damaged cache file: name it and the fix
        raise EyepurifyError(f"{path}: OpenVINO cannot compile the exported model ({type(e).__name__}); "
                             "delete it to re-export") from None


class _OpenVinoRun:
    """Mixin for the ONNX Runtime runners: the same file compiled by OpenVINO; only the
    session and ``_run`` differ (padding, cropping and checks are the ONNX runners')."""

    variant: str
    path: Any

    def __init__(self, net: nn.Module, backend: str, threads: int | None, size: tuple[int, int] | None) -> None:
        self.config = net.config  # type: ignore[assignment]
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

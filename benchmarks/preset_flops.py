"""FLOPs and inference speed of candidate fast presets at 72×120 (docs/training.md, "Fast models").

FLOPs: torch.utils.flop_counter (2 per multiply-add), one image. Speed: BatchNorm folded
(the torch backend), batch 32, median of 5 passes on torch's threads; noisy on a shared
machine, so compare the rows of one run only.

    OMP_NUM_THREADS=2 python benchmarks/preset_flops.py
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from eyepurify.backends import fold_batchnorm
from eyepurify.models.segmentation import SegmentationNet, SegmentationNetConfig
from eyepurify.models.transformer import TransformNet, TransformNetConfig

PURIFIERS = {
    "small (shipped)": TransformNetConfig(16, 4, 0.1, 4, 9),
    "w8 r2 k5 (fast)": TransformNetConfig(8, 2, 0.0, 4, 5),
    "w8 r4 k5": TransformNetConfig(8, 4, 0.0, 4, 5),
    "w8 r2 k9": TransformNetConfig(8, 2, 0.0, 4, 9),
    "w10 r2 k5": TransformNetConfig(10, 2, 0.0, 4, 5),
    "w12 r2 k5": TransformNetConfig(12, 2, 0.0, 4, 5),
    "w8 r3 k3": TransformNetConfig(8, 3, 0.0, 4, 3),
}
SEGMENTERS = {
    "w12 d3 (shipped)": SegmentationNetConfig(12, 3),
    "w6 d3 (fast)": SegmentationNetConfig(6, 3),
    "w8 d3": SegmentationNetConfig(8, 3),
    "w6 d4": SegmentationNetConfig(6, 4),
    "w4 d3": SegmentationNetConfig(4, 3),
}


def gflop(net: torch.nn.Module, *args: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        net(*(a[:1] for a in args))
    return fc.get_total_flops() / 1e9


def rate(net: torch.nn.Module, *args: torch.Tensor, repeats: int = 5) -> float:
    net = fold_batchnorm(net)
    with torch.inference_mode():
        net(*args)
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            net(*args)
            ts.append(time.perf_counter() - t)
    return args[0].shape[0] / statistics.median(ts)


def main() -> None:
    x, m = torch.rand(32, 3, 72, 120), torch.zeros(32, 4, 72, 120)
    print(f"threads {torch.get_num_threads()}\n| network | GFLOP/image | images/s | parameters |\n|---|---|---|---|")
    for name, cfg in PURIFIERS.items():
        n = TransformNet(cfg).eval()
        print(f"| purifier {name} | {gflop(n, x, m):.3f} | {rate(n, x, m):.0f} | {sum(p.numel() for p in n.parameters()):,} |")
    for name, cfg in SEGMENTERS.items():
        n = SegmentationNet(cfg).eval()
        print(f"| segmenter {name} | {gflop(n, x):.3f} | {rate(n, x):.0f} | {sum(p.numel() for p in n.parameters()):,} |")


if __name__ == "__main__":
    main()

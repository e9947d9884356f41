"""Forward+backward time of the loss-network backbones on eye-crop sizes (CPU).

Usage: python benchmarks/backbone_speed.py [--batch 4] [--threads 1] [--repeats 5]

For each backbone and input size it times ``features(x, layers)`` for every layer the loss
uses (METHOD.md §7: content conv3_2, conv4_2; styles conv1_1…conv5_3) plus a backward pass
to the input, and prints the median and minimum over ``--repeats`` runs after one warm-up run (the
minimum is the steadier number on a shared machine; ms/image is median / batch).
VGG-19 uses seeded random weights (same cost as ImageNet weights; none are available here).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from eyepurify.models.backbones import Backbone, VGG19Backbone, create_backbone

LOSS_LAYERS = (
    "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
    "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_3",
)  # fmt: skip
SIZES = ((72, 120), (144, 192))


def time_forward_backward(net: Backbone, x: torch.Tensor, repeats: int) -> list[float]:
    """Seconds per forward+backward of ``net.features`` at every loss layer, ``repeats`` times
    after one warm-up. ``x``: N×3×H×W in [0, 1]."""
    times: list[float] = []
    for i in range(repeats + 1):
        xi = x.detach().clone().requires_grad_(True)
        start = time.perf_counter()
        feats = net.features(xi, LOSS_LAYERS)
        sum(f.square().mean() for f in feats.values()).backward()
        if i:
            times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    nets: dict[str, Backbone] = {
        "lite0": create_backbone("lite0"),
        "test_tiny": create_backbone("test_tiny"),
    }
    nets["vgg19 (random weights)"] = VGG19Backbone(seed=args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, {args.repeats} runs"
    )
    print(f"{'backbone':<24}{'H×W':>9}{'median s':>10}{'min s':>8}{'ms/image':>10}")
    for h, w in SIZES:
        x = torch.rand(args.batch, 3, h, w, generator=gen)
        for name, net in nets.items():
            times = time_forward_backward(net, x, args.repeats)
            median = statistics.median(times)
            print(
                f"{name:<24}{f'{h}×{w}':>9}{median:>10.3f}{min(times):>8.3f}"
                f"{1000 * median / args.batch:>10.1f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

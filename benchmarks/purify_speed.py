"""Feed-forward inference speed: ours vs the Johnson network, measured side by side in one run.

Prints images/s at 36×60 (batched) and ms/image at 256×256 (batch 1) for each network, and
the ratio ours/Johnson at equal width (shipped: small vs johnson_small; paper width:
eyepurify vs johnson). Weights do not change the speed; random init is used so the script
runs anywhere.

    OMP_NUM_THREADS=2 python benchmarks/purify_speed.py [--repeats 5] [--nets small eyepurify johnson]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from eyepurify.models.transformer import create_transform_net


def _time(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--nets", nargs="+", default=["small", "johnson_small", "eyepurify", "johnson"])
    args = ap.parse_args()
    torch.set_flush_denormal(True)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, repeats {args.repeats} (median)")
    results = {}
    for name in args.nets:
        net = create_transform_net(name).eval()
        k = net.config.mask_channels

        def run(n: int, h: int, w: int, net=net, k=k):  # type: ignore[no-untyped-def]
            x = torch.rand(n, 3, h, w)
            m = torch.rand(n, k, h, w) if k else None

            def go():  # type: ignore[no-untyped-def]
                with torch.inference_mode():
                    return net(x, m)

            return go

        small = _time(run(args.batch, 36, 60), args.repeats)
        big = _time(run(1, 256, 256), args.repeats)
        results[name] = (args.batch / small, 1000 * big)
        params = sum(p.numel() for p in net.parameters())
        print(f"{name:10s} params {params/1e6:5.2f}M  36×60 batch {args.batch}: {args.batch/small:8.1f} images/s   256×256: {1000*big:7.1f} ms/image")
    # ours vs the Johnson network of the same width (shipped pair, then paper-width pair)
    for ours, theirs in (("small", "johnson_small"), ("eyepurify", "johnson")):
        if ours in results and theirs in results:
            (a, b), (c, d) = results[ours], results[theirs]
            print(f"{ours} vs {theirs}: {a / c:.2f}× the images/s at 36×60, {d / b:.2f}× as fast at 256×256")


if __name__ == "__main__":
    main()

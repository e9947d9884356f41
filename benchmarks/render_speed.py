"""Renderer throughput: images/s for the indoor and wild domains at 36×60 and 72×120.

    python benchmarks/render_speed.py [--n 300] [--repeats 3]

Each figure is the best of ``--repeats`` passes over the same ``--n`` parameter draws
(one process, one thread; ``render`` = geometry, texture, lighting, labels, landmarks;
drawing the parameters is timed separately). The 1-minute load average is printed
because the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from eyepurify.data.render import render, sample_params


def images_per_second(fn, items, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for it in items:
            fn(it)
        best = min(best, time.perf_counter() - t)
    return len(items) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    seeds = list(range(args.n))
    sampling = images_per_second(lambda i: sample_params(np.random.default_rng([args.seed, i])), seeds, args.repeats)
    params = [sample_params(rng) for _ in range(args.n)]
    print(f"load average (1 min): {os.getloadavg()[0]:.2f}; {args.n} draws, best of {args.repeats}")
    print(f"sample_params: {sampling:8.0f} draws/s")
    for size in [(36, 60), (72, 120)]:
        for domain in ("indoor", "wild"):
            ips = images_per_second(lambda p, s=size, d=domain: render(p, s, d), params, args.repeats)
            print(f"render {domain:6s} {size[0]:3d}x{size[1]:<3d}: {ips:8.0f} images/s")


if __name__ == "__main__":
    main()

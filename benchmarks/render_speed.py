"""Renderer throughput: images/s for the indoor and wild (v1 and v2) domains at 36×60 and 72×120.

    python benchmarks/render_speed.py [--n 300] [--repeats 3] [--cli-n 100] [--no-pool]

Each figure is the best of ``--repeats`` passes over the same ``--n`` parameter draws
(one process; set OMP_NUM_THREADS=1 for one thread). ``render`` renders draw by draw,
``render_batch`` hands all draws over at once (same bytes; per-pixel layers of several
draws evaluated together); both include geometry, texture, lighting, labels and landmarks, and
drawing the parameters is timed separately. The wild domain is timed in both profiles
(``profile="v1"``, the API default, and ``"v2"``, the CLI default), interleaved in one run.
``cli`` is ``eyepurify render --domain both --wild-profile v1|v2`` writing PNG + mask + JSON
per image to a temporary folder (images = 2 per draw, wall time, one pass). Render figures use process CPU time (equal to wall time on an idle
machine with one thread, steadier on a shared one). The 1-minute load average is printed
because the machine may be shared: compare figures from one run only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time

import numpy as np

from eyepurify.cli import main as cli_main
from eyepurify.data.render import render, render_batch, sample_params


def best_seconds(fn, repeats: int, clock=time.process_time) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = clock()
        fn()
        best = min(best, clock() - t)
    return best


def _render_chunk(job: tuple) -> int:  # type: ignore[type-arg]
    params, size, domain, profile = job
    return len(render_batch(params, size, domain, profile=profile))


def pool_rate(params: list, size: tuple[int, int], domain: str, workers: int, repeats: int,  # type: ignore[type-arg]
              profile: str = "v1") -> float:
    """images/s (wall clock) of ``workers`` processes each rendering a share with render_batch."""
    from concurrent.futures import ProcessPoolExecutor

    chunks = [(params[i::workers], size, domain, profile) for i in range(workers)]
    with ProcessPoolExecutor(workers) as ex:
        list(ex.map(_render_chunk, chunks))  # start the workers
        dt = best_seconds(lambda: list(ex.map(_render_chunk, chunks)), repeats, clock=time.perf_counter)
    return len(params) / dt


def cli_seconds(n: int, profile: str = "v2") -> float:
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        t = time.perf_counter()
        code = cli_main(["render", "--n", str(n), "--out", out, "--domain", "both", "--wild-profile", profile])
        dt = time.perf_counter() - t
    if code != 0:
        raise SystemExit(f"eyepurify render exited with {code}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cli-n", type=int, default=100, help="draws for the CLI figure (0 = skip)")
    ap.add_argument("--no-pool", action="store_true", help="skip the one-process-per-core figures")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    seeds = list(range(args.n))
    sampling = args.n / best_seconds(
        lambda: [sample_params(np.random.default_rng([args.seed, i])) for i in seeds], args.repeats)
    params = [sample_params(rng) for _ in range(args.n)]
    print(f"load average (1 min): {os.getloadavg()[0]:.2f}; {args.n} draws, best of {args.repeats}")
    print(f"sample_params: {sampling:8.0f} draws/s")
    for size in [(36, 60), (72, 120)]:
        for domain, profile in (("indoor", "v1"), ("wild", "v1"), ("wild", "v2")):
            one = args.n / best_seconds(
                lambda s=size, d=domain, pr=profile: [render(p, s, d, profile=pr) for p in params], args.repeats)
            many = args.n / best_seconds(
                lambda s=size, d=domain, pr=profile: render_batch(params, s, d, profile=pr), args.repeats)
            name = domain if domain == "indoor" else f"{domain} {profile}"
            line = f"{name:9s} {size[0]:3d}x{size[1]:<3d}: render {one:6.0f}  render_batch {many:6.0f}"
            if not args.no_pool:
                pool = pool_rate(params, size, domain, os.cpu_count() or 1, args.repeats, profile)
                line += f"  render_batch × {os.cpu_count()} processes {pool:6.0f}"
            print(line + " images/s", flush=True)
    if args.cli_n > 0:
        for profile in ("v1", "v2"):
            rate = 2 * args.cli_n / cli_seconds(args.cli_n, profile)
            print(f"cli (eyepurify render --domain both --wild-profile {profile}, 36x60, PNG+mask+JSON): "
                  f"{rate:6.0f} images/s")


if __name__ == "__main__":
    main()

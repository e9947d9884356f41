"""CPU cost of the device layer (issue 21): ``eyepurify purify`` over the same MPIIGaze-size
patches, alternating the code before it (OLD_SRC) and this tree, in fresh processes.

    python benchmarks/device_overhead.py OLD_SRC [--n 500] [--rounds 3] [--backend torch]

Prints the median seconds of each and new/old (< 1: faster)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NEW_SRC = str(Path(__file__).resolve().parents[1] / "src")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("old_src")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    sys.path.insert(0, NEW_SRC)
    from eyepurify.bench.throughput import write_inputs

    work = Path(tempfile.mkdtemp(prefix="device-overhead-"))
    folder = write_inputs(work / "in", (36, 60), a.n, 0)
    times: dict[str, list[float]] = {"old": [], "new": []}
    for r in range(a.rounds):
        for name, src in (("old", a.old_src), ("new", NEW_SRC)) if r % 2 == 0 else (("new", NEW_SRC), ("old", a.old_src)):
            out = work / f"out_{name}_{r}"
            env = {**os.environ, "PYTHONPATH": src}
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "eyepurify", "purify", str(folder), "--out", str(out), "--batch",
                            str(a.batch), "--backend", a.backend], env=env, check=True, capture_output=True)
            times[name].append(time.perf_counter() - t)
    old, new = statistics.median(times["old"]), statistics.median(times["new"])
    same = all((work / "out_old_0" / p.name).read_bytes() == p.read_bytes() for p in (work / "out_new_0").glob("*.png"))
    print(f"{a.n} patches 36x60, --backend {a.backend}, {a.rounds} rounds, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"old: {old:.2f} s ({a.n / old:.0f} patches/s) {[round(t, 2) for t in times['old']]}")
    print(f"new: {new:.2f} s ({a.n / new:.0f} patches/s) {[round(t, 2) for t in times['new']]}")
    print(f"new/old time: {new / old:.3f}; outputs byte-identical: {same}")


if __name__ == "__main__":
    main()

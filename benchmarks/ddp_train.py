"""Training speed: one process with 2 threads vs 2 torchrun (gloo) processes with 1 thread each.

Runs the shipped recipes (purifier: `small` net, lite0 loss network, batch 4 at 72×120;
segmenter: `default` U-Net, batch 16 at 72×120, strong augmentation) for a few steps each way,
side by side in one run, and reports steps/s from the runs' own ``log.jsonl`` clocks
(after ``--warmup`` steps, so start-up and data loading are left out):

- ``1 process, 2 threads``: today's command;
- ``1 process, 2 threads, 2 micro-batches``: the same maths as the 2-process run;
- ``2 processes × 1 thread`` (``torchrun --standalone --nproc_per_node 2``).

    python benchmarks/ddp_train.py --content runs/data/train/wild --style runs/data/train/indoor \
        --out benchmarks/results/ddp

Writes ``ddp.json`` and ``ddp.md`` under ``--out``; run folders go to ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _steps_per_s(run: Path, warmup: int) -> float:
    times = [json.loads(line)["time"] for line in (run / "log.jsonl").read_text().splitlines()]
    dts = [b - a for a, b in zip(times[warmup:], times[warmup + 1 :], strict=False)]
    return 1.0 / statistics.median(dts)


def _launch(args: list[str], processes: int, threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    base = [sys.executable, "-m"]
    if processes > 1:
        base += ["torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), "-m"]
    t = time.perf_counter()
    subprocess.run([*base, "eyepurify", *args], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--content", required=True, help="wild renders (content)")
    p.add_argument("--style", required=True, help="indoor renders (style)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--work", type=Path, default=Path("runs/ddp_bench"))
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--content-limit", type=int, default=400)
    p.add_argument("--repeats", type=int, default=2, help="interleaved runs per setting (median reported)")
    a = p.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    a.work.mkdir(parents=True)
    settings = [("1 process, 2 threads", 1, 2, 1), ("1 process, 2 threads, 2 micro-batches", 1, 2, 2),
                ("2 processes × 1 thread", 2, 1, 2)]
    jobs = {
        "purifier (small, lite0, batch 4, 72×120)": lambda out, m: [
            "train", "--content", a.content, "--style", a.style, "--net", "small", "--backbone", "lite0", "--beta", "10",
            "--batch", "4", "--steps", str(a.steps), "--content-limit", str(a.content_limit), "--micro-batches", str(m),
            "--val-every", "100000", "--sample-every", "100000", "--checkpoint-every", "100000", "--out", str(out)],
        "segmenter (default, batch 16, 72×120)": lambda out, m: [
            "train-segmenter", a.content, "--batch", "16", "--steps", str(a.steps), "--micro-batches", str(m),
            "--val-every", "100000", "--checkpoint-every", "100000", "--no-progress", "--out", str(out)],
    }
    res: dict[str, object] = {"steps": a.steps, "warmup": a.warmup, "load_before": os.getloadavg()[0], "rows": []}
    runs = 0
    for job, make in jobs.items():
        rates: dict[str, list[float]] = {name: [] for name, *_ in settings}
        for _ in range(a.repeats):  # interleaved, so a burst of load hits every setting alike
            for name, procs, threads, micro in settings:
                out = a.work / f"{runs}"
                runs += 1
                wall = _launch(make(out, micro), procs, threads)
                rates[name].append(_steps_per_s(out, a.warmup))
                print(f"{job} | {name}: {rates[name][-1]:.2f} steps/s (wall {wall:.0f} s)", file=sys.stderr)
        for name, procs, threads, micro in settings:
            res["rows"].append({"job": job, "setting": name, "processes": procs, "threads": threads,  # type: ignore[union-attr]
                                "micro_batches": micro, "steps_per_s": statistics.median(rates[name]),
                                "runs": rates[name]})
    res["load_after"] = os.getloadavg()[0]
    lines = [f"Steps/s after {a.warmup} warm-up steps of {a.steps} (median step time from each run's log.jsonl; "
             f"median of {a.repeats} interleaved runs), "
             f"load average {res['load_before']:.1f} before, {res['load_after']:.1f} after.", "",
             "| job | setting | steps/s | runs | × 1 process |", "|---|---|---|---|---|"]
    for job in jobs:
        rows = [r for r in res["rows"] if r["job"] == job]  # type: ignore[union-attr]
        for r in rows:
            each = ", ".join(f"{v:.2f}" for v in r["runs"])
            lines.append(f"| {job} | {r['setting']} | {r['steps_per_s']:.2f} | {each} | {r['steps_per_s'] / rows[0]['steps_per_s']:.2f}× |")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "ddp.json").write_text(json.dumps(res, indent=2) + "\n")
    (a.out / "ddp.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

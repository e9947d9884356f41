"""Speed (paper Table 1): ours vs Johnson vs Gatys, side by side in one run, plus throughput and memory.

Feed-forward rows time ``net(x[, mask])`` on a float 1×3×S×S tensor (inference mode, batch 1);
weights do not change the speed, so the presets run with their initial weights, the shipped
purifier with its trained ones. "ours + segmenter" times ``Purifier.purify_arrays`` on a
uint8 image without masks: the shipped segmenter predicts them (at its 72×120 working size,
logits resized back) and the net runs on the result, uint8 ↔ float conversions included.
Gatys is projected L-BFGS with the lite0 loss network (plain perceptual loss, init =
content): the median wall time of one iteration × 400 (the paper's iteration count).
Repeats are interleaved (repeat r runs every method and size before r + 1, the method order
rotated by one each repeat), medians reported; per-repeat ratios give the spread.
Peak memory is measured per method and size in a fresh subprocess (``python -m
eyepurify.bench.speed --probe``): the RSS high-water mark (VmHWM; ru_maxrss would carry
the parent's peak across fork + exec) after one warm-up and one timed run, i.e. the whole process (Python, torch, weights, input and activations). The RSS high-water mark
just before those runs (after a 32×32 run that faults in the kernels and libraries, and
after building the model and input) is reported too; the difference is what running at
that size added (activations, workspaces, for Gatys the gradients and L-BFGS history).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GATYS_ITERATIONS = 400
PAPER_SECONDS = {  # Titan X, the paper's Table 1 (256², 512², 1024²)
    "ours": (0.015, 0.048, 0.211),
    "johnson": (0.023, 0.082, 0.351),
    "gatys": (12.69, 45.88, 171.55),
}
PAPER_SIZES = (256, 512, 1024)

# method key -> (label, kind)
METHODS: dict[str, str] = {
    "ours": "ours: shipped purifier net (small, 0.37M), masks given",
    "ours_seg": "ours + segmenter: shipped segmenter predicts masks, then the net",
    "ours_openvino": "ours on OpenVINO (fp32; --backend openvino), masks given",
    "ours_fast": "ours, fast distilled net (--model fast; width 8, 2 res. blocks, 5×5 outer), masks given",
    "ours_fast_openvino": "ours, fast distilled net on OpenVINO, masks given",
    "eyepurify": "ours at the paper's width: 'eyepurify' preset (32), masks given",
    "johnson": "Johnson: 'johnson' preset (width 32, 5 res. blocks)",
    "johnson_small": "Johnson small: 'johnson_small' preset (width 16; the trained baseline's architecture)",
    "gatys": f"Gatys: projected L-BFGS, lite0, s/iteration × {GATYS_ITERATIONS}",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default="256,512,1024", help="square sizes S (S×S images), comma-separated")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per method and size (median reported)")
    p.add_argument("--gatys-iters", type=int, default=3, help="L-BFGS iterations timed per Gatys repeat")
    p.add_argument("--batches", default="1,16,64", help="batch sizes for the 36×60 throughput")
    p.add_argument("--threads", type=int, default=1, help="torch threads (also for the memory subprocesses)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--seed", type=int, default=0, help="seed of the test images")
    p.add_argument("--methods", default=None, help=f"comma-separated subset of: {', '.join(METHODS)} (default: all)")


# ---------------------------------------------------------------- building the timed calls


def make_call(method: str, h: int, w: int, batch: int = 1, gatys_iters: int = 3, seed: int = 0) -> Callable[[], float]:
    """A function that runs ``method`` once on a batch of h×w inputs and returns the seconds of
    one image (feed-forward: the whole call / batch; Gatys: median s per L-BFGS iteration × 400)."""
    import numpy as np
    import torch

    from eyepurify.device import current
    from eyepurify.models.transformer import create_transform_net
    from eyepurify.purify import Purifier

    placement = current()  # --device / --precision: off the CPU the inputs live there, the clock waits for it
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, h, w, generator=gen)
    if method == "gatys":
        from eyepurify.models.backbones import create_backbone
        from eyepurify.optimize import optimize_image

        backbone = create_backbone("lite0")
        style = torch.rand(1, 3, h, w, generator=gen)

        def gatys() -> float:
            _, log = optimize_image(x[:1].contiguous(), style, backbone, method="gatys", iters=gatys_iters,
                                    init="content", show_progress=False, device=placement)
            return float(statistics.median(it["seconds"] for it in log.iterations)) * GATYS_ITERATIONS

        return gatys
    if method == "ours_seg":
        p = Purifier.from_pretrained(None, batch_size=max(batch, 1))
        rng = np.random.default_rng(seed)
        ims = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(batch)]

        def seg() -> float:
            t = time.perf_counter()
            p.purify_arrays(ims)
            return (time.perf_counter() - t) / batch

        return seg
    if method.startswith("ours_fast") or method in ("ours", "ours_openvino"):
        p = Purifier.from_pretrained("fast" if method.startswith("ours_fast") else None, segmenter=None)
        if method.endswith("openvino"):
            from eyepurify.backends import accelerate

            accelerate(p, "openvino", threads=torch.get_num_threads())
        net = p.net
    else:
        net = create_transform_net(method).eval()
    k = net.config.mask_channels
    mask = None
    if k:
        lab = torch.randint(0, k, (batch, h, w), generator=gen)
        # contiguous NCHW like x, so every net-only row runs in the same memory format (the
        # Purifier's uint8 path yields channels-last tensors, faster on this CPU: see docs/evaluation.md)
        mask = torch.nn.functional.one_hot(lab, k).permute(0, 3, 1, 2).float().contiguous()
    if not placement.trivial:  # the network alone on the device (no host copies timed), as the paper's GPU rows
        from eyepurify.device import DeviceNet

        net = placement.module(getattr(net, "torch_net", net))  # type: ignore[arg-type,assignment]
        x, mask = placement.input(x), None if mask is None else placement.input(mask)
        assert not isinstance(net, DeviceNet)

    def ff() -> float:
        with torch.inference_mode(), placement.autocast():
            placement.synchronize()
            t = time.perf_counter()
            net(x, mask)
            placement.synchronize()
            return (time.perf_counter() - t) / batch

    return ff


def parameters(method: str) -> int | None:
    from eyepurify.models.transformer import create_transform_net

    names = {"ours": "small", "ours_seg": "small", "ours_openvino": "small", "ours_fast": "fast",
             "ours_fast_openvino": "fast", "eyepurify": "eyepurify", "johnson": "johnson", "johnson_small": "johnson_small"}
    if method not in names:
        return None
    return sum(p.numel() for p in create_transform_net(names[method]).parameters())


# ---------------------------------------------------------------- memory probe (subprocess)


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def probe(method: str, h: int, w: int, threads: int, gatys_iters: int) -> dict[str, Any]:
    """Run inside a fresh process: build ``method``, record the RSS high-water mark, run it
    twice (warm-up + timed), return the peaks in MiB."""
    import torch

    from eyepurify.models.backbones.base import flush_denormals

    torch.set_num_threads(threads)
    with flush_denormals():
        make_call(method, 32, 32, gatys_iters=1)()  # load kernels and libraries into the baseline
        call = make_call(method, h, w, gatys_iters=min(gatys_iters, 1))
        before = _status_kb("VmHWM")
        call()
        if method != "gatys":  # Gatys: one call = the initial evaluation + 1 iteration
            call()
    # VmHWM, not ru_maxrss: on Linux ru_maxrss survives fork + exec, so a subprocess would
    # report the parent's peak when that is larger.
    peak = _status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    out: dict[str, Any] = {"peak_mib": peak / 1024, "before_run_mib": (before or 0) / 1024,
                              "added_by_run_mib": (peak - (before or 0)) / 1024}
    if method == "gatys":
        out["lbfgs_full_history_mib_computed"] = lbfgs_history_mib(h, w)
    return out


def lbfgs_history_mib(h: int, w: int) -> float:
    """Memory a full L-BFGS history adds (computed, not measured): 2 × history_size float32
    vectors of the image's 3·h·w values (torch.optim.LBFGS's old_dirs and old_stps)."""
    from eyepurify.optimize import LBFGS_HISTORY

    return 2 * LBFGS_HISTORY * 3 * h * w * 4 / 2**20


def measure_memory(method: str, h: int, w: int, threads: int, gatys_iters: int) -> dict[str, Any]:
    """``probe`` in a fresh ``python -m eyepurify.bench.speed --probe`` subprocess."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "eyepurify.bench.speed", "--probe", method, str(h), str(w), str(threads), str(gatys_iters)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the benchmark


def time_sizes(methods: list[str], sizes: list[int], repeats: int, gatys_iters: int, seed: int, bar=None) -> dict[str, dict[int, list[float]]]:
    """{method: {size: [seconds per image, one per repeat]}}, repeats interleaved over methods and sizes."""
    calls = {(m, s): make_call(m, s, s, gatys_iters=gatys_iters, seed=seed) for m in methods for s in sizes}
    for (m, _), c in calls.items():  # warm-up (Gatys warms up in its own initial evaluation, not timed)
        if m != "gatys":
            c()
    times: dict[str, dict[int, list[float]]] = {m: {s: [] for s in sizes} for m in methods}
    for r in range(repeats):
        order = methods[r % len(methods):] + methods[: r % len(methods)]  # rotate: no method always first
        for s in sizes:
            for m in order:
                times[m][s].append(calls[(m, s)]())
                if bar is not None:
                    bar.update(1)
    return times


def throughput(methods: list[str], batches: list[int], repeats: int, seed: int) -> dict[str, dict[int, float]]:
    """{method: {batch: images/s}} at 36×60 (median over interleaved repeats)."""
    calls = {(m, b): make_call(m, 36, 60, batch=b, seed=seed) for m in methods for b in batches}
    for c in calls.values():
        c()
    per: dict[tuple[str, int], list[float]] = {k: [] for k in calls}
    for _ in range(repeats):
        for k, c in calls.items():
            per[k].append(c())
    return {m: {b: 1.0 / statistics.median(per[(m, b)]) for b in batches} for m in methods}


def ratios(times: dict[str, dict[int, list[float]]], sizes: list[int]) -> dict[str, dict[int, float]]:
    """Speed-ups of ours over each other method: median(other) / median(ours), per size."""
    med = {m: {s: statistics.median(v) for s, v in d.items()} for m, d in times.items()}
    out: dict[str, dict[int, float]] = {}
    for ours, others in (("ours", ("johnson", "johnson_small", "gatys", "ours_seg")), ("eyepurify", ("johnson", "gatys")),
                         ("ours_openvino", ("ours",)), ("ours_fast", ("ours",)), ("ours_fast_openvino", ("ours",))):
        if ours not in med:
            continue
        for o in others:
            if o in med:
                out[f"{o} / {ours}"] = {s: med[o][s] / med[ours][s] for s in sizes}
    return out


def ratio_ranges(times: dict[str, dict[int, list[float]]], sizes: list[int]) -> dict[str, dict[int, list[float]]]:
    """[min, max] over repeats of the per-repeat ratio other / ours (same repeat: measured close in time)."""
    out: dict[str, dict[int, list[float]]] = {}
    for name in ratios(times, sizes):
        o, ours = name.split(" / ")
        out[name] = {}
        for s in sizes:
            r = [a / b for a, b in zip(times[o][s], times[ours][s], strict=True)]
            out[name][s] = [min(r), max(r)]
    return out


def markdown(res: dict[str, Any]) -> str:
    sizes = res["sizes"]
    med = res["median_seconds"]
    lines = [
        "# Speed: ours vs Johnson vs Gatys (paper Table 1)", "",
        f"Seconds per image, batch 1, median of {res['repeats']} interleaved repeats, {res['threads']} torch thread(s) "
        f"on {res['machine']}; load average {res['load_before']} before and {res['load_after']} after the run. "
        f"Gatys = median s per L-BFGS iteration ({res['gatys_iters']} timed per repeat) × {GATYS_ITERATIONS}. "
        "Paper: Titan X GPU.", "",
        "| method | params | " + " | ".join(f"{s}²" for s in sizes) + " | paper (Titan X) |",
        "|---|---|" + "---|" * len(sizes) + "---|",
    ]
    paper_key = {"ours": "ours", "eyepurify": "ours", "johnson": "johnson", "gatys": "gatys"}
    for m, label in METHODS.items():
        if m not in med:
            continue
        p = res["parameters"].get(m)
        paper = PAPER_SECONDS.get(paper_key.get(m, ""), None)
        paper_txt = " / ".join(f"{v:g}" for v in paper) + " s" if paper and list(sizes) == list(PAPER_SIZES) else "–"
        cells = [f"{med[m][str(s)]:.4g}" for s in sizes]
        lines.append(f"| {label} | {'' if p is None else f'{p / 1e6:.2f}M'} | " + " | ".join(cells) + f" | {paper_txt} |")
    lines += ["", "Speed-ups (median / median, measured in the same run; in brackets the range of the per-repeat ratios):", "",
              "| ratio | " + " | ".join(f"{s}²" for s in sizes) + " | paper |",
              "|---|" + "---|" * len(sizes) + "---|"]
    for name, d in res["ratios"].items():
        other = name.split(" / ")[0]
        paper = PAPER_SECONDS.get(other)
        ptxt = " / ".join(f"{a / b:.3g}" for a, b in zip(paper, PAPER_SECONDS["ours"], strict=True)) if paper and other != "ours" and list(sizes) == list(PAPER_SIZES) else "–"
        rng = res["ratio_ranges"][name]
        lines.append(f"| {name} | " + " | ".join(f"{d[str(s)]:.3g} ({rng[str(s)][0]:.3g}–{rng[str(s)][1]:.3g})" for s in sizes) + f" | {ptxt} |")
    tp = res["throughput"]
    batches = res["batches"]
    lines += ["", "Throughput at 36×60 (images/s, median of interleaved repeats):", "",
              "| method | " + " | ".join(f"batch {b}" for b in batches) + " |",
              "|---|" + "---|" * len(batches)]
    for m, d in tp.items():
        lines.append(f"| {METHODS[m].split(':')[0]} | " + " | ".join(f"{d[str(b)]:.1f}" for b in batches) + " |")
    mem = res.get("memory") or {}
    if mem:
        lines += ["", "Peak memory (MiB; RSS high-water mark (VmHWM) of a fresh process after a warm-up and a timed run (Gatys: the initial evaluation and 1 iteration): Python + torch + "
                  "weights + input + activations; in brackets: added over the process's high-water mark after a 32×32 "
                  "run and building the model and input, i.e. what running at that size added):", "",
                  "| method | " + " | ".join(f"{s}²" for s in sizes) + " |",
                  "|---|" + "---|" * len(sizes)]
        for m, d in mem.items():
            cells = []
            for s in sizes:
                v = d.get(str(s))
                cells.append("–" if not v else (v["error"][:40] if "error" in v else f"{v['peak_mib']:.0f} (+{v['added_by_run_mib']:.0f})"))
            lines.append(f"| {METHODS[m].split(':')[0]} | " + " | ".join(cells) + " |")
        if "gatys" in mem:
            hist = ", ".join(f"{s}²: {lbfgs_history_mib(s, s):.0f}" for s in sizes)
            lines += ["", "The Gatys probe runs 1 L-BFGS iteration; a full run also keeps the L-BFGS history "
                      f"(50 pairs of image-sized float32 vectors; computed, not measured: {hist} MiB) on top."]
    return "\n".join(lines) + "\n"


def figure(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = res["sizes"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for m, d in res["median_seconds"].items():
        ax.plot(sizes, [d[str(s)] for s in sizes], "o-", label=METHODS[m].split(":")[0])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("image side S (S×S)")
    ax.set_ylabel("seconds per image (Gatys: × 400 iterations)")
    ax.set_title(f"{res['threads']} CPU thread(s), batch 1", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def machine_line() -> str:
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs"


def run(args: argparse.Namespace) -> str:
    import torch

    from eyepurify.bench import command_line
    from eyepurify.io import write_json, write_text
    from eyepurify.models.backbones.base import flush_denormals
    from eyepurify.progress import progress_bar

    torch.set_num_threads(args.threads)
    if args.quick:
        sizes, repeats, gatys_iters, batches = [64], 1, 2, [1, 4]
    else:
        sizes = [int(s) for s in args.sizes.split(",")]
        repeats, gatys_iters = args.repeats, args.gatys_iters
        batches = [int(b) for b in args.batches.split(",")]
    methods = list(METHODS) if not args.methods else [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        from eyepurify.errors import EyepurifyError

        raise EyepurifyError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    from eyepurify.backends import openvino_available
    from eyepurify.device import current

    if not openvino_available() or not current().trivial:  # not installed, or not on the CPU in fp32: left out
        methods = [m for m in methods if not m.endswith("openvino")]
    load_before = [round(v, 2) for v in os.getloadavg()]
    t0 = time.perf_counter()
    bar = progress_bar(range(repeats * len(sizes) * len(methods)), total=repeats * len(sizes) * len(methods), desc="speed")
    with flush_denormals():
        times = time_sizes(methods, sizes, repeats, gatys_iters, args.seed, bar)
        bar.close()
        tp = throughput([m for m in methods if m != "gatys"], batches, max(repeats, 1), args.seed)
    memory: dict[str, dict[str, Any]] = {}
    if not args.no_memory:
        mem_methods = ["ours", "gatys"] if args.quick else methods
        for m in progress_bar(mem_methods, total=len(mem_methods), desc="memory"):
            memory[m] = {str(s): measure_memory(m, s, s, args.threads, gatys_iters) for s in sizes}
    load_after = [round(v, 2) for v in os.getloadavg()]
    rat = ratios(times, sizes)
    res: dict[str, Any] = {
        "sizes": sizes, "repeats": repeats, "gatys_iters": gatys_iters, "batches": batches,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "machine": machine_line(),
        "load_before": load_before, "load_after": load_after, "wall_seconds": time.perf_counter() - t0,
        "methods": METHODS, "parameters": {m: parameters(m) for m in methods},
        "seconds": {m: {str(s): v for s, v in d.items()} for m, d in times.items()},
        "median_seconds": {m: {str(s): statistics.median(v) for s, v in d.items()} for m, d in times.items()},
        "ratios": {k: {str(s): v for s, v in d.items()} for k, d in rat.items()},
        "ratio_ranges": {k: {str(s): v for s, v in d.items()} for k, d in ratio_ranges(times, sizes).items()},
        "min_seconds": {m: {str(s): min(v) for s, v in d.items()} for m, d in times.items()},
        "throughput": {m: {str(b): v for b, v in d.items()} for m, d in tp.items()},
        "memory": memory,
        "paper_seconds_titan_x": {k: dict(zip(map(str, PAPER_SIZES), v, strict=True)) for k, v in PAPER_SECONDS.items()},
        "seed": args.seed, "quick": bool(args.quick), "command": command_line("speed", args),
        "device": current().describe(),
    }
    out = Path(args.out)
    write_json(out / "speed.json", res)
    md = markdown(res)
    write_text(out / "speed.md", md)
    figure(res, out / "speed_sizes.png")
    big = sizes[-1]
    parts = [f"{m} {statistics.median(times[m][big]):.3g} s" for m in methods]
    parts += [f"{name} {d[big]:.3g}×" for name, d in rat.items()]
    head = (f"at {big}²: " + ", ".join(parts)
            + f"; {torch.get_num_threads()} thread(s), load average {load_before[0]} → {load_after[0]}")
    print(f"machine load (1/5/15 min) before {load_before}, after {load_after}; torch threads {torch.get_num_threads()}")
    return md + "\n" + head


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--probe":
        _, _, m, hh, ww, th, gi = sys.argv
        print(json.dumps(probe(m, int(hh), int(ww), int(th), int(gi))))
    else:
        sys.exit("usage: python -m eyepurify.bench.speed --probe METHOD H W THREADS GATYS_ITERS (internal)")

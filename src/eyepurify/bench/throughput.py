"""Throughput (issue 14): end-to-end ``purify`` vs the networks alone vs this CPU's FLOP bound.

In one run, side by side, on wild renders written as PNG files (masks predicted by the
shipped segmenter, outputs written as PNG, manifest and all), at 36×60 (MPIIGaze's patch
size; resized to the models' 72×120 eye scale and back), 72×120 and 256² (a whole image:
the eye is located, cut, purified and pasted back):

* **end to end**: ``eyepurify purify DIR --out O --backend B`` in a fresh subprocess, timed
  from the call (imports excluded; exported ONNX files already cached), with its peak RSS
  (VmHWM). ``baseline`` is the path before this benchmark existed: eager torch networks,
  ``--io serial`` (decode, infer, encode one after the other, PNG level 6, an fsync per
  file, the manifest saved every chunk).
* **network only**: the same backend's networks on ready float tensors, at the sizes the
  pipeline runs them (36×60 and 72×120: segmenter + purifier at 72×120; 256²: the coarse
  segmenter pass at 120×120, the refinement and the mask pass at 72×120, the purifier).
* **FLOP bound**: this CPU's fp32 GFLOP/s, measured with a 2048² matmul in the same run,
  over the networks' FLOPs per image (torch's FLOP counter, 2 per multiply-add).
* **Ray**: ``--engine ray --workers 1`` vs ``2`` at 36×60 on a local cluster (rate after the
  first batch came back, so the cluster start is not counted; wall time reported too).
* **quality** of each fast path on paired renders (wild input, indoor target of the same
  draw) at 36×60: PSNR/SSIM to the target, and PSNR/SSIM to the eager fp32 output.
* **models** (``--models shipped,fast``): every row above for each shipped model set
  (``fast``: the students distilled from v2, ``Purifier.from_pretrained("fast")``,
  ``purify --model fast``; ``fast_v1``: the pair distilled from v1), each with its own FLOP
  bound; rows of another set than ``shipped`` are named ``PAIR:BACKEND`` and skip
  ``baseline`` (the old path is the shipped set's).

Re-run on a quiet machine with the command recorded in the JSON (``command``); the load
average before and after is recorded because a shared machine slows everything unevenly.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MPIIGAZE_PATCHES = 213_659
SIZES: dict[str, tuple[int, int]] = {"36x60": (36, 60), "72x120": (72, 120), "256x256": (256, 256)}
ALL_BACKENDS = ("baseline", "torch", "onnx", "int8", "openvino", "bf16")
MODELS = ("shipped", "v1", "v2", "fast", "fast_v1")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=2000, help="images per end-to-end run at 36×60 (72×120: half, 256²: a fifth)")
    p.add_argument("--backends", default=",".join(ALL_BACKENDS), help="comma-separated rows (baseline = eager torch, serial I/O)")
    p.add_argument("--sizes", default=",".join(SIZES), help="comma-separated sizes")
    p.add_argument("--models", default="shipped", help=f"comma-separated shipped model pairs ({', '.join(MODELS)}), rows side by side")
    p.add_argument("--batch", type=int, default=32, help="images per forward pass")
    p.add_argument("--quality-n", type=int, default=96, help="paired renders for the quality rows")
    p.add_argument("--no-ray", action="store_true", help="skip the Ray rows")
    p.add_argument("--seed", type=int, default=0)


# ---------------------------------------------------------------- inputs and FLOPs


def write_inputs(folder: Path, size: tuple[int, int], n: int, seed: int) -> Path:
    """``n`` wild renders at ``size`` as PNG files in ``folder`` (reused when complete)."""
    from eyepurify.data.render import render_pair, sample_params
    from eyepurify.io import write_image

    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.png"))) == n:
        return folder
    rng = np.random.default_rng(seed)
    for i in range(n):
        _, wild = render_pair(sample_params(rng), size, rng=rng)
        write_image(folder / f"{i:06d}.png", wild.image)
    return folder


def _net_shapes(size: tuple[int, int], p: Any) -> list[tuple[str, Any, tuple[int, int]]]:
    """The (kind "seg"|"pur", network, working size) passes Purifier ``p``'s pipeline runs per
    RGB image of ``size``: a patch goes to the purifier (and segmenter) of its eye scale, a
    whole image is located at the first network's scale (coarse pass, refinement, crop)."""
    from eyepurify.eyescale import coarse_size, is_patch

    segs = getattr(p.segmenter, "segmenters", [p.segmenter])
    k = p.network_for(False, (*size, 3))
    scale = p.nets[k].scale
    if scale is not None and is_patch((*size, 3), scale):
        s = segs[p.segmenter.pick((*scale.size, 3))] if len(segs) > 1 else segs[0]
        return [("seg", s.model, scale.size), ("pur", p.nets[k].net, scale.size)]
    k = p.network_for(False, None)
    scale = p.nets[k].scale
    seg = segs[0].model
    return [("seg", seg, coarse_size((*size, 3), scale)), ("seg", seg, scale.size), ("seg", seg, scale.size),
            ("pur", p.nets[k].net, scale.size)]


def load_pair(model: str = "shipped") -> Any:
    """The Purifier of a shipped model set (``shipped`` = the default, or a name in
    :data:`eyepurify.purify.SHIPPED`) with its segmenter(s)."""
    from eyepurify.purify import Purifier

    if model not in MODELS:
        from eyepurify.errors import EyepurifyError

        raise EyepurifyError(f"unknown model pair {model!r} in --models: choose from {', '.join(MODELS)}")
    return Purifier.from_pretrained(None if model == "shipped" else model)


def row_name(model: str, backend: str) -> str:
    """A row's key: the backend for the shipped pair, ``PAIR:BACKEND`` for another."""
    return backend if model == "shipped" else f"{model}:{backend}"


def model_argv(model: str) -> list[str]:
    """The ``purify`` options that select ``model``'s pair."""
    return [] if model == "shipped" else ["--model", model]


def flops_per_image(size: tuple[int, int], model: str = "shipped") -> float:
    """FLOPs (2 per multiply-add) of a model pair's network passes for one image of ``size``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    p = load_pair(model)
    total = 0.0
    for kind, net, (h, w) in _net_shapes(size, p):
        x = torch.rand(1, 3, h, w)
        with FlopCounterMode(display=False) as fc, torch.inference_mode():
            net(x, torch.zeros(1, 4, h, w)) if kind == "pur" else net(x)
        total += fc.get_total_flops()
    return total


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """This CPU's fp32 GFLOP/s on an n×n matmul with torch's threads (median of ``repeats``)."""
    import torch

    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(ts) / 1e9


# ---------------------------------------------------------------- network only


def network_rate(backend: str, size: tuple[int, int], batch: int, repeats: int = 3, model: str = "shipped") -> float:
    """Images/s of ``backend``'s networks (of pair ``model``) alone on float tensors, for images of ``size``."""
    import torch

    from eyepurify.backends import accelerate

    p = load_pair(model)
    accelerate(p, "eager" if backend == "baseline" else backend)
    calls: list[Callable[[], object]] = []
    g = torch.Generator().manual_seed(0)
    for kind, net, (h, w) in _net_shapes(size, p):
        x = torch.rand(batch, 3, h, w, generator=g)
        if kind == "pur":
            m = torch.nn.functional.one_hot(torch.randint(0, 4, (batch, h, w), generator=g), 4).permute(0, 3, 1, 2).float()
            calls.append(lambda x=x, m=m, net=net: net(x, m))  # type: ignore[misc]
        else:
            calls.append(lambda x=x, net=net: net(x))  # type: ignore[misc]
    with torch.inference_mode():
        for c in calls:
            c()
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            for c in calls:
                c()
            ts.append(time.perf_counter() - t)
    return batch / statistics.median(ts)


# ---------------------------------------------------------------- end to end (subprocess)


def _vmhwm_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def probe(argv: list[str]) -> dict[str, Any]:
    """Inside a fresh process: run ``eyepurify`` with ``argv``, return seconds, rc and peak RSS."""
    import contextlib
    import io

    from eyepurify.cli import build_parser
    from eyepurify.commands.purify import execute

    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        summary = execute(build_parser(argv).parse_args(argv))
    res: dict[str, Any] = {"seconds": time.perf_counter() - t, "rc": summary.exit_code, "peak_rss_mb": _vmhwm_mb()}
    if summary.timings is not None:
        res["ray"] = dataclasses.asdict(summary.timings)
    return res


def run_cli(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """:func:`probe` in a subprocess (so peak memory is this run's alone)."""
    cmd = [sys.executable, "-m", "eyepurify.bench.throughput", "--probe", json.dumps(argv)]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        raise RuntimeError(f"probe failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return json.loads(lines[-1])


def end_to_end(folder: Path, n: int, backend: str, batch: int, work: Path, extra: list[str] | None = None,
               small: tuple[Path, int] | None = None) -> dict[str, Any]:
    """Patches/s (and peak RSS) of ``eyepurify purify`` over ``folder`` (``n`` images):
    ``wall_per_s`` counts everything after the imports (model loading too); with ``small``
    (a folder of the first n0 images), ``patches_per_s`` is the steady rate
    (n − n0) / (t(n) − t(n0)), which cancels the fixed start-up; else it is the wall rate."""

    def once(src: Path) -> dict[str, Any]:
        out = Path(tempfile.mkdtemp(prefix=f"out-{backend}-", dir=work))
        from eyepurify.device import cli_args

        argv = ["purify", str(src), "--out", str(out), "--batch", str(batch), *cli_args()]
        argv += ["--backend", "eager", "--io", "serial"] if backend == "baseline" else ["--backend", backend]
        r = run_cli(argv + (extra or []))
        if r["rc"] != 0:
            raise RuntimeError(f"purify exited {r['rc']} on {src}")
        return r

    res = once(folder)
    res["wall_per_s"] = n / res["seconds"]
    res["patches_per_s"] = res["wall_per_s"]
    if small is not None:
        r0 = once(small[0])
        res["small_seconds"], res["small_n"] = r0["seconds"], small[1]
        res["startup_seconds"] = max(0.0, r0["seconds"] - small[1] * (res["seconds"] - r0["seconds"]) / (n - small[1]))
        res["patches_per_s"] = (n - small[1]) / max(1e-9, res["seconds"] - r0["seconds"])
    return res


# ---------------------------------------------------------------- quality


def quality(backends: list[str], n: int, seed: int, model: str = "shipped") -> dict[str, dict[str, float]]:
    """Per backend on ``n`` paired 36×60 renders (masks predicted) with pair ``model``:
    PSNR/SSIM to the indoor target, their change from the pair's eager fp32, and PSNR/SSIM
    of the output to that eager output (rows keyed by :func:`row_name`)."""
    from eyepurify.backends import accelerate
    from eyepurify.bench.metrics import psnr, ssim
    from eyepurify.bench.paired import PSNR_CAP, render_pairs

    data = render_pairs(n, (36, 60), seed + 101)
    outs: dict[str, list[np.ndarray]] = {}
    for b in ["eager", *[b for b in backends if b != "baseline"]]:
        p = load_pair(model)
        accelerate(p, b)
        outs[row_name(model, b)] = [r.image for r in p.process(data.wild)]
    res: dict[str, dict[str, float]] = {}
    ref = outs[row_name(model, "eager")]
    for b, o in outs.items():
        ps = float(np.mean([min(psnr(a, t), PSNR_CAP) for a, t in zip(o, data.indoor, strict=True)]))
        ss = float(np.mean([ssim(a, t) for a, t in zip(o, data.indoor, strict=True)]))
        res[b] = {"psnr": ps, "ssim": ss,
                  "psnr_vs_eager_output": float(np.mean([min(psnr(a, r), PSNR_CAP) for a, r in zip(o, ref, strict=True)])),
                  "ssim_vs_eager_output": float(np.mean([ssim(a, r) for a, r in zip(o, ref, strict=True)]))}
    eager = res[row_name(model, "eager")]
    for b in res:
        res[b]["delta_psnr"] = res[b]["psnr"] - eager["psnr"]
        res[b]["delta_ssim"] = res[b]["ssim"] - eager["ssim"]
    return res


# ---------------------------------------------------------------- report


def markdown(res: dict[str, Any]) -> str:
    lines = [f"# Throughput ({res['machine']}, {res['threads']} threads; load average {res['load_before']} → {res['load_after']})", ""]
    lines.append(f"fp32 matmul: {res['gflops']:.0f} GFLOP/s. Command: `{res['command']}`")
    by_model = res.get("gflop_by_model")
    if by_model and len(by_model) > 1:
        lines += ["", "Network GFLOP per image (segmenter + purifier passes): " + "; ".join(
            f"{m}: " + ", ".join(f"{s} {g:.3f}" for s, g in sizes.items()) for m, sizes in by_model.items())]
    lines.append("")
    lines.append("End to end = steady rate of `eyepurify purify` on PNG files (start-up subtracted; wall rate incl. "
                 "model loading in the JSON), masks predicted; network only = the same backend's networks on ready tensors.")
    lines.append("")
    lines.append("| size | backend | end to end (patches/s) | × baseline | network only | end-to-end / network | FLOP bound (fp32) | network / bound | peak RSS (MB) | all of MPIIGaze |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for size, rows in res["rows"].items():
        base = rows.get("baseline", {}).get("patches_per_s")
        for b, r in rows.items():
            model = b.split(":")[0] if ":" in b else "shipped"
            bound = res.get("flop_bound_by_model", {}).get(model, res["flop_bound"])[size]
            e2e, net = r["patches_per_s"], r["network_per_s"]
            proj = MPIIGAZE_PATCHES / e2e / 60
            ratio = f"{e2e / base:.2f}×" if base else "–"
            lines.append(
                f"| {size} | {b} | {e2e:.0f} | {ratio} | {net:.0f} | {e2e / net:.0%} | {bound:.0f} | "
                f"{net / bound:.0%} | {r['peak_rss_mb'] or 0:.0f} | {proj:.1f} min |")
    if res.get("ray"):
        lines += ["", f"Ray, 36×60, {res.get('ray_backend')} backend, local cluster (`--engine ray --workers W`); "
                  "'after start' counts from the cluster being up (actor start and model loading included) to the last write:", "",
                  "| Ray | patches/s after cluster start | wall patches/s (incl. cluster start) |", "|---|---|---|"]
        for k, r in res["ray"].items():
            lines.append(f"| {k} | {r['steady_per_s']:.0f} | {r['patches_per_s']:.0f} |")
        if "2 workers" in res["ray"] and "1 worker" in res["ray"]:
            r1, r2 = res["ray"]["1 worker"], res["ray"]["2 workers"]
            lines.append(f"\n2 workers / 1 worker: {r2['steady_per_s'] / r1['steady_per_s']:.2f}× after start, "
                         f"{r2['patches_per_s'] / r1['patches_per_s']:.2f}× wall")
    q = res.get("quality")
    if q:
        lines += ["", f"Quality on {res['quality_n']} paired 36×60 renders (masks predicted):", "",
                  "| backend | PSNR to target (dB) | SSIM to target | ΔPSNR vs eager | ΔSSIM vs eager | PSNR to eager output | SSIM to eager output |",
                  "|---|---|---|---|---|---|---|"]
        for b, r in q.items():
            lines.append(f"| {b} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['delta_psnr']:+.3f} | {r['delta_ssim']:+.4f} | "
                         f"{r['psnr_vs_eager_output']:.1f} | {r['ssim_vs_eager_output']:.4f} |")
    return "\n".join(lines) + "\n"


def figure(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(res["rows"])
    backends = list(next(iter(res["rows"].values())))
    fig, axes = plt.subplots(1, len(sizes), figsize=(4 * len(sizes), 3.6), squeeze=False)
    for ax, size in zip(axes[0], sizes, strict=True):
        rows = res["rows"][size]
        x = np.arange(len(backends))
        ax.bar(x - 0.2, [rows[b]["patches_per_s"] for b in backends], 0.4, label="end to end")
        ax.bar(x + 0.2, [rows[b]["network_per_s"] for b in backends], 0.4, label="network only")
        bounds = res.get("flop_bound_by_model") or {"shipped": res["flop_bound"]}
        for (model, bound), ls in zip(bounds.items(), ("--", ":", "-."), strict=False):
            label = "fp32 FLOP bound" + (f" ({model})" if len(bounds) > 1 else "")
            ax.axhline(bound[size], color="k", ls=ls, lw=1, label=label)
        ax.set_xticks(x, backends, rotation=30 if len(backends) > 4 else 0, fontsize=8)
        ax.set_title(size, fontsize=9)
        ax.set_ylabel("images/s")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{res['threads']} threads, load {res['load_before'][0]}→{res['load_after'][0]}", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(args: argparse.Namespace) -> str:
    import torch

    from eyepurify.backends import accelerate, onnx_available, openvino_available
    from eyepurify.bench import command_line
    from eyepurify.bench.speed import machine_line
    from eyepurify.engines.ray_engine import ray_available
    from eyepurify.io import write_json, write_text

    backends = [b for b in args.backends.split(",") if b]
    sizes = [s for s in args.sizes.split(",") if s]
    models = [m for m in getattr(args, "models", "shipped").split(",") if m]
    for m in models:
        load_pair(m)  # an unknown or uninstalled pair fails before any work
    n, qn = args.n, args.quality_n
    if args.quick:  # what CI runs: it works end to end, not how fast
        backends = [b for b in backends if b in ("baseline", "onnx")]
        sizes = [s for s in sizes if s in ("36x60",)]
        n, qn = 16, 4
    if not onnx_available():
        backends = [b for b in backends if b not in ("onnx", "int8")]
    if not openvino_available():
        backends = [b for b in backends if b not in ("openvino", "bf16")]
    from eyepurify.device import current

    if not current().trivial:  # on a GPU (or bf16, compiled): the torch rows only
        backends = [b for b in backends if b in ("baseline", "torch", "eager")]
    out = Path(args.out)
    work = Path(tempfile.mkdtemp(prefix="eyepurify-throughput-"))
    load_before = [round(v, 2) for v in os.getloadavg()]
    t0 = time.perf_counter()
    for m in models:
        for b in backends:  # export (and calibrate) once, before anything is timed
            if b not in ("baseline", "torch"):
                accelerate(load_pair(m), b)
    gflops = matmul_gflops()
    res: dict[str, Any] = {"rows": {}, "flop_bound": {}, "gflop_per_image": {}, "models": models,
                           "flop_bound_by_model": {m: {} for m in models}, "gflop_by_model": {m: {} for m in models}}
    for size in sizes:
        hw = SIZES[size]
        k = {"36x60": 1, "72x120": 2, "256x256": 5}[size]
        m = max(args.batch, n // k) if not args.quick else max(8, n // k)
        folder = write_inputs(work / f"in_{size}", hw, m, args.seed)
        small = None
        if not args.quick:  # the first `batch` images: the start-up cost, subtracted (see end_to_end)
            import shutil

            n0 = min(args.batch, m // 4)
            (work / f"in_{size}_small").mkdir()
            for f in sorted(folder.glob("*.png"))[:n0]:
                shutil.copy(f, work / f"in_{size}_small" / f.name)
            small = (work / f"in_{size}_small", n0)
        rows = {}
        for model in models:
            gf = flops_per_image(hw, model) / 1e9
            res["gflop_by_model"][model][size] = gf
            res["flop_bound_by_model"][model][size] = gflops / gf
            if model == models[0]:
                res["gflop_per_image"][size] = gf
                res["flop_bound"][size] = gflops / gf
            for b in backends:
                if b == "baseline" and model != "shipped":
                    continue
                r = end_to_end(folder, m, b, args.batch, work, extra=model_argv(model), small=small)
                r["network_per_s"] = network_rate(b, hw, args.batch, repeats=1 if args.quick else 3, model=model)
                r["n"], r["model"] = m, model
                rows[row_name(model, b)] = r
        res["rows"][size] = rows
    if not args.no_ray and not args.quick and ray_available() and "36x60" in sizes:
        at36 = {b: r for b, r in res["rows"]["36x60"].items() if b != "baseline" and ":" not in b}  # the shipped pair's
        best = max(at36, key=lambda b: at36[b]["patches_per_s"]) if at36 else "torch"  # the fastest backend
        folder = work / "in_36x60"
        res["ray"] = {}
        res["ray_backend"] = best
        for w in (1, 2):
            r = end_to_end(folder, n, best, args.batch, work, ["--engine", "ray", "--workers", str(w)])
            r.pop("patches_per_s")
            r["patches_per_s"] = r["wall_per_s"]
            ray = r.get("ray", {})
            # from the cluster being up (actors still loading their models) to the last batch written
            r["steady_per_s"] = n / max(1e-9, ray.get("end", 0) - ray.get("ready", 0))
            res["ray"]["1 worker" if w == 1 else "2 workers"] = r
    res["quality_n"] = qn
    res["quality"] = {}
    for model in models:
        res["quality"].update(quality(backends, qn, args.seed, model))
    res.update({
        "gflops": gflops, "threads": torch.get_num_threads(), "torch": torch.__version__, "machine": machine_line(),
        "load_before": load_before, "load_after": [round(v, 2) for v in os.getloadavg()],
        "wall_seconds": time.perf_counter() - t0, "backends": backends, "sizes": sizes, "n": n, "batch": args.batch,
        "mpiigaze_patches": MPIIGAZE_PATCHES, "quick": bool(args.quick), "command": command_line("throughput", args),
        "device": current().describe(),
    })
    write_json(out / "throughput.json", res)
    md = markdown(res)
    write_text(out / "throughput.md", md)
    figure(res, out / "throughput.png")
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    first = res["rows"][sizes[0]]
    best = max(first, key=lambda b: first[b]["patches_per_s"])
    head = (f"{sizes[0]}: {best} {first[best]['patches_per_s']:.0f} patches/s end to end"
            + (f" = {first[best]['patches_per_s'] / first['baseline']['patches_per_s']:.2f}× baseline" if "baseline" in first else "")
            + f", {first[best]['patches_per_s'] / first[best]['network_per_s']:.0%} of its network-only rate")
    return md + "\n" + head


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--probe":
        print(json.dumps(probe(json.loads(sys.argv[2]))))
    else:
        sys.exit("usage: python -m eyepurify.bench.throughput --probe JSON_ARGV (internal)")

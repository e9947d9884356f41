"""Video: temporal consistency (warping error) of raw, purified and stabilised video, and frames/s.

Warping error (Lai et al., ECCV 2018; :mod:`eyepurify.temporal`): each output frame t+1
warped back onto frame t by the optical flow of the *input* frames (OpenCV DIS), occluded
pixels masked by forward–backward consistency, mean squared difference in [0, 1] units.

1. Rendered sequences: the project's renderer with a smooth gaze and head trajectory (the
   gaze and head angles of two draws interpolated with a cosine ease; everything else, the
   wild light and camera included, fixed from the first draw), at the purifier's size. Rows:
   the wild input (raw), purified frame by frame, purified + flow-guided stabilisation
   (``--temporal flow``), and the paired indoor sequence (the reference: what a perfectly
   consistent purifier would give), all with the wild input's flow; PSNR to the paired
   indoor frame shows what stabilising costs in fidelity.
2. A 640×480 face video: scikit-image's public-domain astronaut portrait moved, scaled and
   turned smoothly over the frames (the test extra). The warping error inside the eye
   regions (where purification changes pixels) and over the whole frame; frames/s of
   ``purify --faces`` on it (tracking fast path: O-Net around the last face; the full
   detector on the first frame), with and without stabilisation, at ``--threads``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from eyepurify.bench.metrics import psnr


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sequences", type=int, default=6, help="rendered sequences")
    p.add_argument("--frames", type=int, default=24, help="frames per rendered sequence")
    p.add_argument("--video-frames", type=int, default=60, help="frames of the 640×480 face video")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--seed", type=int, default=0)


def ease(n: int) -> np.ndarray:
    """n weights from 0 to 1 along a cosine ease (smooth start and stop)."""
    return 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / max(n - 1, 1))


def render_sequence(rng: np.random.Generator, n: int, size: tuple[int, int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(wild frames, paired indoor frames) of one smooth gaze + head trajectory."""
    from eyepurify.data.render import WildFactors, render_domains, sample_params

    p0, p1 = sample_params(rng), sample_params(rng)
    seed = int(rng.integers(2**31))
    factors = WildFactors().resolve(np.random.default_rng(seed))
    wild, indoor = [], []
    keys = ("gaze_pitch", "gaze_yaw", "head_pitch", "head_yaw")
    for a in ease(n):
        p = dataclasses.replace(p0, **{k: (1 - a) * getattr(p0, k) + a * getattr(p1, k) for k in keys})
        (ind, _), (wd, _) = render_domains(p, size, ("indoor", "wild"), factors, np.random.default_rng(seed))
        wild.append(wd.image)
        indoor.append(ind.image)
    return wild, indoor


def face_video(n: int, size: tuple[int, int] = (480, 640), period: int = 60) -> list[np.ndarray]:
    """n frames (H×W×3 RGB) of the astronaut portrait moving smoothly over a 640×480 frame
    (one cycle of sideways and up–down motion, scale and roll every ``period`` frames)."""
    import cv2

    try:
        from skimage import data
    except ImportError:
        from eyepurify.errors import EyepurifyError

        raise EyepurifyError("the face video is made from scikit-image's astronaut: pip install scikit-image") from None
    face = data.astronaut()
    h, w = size
    frames = []
    for t in range(n):
        ph = 2 * np.pi * t / period
        s = 0.9 + 0.08 * np.sin(ph)
        ang = 4.0 * np.sin(2 * ph)
        cx, cy = w / 2 + 40 * np.sin(ph), h / 2 + 15 * np.sin(2 * ph)
        M = cv2.getRotationMatrix2D((223.0, 120.0), ang, s)  # about the face centre
        M[:, 2] += (cx - 223.0, cy - 170.0)
        frames.append(cv2.warpAffine(face, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return frames


def rendered(purifier, args: argparse.Namespace) -> tuple[dict[str, Any], list[list[np.ndarray]]]:
    from eyepurify.faces import Stabiliser
    from eyepurify.temporal import input_flows, warping_error

    rng = np.random.default_rng(args.seed)
    rows: dict[str, list[float]] = {"raw": [], "purified": [], "stabilised": [], "indoor": [], "indoor_own_flow": []}
    fidelity: dict[str, list[float]] = {"raw": [], "purified": [], "stabilised": []}
    strip: list[list[np.ndarray]] = []
    for k in range(args.sequences):
        wild, indoor = render_sequence(rng, args.frames, purifier.scale.size)
        pur = purifier.purify_arrays(wild)
        st = Stabiliser()
        stab = [st(w, p) for w, p in zip(wild, pur, strict=True)]
        flows = input_flows(wild)
        for name, seq in (("raw", wild), ("purified", pur), ("stabilised", stab), ("indoor", indoor)):
            rows[name].append(warping_error(seq, flows=flows))
        rows["indoor_own_flow"].append(warping_error(indoor))
        for name, seq in (("raw", wild), ("purified", pur), ("stabilised", stab)):
            fidelity[name].append(float(np.mean([psnr(a, b) for a, b in zip(seq, indoor, strict=True)])))
        if k == 0:
            idx = np.linspace(0, args.frames - 1, min(6, args.frames)).round().astype(int)
            strip = [[seq[i] for i in idx] for seq in (wild, pur, stab, indoor)]
    res: dict[str, Any] = {name: float(np.mean(v)) for name, v in rows.items()}
    res["psnr_to_indoor"] = {name: float(np.mean(v)) for name, v in fidelity.items()}
    res["per_sequence"] = rows
    return res, strip


def face(purifier, args: argparse.Namespace) -> tuple[dict[str, Any], list[list[np.ndarray]]]:
    from eyepurify.faces import FacePurifier, FaceTracker, Stabiliser
    from eyepurify.temporal import input_flows, warping_error

    frames = face_video(args.video_frames)
    fp = FacePurifier(purifier)
    out: dict[str, Any] = {"frames": len(frames), "size": [frames[0].shape[1], frames[0].shape[0]]}
    results: dict[str, list[np.ndarray]] = {}
    masks: list[np.ndarray] = []
    for name, stab in (("purified", False), ("stabilised", True)):
        tracker = FaceTracker(fp.detector, fps=25.0)
        stabs = Stabiliser() if stab else None
        seq, missing = [], 0
        fp.purify(frames[0], fp.detect(frames[0]))  # warm-up (first calls allocate)
        t0 = time.perf_counter()
        for f in frames:
            lm = tracker(f)
            if lm is None:
                missing += 1
                seq.append(f)
                continue
            r = fp.purify(f, [lm], stabs)
            seq.append(r.image)
            if not stab:
                assert r.changed is not None
                masks.append(r.changed)
        dt = time.perf_counter() - t0
        out[f"fps_{name}"] = len(frames) / dt
        out[f"frames_without_face_{name}"] = missing
        results[name] = seq
    t0 = time.perf_counter()
    for f in frames[: min(5, len(frames))]:
        fp.detect(f)
    out["ms_full_detection"] = 1000 * (time.perf_counter() - t0) / min(5, len(frames))
    flows = input_flows(frames)
    if len(masks) != len(frames):
        masks = [np.ones(frames[0].shape[:2], bool)] * len(frames)
    for name, seq in (("raw", frames), ("purified", results["purified"]), ("stabilised", results["stabilised"])):
        out[f"eyes_{name}"] = warping_error(seq, flows=flows, mask=masks)
        out[f"frame_{name}"] = warping_error(seq, flows=flows)
    # a strip: the eye region of a few frames
    idx = np.linspace(0, len(frames) - 1, min(6, len(frames))).round().astype(int)
    ys, xs = np.nonzero(np.any(masks, axis=0))
    y0, y1 = max(int(ys.min()) - 12, 0), int(ys.max()) + 12
    x0, x1 = max(int(xs.min()) - 12, 0), int(xs.max()) + 12
    strip = [[seq[i][y0:y1, x0:x1] for i in idx] for seq in (frames, results["purified"], results["stabilised"])]
    return out, strip


def live_speed(frames: list[np.ndarray], models: tuple[str, ...] = ("default", "fast")) -> dict[str, float]:
    """Frames/s on one face video, side by side: frame-by-frame ``purify --faces`` (tracking and
    stabilisation as for videos) per purifier, and ``eyepurify live --faces`` (the same, plus the
    raw | purified side-by-side frame and its labels) with the fast pair, without and with
    ``--gaze`` (the shipped estimator on the raw and the purified eyes, arrows drawn). The first
    frame (full MTCNN detection) is not timed."""
    from eyepurify.commands.live import Live
    from eyepurify.faces import FacePurifier, FaceTracker, Stabiliser
    from eyepurify.purify import Purifier

    out: dict[str, float] = {}
    for model in models:
        fp = FacePurifier(Purifier.from_pretrained(model))
        tracker, stab = FaceTracker(fp.detector, fps=25.0), Stabiliser()
        for i, f in enumerate(frames):
            if i == 1:
                t0 = time.perf_counter()
            lm = tracker(f)
            if lm is not None:
                fp.purify(f, [lm], stab)
        out[f"purify --faces ({model})"] = (len(frames) - 1) / (time.perf_counter() - t0)
    fast = Purifier.from_pretrained("fast")
    for gaze in (False, True):
        live = Live(fast, True, gaze, True, 25.0, None)
        for i, f in enumerate(frames):
            if i == 1:
                t0 = time.perf_counter()
            live(f)
        out["live --faces" + (" --gaze" if gaze else "") + " (fast)"] = (len(frames) - 1) / (time.perf_counter() - t0)
    return out


def figure(render_strip: list[list[np.ndarray]], face_strip: list[list[np.ndarray]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("render: wild input", render_strip[0]), ("render: purified", render_strip[1]),
            ("render: stabilised", render_strip[2]), ("render: indoor (reference)", render_strip[3]),
            ("face video: raw", face_strip[0]), ("face video: purified", face_strip[1]),
            ("face video: stabilised", face_strip[2])]
    cols = max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.9 * cols, 1.25 * len(rows)), squeeze=False)
    for i, (label, ims) in enumerate(rows):
        for j in range(cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(ims):
                ax.imshow(ims[j], interpolation="nearest")
            if j == 0:
                ax.set_ylabel(label, fontsize=6, rotation=0, ha="right", va="center")
    fig.suptitle("frames of one rendered sequence (72×120) and of the 640×480 face video (eye region)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(res: dict[str, Any]) -> str:
    r, f = res["rendered"], res["face_video"]
    assert isinstance(r, dict) and isinstance(f, dict)
    ratio = lambda a, b: a / b if b else float("nan")  # noqa: E731
    lines = [
        "# Video: temporal consistency and speed", "",
        f"`{res['command']}` — {res['threads']} torch thread(s), load average {res['load_average']} "
        f"when it started ({res['cpus']} CPUs; the machine is shared).", "",
        "Warping error (Lai et al. 2018: output t+1 warped onto t by DIS flow of the input, occluded "
        "pixels masked; mean squared difference in [0, 1] units × 1000; lower = steadier).", "",
        f"## Rendered sequences ({res['sequences']} × {res['frames']} frames, 72×120, wild domain)", "",
        "| video | warping error ×1000 | × raw | PSNR to indoor (dB) |", "|---|---:|---:|---:|",
    ]
    ps = r["psnr_to_indoor"]
    for name in ("raw", "purified", "stabilised", "indoor"):
        lines.append(f"| {name if name != 'indoor' else 'indoor (reference)'} | {1000 * r[name]:.3f} | "
                     f"{ratio(r[name], r['raw']):.2f} | {ps[name]:.2f} |" if name in ps else
                     f"| indoor (reference) | {1000 * r[name]:.3f} | {ratio(r[name], r['raw']):.2f} | — |")
    lines += ["", f"indoor with its own flow: {1000 * r['indoor_own_flow']:.3f}.", "",
              f"## Face video ({f['frames']} frames, {f['size'][0]}×{f['size'][1]}, one face)", "",
              "| video | eye regions ×1000 | × raw | whole frame ×1000 | frames/s |", "|---|---:|---:|---:|---:|"]
    for name in ("raw", "purified", "stabilised"):
        fps = f.get(f"fps_{name}")
        lines.append(f"| {name} | {1000 * f[f'eyes_{name}']:.3f} | {ratio(f[f'eyes_{name}'], f['eyes_raw']):.2f} | "
                     f"{1000 * f[f'frame_{name}']:.3f} | {'—' if fps is None else f'{fps:.1f}'} |")
    lines += ["", f"Full MTCNN detection (first frame, or when the face is lost): {f['ms_full_detection']:.0f} ms; "
              "other frames track the face with O-Net alone.", ""]
    live = res.get("live")
    if isinstance(live, dict):
        lines += ["Frames/s on the same video, side by side (tracking and flow stabilisation in every row; "
                  "`live` also builds the raw | purified frame):", "", "| pipeline | frames/s |", "|---|---:|"]
        lines += [f"| `{k}` | {v:.1f} |" for k, v in live.items()] + [""]
    lines += ["![strip](video_strip.png)", ""]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> str:
    import torch

    from eyepurify.bench import command_line
    from eyepurify.io import write_json, write_text
    from eyepurify.purify import Purifier

    if args.quick:
        args.sequences, args.frames, args.video_frames = min(args.sequences, 2), min(args.frames, 8), min(args.video_frames, 8)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    purifier = Purifier.from_pretrained()
    r, rstrip = rendered(purifier, args)
    f, fstrip = face(purifier, args)
    live = live_speed(face_video(args.video_frames))
    res = {"rendered": r, "face_video": f, "live": live, "sequences": args.sequences, "frames": args.frames,
           "threads": args.threads, "cpus": os.cpu_count(), "load_average": round(load, 2),
           "quick": bool(args.quick), "seed": args.seed, "command": command_line("video", args)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "video.json", res)
    write_text(out / "video.md", markdown(res))
    figure(rstrip, fstrip, out / "video_strip.png")
    return (f"video: rendered warping error ×1000 raw {1000 * r['raw']:.3f}, purified {1000 * r['purified']:.3f}, "
            f"stabilised {1000 * r['stabilised']:.3f}; face video eyes raw {1000 * f['eyes_raw']:.3f}, purified "
            f"{1000 * f['eyes_purified']:.3f}, stabilised {1000 * f['eyes_stabilised']:.3f}; "
            f"{f['fps_purified']:.1f} frames/s at 640×480; live --faces (fast) "
            f"{live['live --faces (fast)']:.1f} frames/s ({out})")

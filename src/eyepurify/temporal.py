"""Temporal consistency of a video: the warping error of Lai et al. (ECCV 2018).

``warping_error(outputs, inputs)``: for each pair of frames t, t+1, the optical flow is
computed on the *input* frames (OpenCV DIS, or Farneback), frame t+1 of the output is warped
back onto frame t, and the squared difference to output frame t is averaged over the pixels
that are not occluded (forward–backward consistent flow) and inside ``mask`` (if given);
the error is the mean over all pairs. Images are compared in [0, 1] (mean over channels),
so a frame-to-frame brightness jump of 0.1 everywhere gives 0.01.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from eyepurify.faces import consistent, dis_flow, warp_by_flow


def flow(a: np.ndarray, b: np.ndarray, method: str = "dis") -> np.ndarray:
    """H×W×2 float32 flow from ``a`` to ``b`` (a(p) ≈ b(p + f)); ``method`` dis | farneback."""
    if method == "dis":
        return dis_flow(a, b, cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    if method == "farneback":
        ga = a if a.ndim == 2 else cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
        gb = b if b.ndim == 2 else cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
        return cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 3, 15, 3, 5, 1.2, 0)  # type: ignore[call-overload]
    raise ValueError(f"unknown flow method {method!r} (use dis or farneback)")


def pair_error(out_t: np.ndarray, out_next: np.ndarray, fwd: np.ndarray, valid: np.ndarray) -> float:
    """Mean squared difference (in [0, 1] units) between ``out_t`` and ``out_next`` warped by
    ``fwd`` over the ``valid`` pixels (nan when none)."""
    warped = warp_by_flow(out_next, fwd).astype(np.float32) / 255.0
    d = ((out_t.astype(np.float32) / 255.0 - warped) ** 2)
    d = d.mean(-1) if d.ndim == 3 else d
    n = int(valid.sum())
    return float(d[valid].sum() / n) if n else float("nan")


def input_flows(inputs: Sequence[np.ndarray], method: str = "dis") -> list[tuple[np.ndarray, np.ndarray]]:
    """(flow t→t+1, non-occluded mask) of each consecutive pair of input frames."""
    out = []
    for a, b in zip(inputs[:-1], inputs[1:], strict=True):
        fwd, bwd = flow(a, b, method), flow(b, a, method)
        out.append((fwd, consistent(fwd, bwd)))
    return out


def warping_error(outputs: Sequence[np.ndarray], inputs: Sequence[np.ndarray] | None = None,
                  mask: Sequence[np.ndarray] | np.ndarray | None = None, method: str = "dis",
                  flows: list[tuple[np.ndarray, np.ndarray]] | None = None) -> float:
    """Warping error of the video ``outputs`` (T frames, H×W×3 uint8) with the flow of
    ``inputs`` (default: the outputs themselves; or precomputed ``flows``); ``mask``: one
    H×W bool region for all frames, or one per frame (frame t's is used for pair t, t+1)."""
    if len(outputs) < 2:
        raise ValueError("the warping error needs at least two frames")
    flows = flows if flows is not None else input_flows(list(inputs if inputs is not None else outputs), method)
    errs = []
    for t, (fwd, valid) in enumerate(flows):
        v = valid
        if mask is not None:
            m = np.asarray(mask if isinstance(mask, np.ndarray) and mask.ndim == 2 else mask[t], bool)
            v = v & m
        e = pair_error(outputs[t], outputs[t + 1], fwd, v)
        if np.isfinite(e):
            errs.append(e)
    return float(np.mean(errs)) if errs else float("nan")

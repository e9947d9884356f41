"""The gaze protocol as pure functions: labelled sets, per-set angular errors, summaries, CDFs.

A labelled gaze set is RGB eye images at one working size (where purifiers run) with
(pitch, yaw) labels; estimators see them in gray at 36×60 (:func:`to_gray`). Errors are
angles in degrees between predicted and true gaze (:func:`eyepurify.gaze.geometry.angular_error`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eyepurify.errors import DataError
from eyepurify.gaze.estimators import GazeEstimator
from eyepurify.gaze.features import to_gray
from eyepurify.gaze.geometry import angular_error

#: the estimators' input size (H, W): MPIIGaze-style eye patches
GAZE_SIZE = (36, 60)


@dataclass
class GazeSet:
    """rgb: N×H×W×3 uint8 (the working size); pitchyaw: N×2 radians; labels: N×H×W uint8
    label maps or None; name: where it came from; groups: (N,) person ids or None;
    conditions: N×4 int (head pose yaw, vertical and horizontal gaze target in degrees, eye:
    0 left / 1 right) where the data set is a grid of gaze targets (Columbia), or None."""

    rgb: np.ndarray
    pitchyaw: np.ndarray
    labels: np.ndarray | None = None
    name: str = ""
    groups: np.ndarray | None = None
    conditions: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.pitchyaw)

    def gray(self, size: tuple[int, int] = GAZE_SIZE) -> np.ndarray:
        """N×h×w gray uint8 at ``size`` (what the estimators see)."""
        return to_gray(self.rgb, size)

    def subset(self, index: np.ndarray | slice) -> GazeSet:
        lab = None if self.labels is None else self.labels[index]
        groups = None if self.groups is None else self.groups[index]
        cond = None if self.conditions is None else self.conditions[index]
        return GazeSet(self.rgb[index], self.pitchyaw[index], lab, self.name, groups, cond)


def load_gaze_set(
    path: str | Path, limit: int | None = None, size: tuple[int, int] = (72, 120), seed: int = 0
) -> GazeSet:
    """A labelled set from any dataset path :func:`eyepurify.data.detect.open_dataset` reads
    (UnityEyes, SynthesEyes, MPIIGaze, renders written by ``eyepurify render``).

    Images are resized to ``size`` = (H, W) (UnityEyes folders are cropped around the eye
    at that size). Samples without gaze are skipped; ``limit``: keep this many, drawn
    without replacement with ``seed`` (all when None). DataError when none has a gaze.
    ``groups`` holds each sample's person when the data set knows it (``subject(i)``).
    """
    from eyepurify.data.detect import detect_format, open_dataset
    from eyepurify.data.labelled import load_labelled

    path = Path(path)
    fmt = detect_format(path)
    ds = open_dataset(path, fmt, crop=size) if fmt == "unityeyes" else open_dataset(path, fmt)
    got = load_labelled([ds], size, need=lambda s: s.gaze is not None, limit=limit, seed=seed)
    if not got.samples:
        raise DataError(path, f"no sample has a gaze label ({fmt} format, {len(ds)} samples)",
                        "use a data set with gaze (UnityEyes, SynthesEyes, MPIIGaze, eyepurify render)")
    index = [i for _, i in got.where]
    subject = getattr(ds, "subject", None)  # data sets that know who is in each sample
    grid = getattr(ds, "entries", None) if fmt == "columbia" else None  # a grid of gaze targets
    conds = [(e.head_pose_deg, e.gaze_v_deg, e.gaze_h_deg, int(e.eye == "R")) for e in (grid[i] for i in index)] if grid else []
    have_labels = all(s.labels is not None for s in got.samples)
    return GazeSet(got.images(), np.asarray([s.pitchyaw for s in got.samples], np.float64),
                   got.labels() if have_labels else None, f"{path} ({fmt})",
                   np.asarray([subject(i) for i in index]) if subject is not None else None,
                   np.asarray(conds, np.int64) if grid is not None else None)


def evaluate_estimator(
    est: GazeEstimator,
    train: tuple[np.ndarray, np.ndarray],
    test_sets: Mapping[str, tuple[np.ndarray, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Fit ``est`` on train = (images, pitchyaw) and return, per named test set
    (images, pitchyaw), the N angular errors in degrees."""
    est.fit(*train)
    return {name: angular_error(est.predict(ims), py) for name, (ims, py) in test_sets.items()}


def summarize(errors: np.ndarray) -> dict[str, float]:
    """mean, std, median, 90th percentile (degrees) and n of an error array."""
    e = np.asarray(errors, np.float64)
    if e.size == 0:
        nan = float("nan")
        return {"mean": nan, "std": nan, "median": nan, "p90": nan, "n": 0}
    return {"mean": float(e.mean()), "std": float(e.std()), "median": float(np.median(e)),
            "p90": float(np.percentile(e, 90)), "n": int(e.size)}


def cumulative_curve(errors: np.ndarray, max_deg: float = 40.0, step: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds in degrees, share of errors ≤ each threshold), thresholds 0..max_deg."""
    t = np.arange(0.0, max_deg + step / 2, step)
    e = np.sort(np.asarray(errors, np.float64))
    share = np.searchsorted(e, t, side="right") / max(1, e.size)
    return t, share


def cdf_figure(curves: Mapping[str, np.ndarray], path: str | Path, title: str = "", max_deg: float = 40.0) -> Path:
    """Write a PNG of the cumulative error curves of named error arrays; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = cdf_plot(curves, title, max_deg)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def cdf_plot(curves: Mapping[str, np.ndarray], title: str = "", max_deg: float = 40.0):
    """The matplotlib figure of :func:`cdf_figure`: the legend sits below the axes, never on the curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4 + 0.18 * ((len(curves) + 1) // 2)), dpi=110)
    for name, errs in curves.items():
        t, share = cumulative_curve(errs, max_deg)
        ax.plot(t, 100 * share, label=f"{name} (mean {np.mean(errs):.1f}°)" if len(errs) else name)
    ax.set_xlabel("angular error (degrees)")
    ax.set_ylabel("share of test images (%)")
    ax.set_xlim(0, max_deg)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig

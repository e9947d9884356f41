"""A user's estimator on a labelled set, raw vs purified: the measures as pure functions.

``bench gaze`` and ``eyepurify evaluate`` compute every number through these functions, so
the same model, data and purifier give the same numbers in both (tests/test_evaluate.py):

* :func:`purify_images` — the purified copy of a set (masks from the purifier's segmenter);
* :func:`row_scores` — mean ± std, median and 90th percentile of the angular error, the
  per-person calibrated error (a linear correction fitted on :data:`CALIBRATION_SAMPLES`
  samples of each person, scored on the rest) where persons are known, and the paired change
  against the raw row with a bootstrap 95 % interval (:data:`N_BOOT` resamples, ``seed``);
* :func:`mean_gaze_errors` — the constant predictor of a mean gaze;
* :func:`headline` — ``estimator NAME: raw A° -> purified B° (Δ C%, 95% CI [lo%, hi%])``.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NotRequired, TypedDict

import numpy as np

from eyepurify.bench.stats import paired_bootstrap
from eyepurify.gaze.geometry import angular_error, pitchyaw_to_vector, vector_to_pitchyaw
from eyepurify.gaze.metrics import calibrated_errors
from eyepurify.gaze.protocol import GazeSet, summarize

if TYPE_CHECKING:
    from eyepurify.gaze.models import InputContract
    from eyepurify.purify import Purifier

N_BOOT = 2000
CALIBRATION_SAMPLES = 9


class RowScores(TypedDict):
    """The measures of one row (:func:`row_scores`): degrees, ``n`` samples; ``calibrated``
    where persons are known, ``vs_raw`` = [Δ mean, lo, hi] against the raw row."""

    mean: float
    std: float
    median: float
    p90: float
    n: int
    calibrated: NotRequired[float]
    vs_raw: NotRequired[list[float]]


def purify_images(purifier: Purifier, rgb: np.ndarray | Sequence[np.ndarray],
                  masks: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """The purified images (N×H×W×3 uint8) of ``rgb`` by a :class:`eyepurify.purify.Purifier`
    (``masks``: the purifier's segmenter's label maps of ``rgb``, predicted here when None)."""
    ims = list(rgb)
    if masks is None and purifier.needs_masks:
        masks = purifier.predict_masks(ims)
    return np.stack(purifier.purify_arrays(ims, masks))


def mean_gaze_errors(reference_pitchyaw: np.ndarray, test_pitchyaw: np.ndarray) -> np.ndarray:
    """Errors (degrees) of predicting the mean gaze vector of ``reference_pitchyaw`` for every test sample."""
    mean = pitchyaw_to_vector(np.asarray(reference_pitchyaw, np.float64)).mean(0)
    return angular_error(np.broadcast_to(mean, (len(test_pitchyaw), 3)), pitchyaw_to_vector(test_pitchyaw))


def mean_gaze_prediction(reference_pitchyaw: np.ndarray, n: int) -> np.ndarray:
    """N×2 (pitch, yaw): the mean gaze of ``reference_pitchyaw`` for every sample."""
    mean = pitchyaw_to_vector(np.asarray(reference_pitchyaw, np.float64)).mean(0)
    return np.tile(vector_to_pitchyaw(mean), (n, 1))


def row_scores(pred: np.ndarray, true: np.ndarray, groups: Sequence[object] | np.ndarray | None = None,
               raw_errors: np.ndarray | None = None, seed: int = 0, n_boot: int = N_BOOT) -> RowScores:
    """The measures of one row of predictions (N×2 radians) against ``true`` (N×2).

    Keys: mean, std, median, p90, n (degrees); ``calibrated`` (mean degrees over the scored
    samples) when ``groups`` (one person per sample) is given; ``vs_raw`` (Δ mean °, lo, hi)
    when the raw row's per-sample errors are given."""
    err = angular_error(pred, true)
    s = summarize(err)
    out = RowScores(mean=s["mean"], std=s["std"], median=s["median"], p90=s["p90"], n=int(s["n"]))
    if groups is not None:
        cal = calibrated_errors(pred, true, list(groups), CALIBRATION_SAMPLES, seed)
        out["calibrated"] = float(cal.mean()) if len(cal) else float("nan")
    if raw_errors is not None:
        out["vs_raw"] = list(paired_bootstrap(raw_errors, err, n_boot, seed))
    return out


def headline(name: str, raw: RowScores, purified: RowScores | None) -> str:
    """``estimator NAME: raw A° -> purified B° (Δ C%, 95% CI [lo%, hi%])`` (the interval of the
    paired change of the mean, relative to the raw mean)."""
    a = float(raw["mean"])
    if purified is None:
        return f"estimator {name}: raw {a:.2f}° (no purifier)"
    b = float(purified["mean"])
    ci = purified.get("vs_raw") or [b - a, float("nan"), float("nan")]
    pct = [100 * float(v) / a for v in ci]
    return f"estimator {name}: raw {a:.2f}° -> purified {b:.2f}° (Δ {pct[0]:+.1f}%, 95% CI [{pct[1]:+.1f}%, {pct[2]:+.1f}%])"


def row_line(name: str, s: RowScores) -> str:
    """One printed row: ``NAME: mean ± std, median, [calibrated], [Δ vs raw [CI]]`` (2 decimals)."""
    text = f"{name}: {s['mean']:.2f} ± {s['std']:.2f}°, median {s['median']:.2f}°"
    if "calibrated" in s:
        text += f", calibrated {s['calibrated']:.2f}°"
    vs = s.get("vs_raw")
    if vs:
        d, lo, hi = (float(v) for v in vs)
        text += f", Δ vs raw {d:+.2f}° [{lo:+.2f}, {hi:+.2f}]"
    return text


# --------------------------------------------------------------------------- a folder + labels CSV


def load_labels_csv(folder: str | Path, labels: str | Path, size: tuple[int, int]) -> GazeSet:
    """An image folder with a labels CSV: columns ``file`` and ``pitch, yaw`` (radians, MPIIGaze
    convention) or ``x, y, z`` (a gaze vector in the camera frame); ``person`` optional (enables
    the calibrated error). Images resized to ``size``. DataError naming the file and row."""
    from eyepurify.errors import DataError
    from eyepurify.imaging import resize_image
    from eyepurify.io import read_image

    folder, labels = Path(folder), Path(labels)
    try:
        with open(labels, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(labels, f"cannot read the labels CSV ({e})", "a CSV with file,pitch,yaw[,person]") from None
    if not rows:
        raise DataError(labels, "no rows", "a CSV with a header file,pitch,yaw[,person] and one row per image")
    cols = set(rows[0])
    vec = {"x", "y", "z"} <= cols
    if "file" not in cols or not (vec or {"pitch", "yaw"} <= cols):
        raise DataError(labels, f"columns {sorted(cols)}", "need file and pitch,yaw (radians) or x,y,z")
    rgb, py, persons = [], [], []
    for i, r in enumerate(rows, start=2):
        try:
            g = [float(r[k]) for k in (("x", "y", "z") if vec else ("pitch", "yaw"))]
        except (TypeError, ValueError):
            raise DataError(labels, f"row {i}: gaze is not a number", "fix the row") from None
        path = folder / str(r["file"])
        if Path(str(r["file"])).is_absolute() or ".." in Path(str(r["file"])).parts:
            raise DataError(labels, f"row {i}: file {r['file']!r} is outside {folder}", "use names relative to the folder")
        im = read_image(path)
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, 2)
        rgb.append(resize_image(np.ascontiguousarray(im[..., :3]), size))
        py.append(vector_to_pitchyaw(np.array(g)) if vec else np.array(g))
        persons.append(str(r.get("person") or ""))
    groups = np.asarray(persons) if "person" in cols else None
    return GazeSet(np.stack(rgb), np.asarray(py, np.float64), None, f"{folder} (images + {labels.name})", groups)


# --------------------------------------------------------------------------- the runs


def _load_set(args: argparse.Namespace, size: tuple[int, int]) -> GazeSet:
    from eyepurify.errors import DataError
    from eyepurify.gaze.protocol import load_gaze_set

    if not Path(args.data).exists():
        raise DataError(args.data, "does not exist", "check --data")
    if args.labels:
        return load_labels_csv(args.data, args.labels, size)
    return load_gaze_set(args.data, args.n, size, args.seed)


def load_purifier(spec: str, backend: str = "eager") -> Purifier:
    """A shipped purifier set by name (default, v1, v2, fast) or a model file, its networks on ``backend``
    (:func:`eyepurify.backends.accelerate`; eager: as loaded, what ``bench gaze`` runs)."""
    from eyepurify.backends import accelerate
    from eyepurify.purify import Purifier

    purifier = Purifier.from_pretrained(spec)
    accelerate(purifier, backend)
    return purifier


def evaluate_gaze(args: argparse.Namespace, contract: InputContract, purifiers: list[str], out: Path,
                  t0: float) -> list[str]:
    """``eyepurify evaluate`` for a gaze estimator; returns the lines to print (headline last)."""
    import time

    from eyepurify.gaze.models import load_estimator
    from eyepurify.gaze.protocol import cdf_figure
    from eyepurify.io import write_json, write_text

    model = load_estimator(args.estimator, contract, args.output, args.threads)
    test = _load_set(args, (args.size[0], args.size[1]))
    true, groups = test.pitchyaw, test.groups
    timing: dict[str, float] = {"load": time.perf_counter() - t0}
    images = {"raw": test.rgb}
    for spec in purifiers:
        t = time.perf_counter()
        images[f"purified ({spec})"] = purify_images(load_purifier(spec, args.backend), test.rgb)
        timing[f"purify {spec}"] = time.perf_counter() - t
    t = time.perf_counter()
    preds = {r: model.predict(ims) for r, ims in images.items()}
    timing["predict"] = time.perf_counter() - t
    raw_err = angular_error(preds["raw"], true)
    scores: dict[str, RowScores] = {}
    errors: dict[str, np.ndarray] = {}
    for r, p in preds.items():
        scores[r] = row_scores(p, true, groups, None if r == "raw" else raw_err, args.seed)
        errors[r] = angular_error(p, true)
    base = "mean gaze of this data (constant, oracle)"
    scores[base] = row_scores(mean_gaze_prediction(true, len(true)), true, groups, raw_err, args.seed)
    errors[base] = angular_error(mean_gaze_prediction(true, len(true)), true)
    cdf_figure(errors, out / "evaluate_cdf.png", f"{model.name} on {test.name} ({len(test)} images)")
    first = f"purified ({purifiers[0]})" if purifiers else None
    head = headline(model.name, scores["raw"], scores[first] if first else None)
    timing["total"] = time.perf_counter() - t0
    settings = {"estimator": str(args.estimator), "kind": model.kind, "data": str(args.data), "labels": args.labels,
                "n": len(test), "size": list(args.size), "seed": args.seed, "purifiers": purifiers,
                "contract": None if model.kind == "ours" else {**contract.__dict__, "size": list(contract.size),
                                                                "output": args.output},
                "calibration_samples": CALIBRATION_SAMPLES, "bootstrap": N_BOOT}
    write_json(out / "evaluate.json", {"settings": settings, "command": getattr(args, "command_line", ""),
                                        "scores": scores, "seconds": timing,
                                        "errors_deg": {r: [round(float(x), 4) for x in e] for r, e in errors.items()}})
    lines = [f"{len(test)} images of {test.name}; angular error in degrees (mean ± std, median"
             + (", per-person calibrated" if groups is not None else "") + ", paired Δ vs raw [95% CI]):"]
    lines += [row_line(r, s) for r, s in scores.items()]
    lines.append(f"time: {timing['total']:.1f} s (" + ", ".join(f"{k} {v:.1f} s" for k, v in timing.items() if k != "total") + ")")
    md = ["# Your estimator, raw vs purified", "", f"Estimator `{args.estimator}` on `{args.data}`.", "",
          "| images | mean ± std ° | median ° | calibrated ° | Δ vs raw ° [95 % CI] |", "|---|---|---|---|---|"]
    for r, s in scores.items():
        d = s.get("vs_raw")
        md.append(f"| {r} | {s['mean']:.2f} ± {s['std']:.2f} | {s['median']:.2f} | "
                  + (f"{s['calibrated']:.2f}" if "calibrated" in s else "") + " | "
                  + (f"{d[0]:+.2f} [{d[1]:+.2f}, {d[2]:+.2f}]" if d else "") + " |")
    md += ["", "![cumulative error](evaluate_cdf.png)", "", f"Command: `{getattr(args, 'command_line', '')}`", "", head]
    write_text(out / "evaluate.md", "\n".join(md) + "\n")
    return [*lines, head]


def _load_masked(args: argparse.Namespace, size: tuple[int, int]) -> tuple[np.ndarray, list[np.ndarray], str]:
    """(N×H×W×3 images, label maps, name) of the samples of --data that have label maps."""
    from eyepurify.data.detect import detect_format, open_dataset
    from eyepurify.errors import DataError
    from eyepurify.imaging import resize_image, resize_labels

    if not Path(args.data).exists():
        raise DataError(args.data, "does not exist", "check --data")
    fmt = detect_format(args.data)
    ds = open_dataset(args.data, fmt)
    n = len(ds)
    order = np.random.default_rng(args.seed).permutation(n) if args.n is not None and args.n < n else np.arange(n)
    ims, labs = [], []
    for i in order:
        s = ds[int(i)]
        if s.labels is None:
            continue
        im = s.image if s.image.ndim == 3 else np.repeat(s.image[..., None], 3, 2)
        ims.append(resize_image(np.ascontiguousarray(im[..., :3]), size))
        labs.append(resize_labels(s.labels, size))
        if args.n is not None and len(ims) >= args.n:
            break
    if not ims:
        raise DataError(args.data, f"no sample has a label map ({fmt} format, {n} samples)",
                        "use a set with masks (an image folder with masks/, renders, UnityEyes)")
    return np.stack(ims), labs, f"{args.data} ({fmt})"


def evaluate_segmentation(args: argparse.Namespace, contract: InputContract, purifiers: list[str], out: Path,
                          t0: float) -> list[str]:
    """``eyepurify evaluate --task segmentation``: mIoU (iris, pupil) and pupil-centre error, raw vs purified."""
    import time

    from eyepurify.bench.segmentation import evaluate as seg_scores
    from eyepurify.gaze.models import load_segmenter
    from eyepurify.io import write_json, write_text

    model = load_segmenter(args.estimator, contract, args.threads)
    rgb, targets, name = _load_masked(args, (args.size[0], args.size[1]))
    images = {"raw": rgb}
    for spec in purifiers:
        images[f"purified ({spec})"] = purify_images(load_purifier(spec, args.backend), rgb)
    scores = {r: seg_scores(model.predict(ims), targets).to_dict() for r, ims in images.items()}
    lines = [f"{len(rgb)} images of {name}; segmenter {model.name}:"]
    for r, s in scores.items():
        lines.append(f"{r}: mIoU(iris, pupil) {s['miou_iris_pupil']:.3f}, pupil-centre error median "
                     + (f"{s['pupil_error_pct_median']:.1f}% of the width" if s["pupil_error_pct_median"] is not None else "n/a")
                     + f" ({s['n_pupil_measured']} with a pupil)")
    first = f"purified ({purifiers[0]})" if purifiers else None
    raw = float(scores["raw"]["miou_iris_pupil"] or 0.0)  # NaN (None in the dict): 0
    head = (f"segmenter {model.name}: raw mIoU {raw:.3f}"
            + (f" -> purified {float(scores[first]['miou_iris_pupil'] or 0.0):.3f}" if first else " (no purifier)"))
    write_json(out / "evaluate.json", {"task": "segmentation", "estimator": str(args.estimator), "data": str(args.data),
                                        "n": len(rgb), "scores": scores, "seconds": time.perf_counter() - t0,
                                        "command": getattr(args, "command_line", "")})
    write_text(out / "evaluate.md", "# Your segmenter, raw vs purified\n\n" + "\n".join(f"- {x}" for x in lines) + f"\n\n{head}\n")
    return [*lines, head]

"""`eyepurify data check PATH`: detect a dataset's format, decode every sample, report."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from eyepurify.commands._args import add_max_pixels
from eyepurify.data.base import EyeDataset
from eyepurify.data.detect import FORMATS, detect_format, open_dataset
from eyepurify.engines.plan import dataset_format
from eyepurify.errors import DataError
from eyepurify.io import pixel_limit, write_json
from eyepurify.progress import progress_bar
from eyepurify.sample import PUPIL, EyeSample

#: (key, printed name) of each per-sample label count, in print order.
COUNTS = (
    ("labels", "with label map"),
    ("labels_pupil", "with pupil in label map"),
    ("pupil_center", "with pupil centre"),
    ("gaze", "with gaze"),
    ("head_pose", "with head pose"),
    ("landmarks", "with landmarks"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="inspect eye datasets")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = sub.add_parser(
        "check",
        help="detect a dataset's format, decode every sample and list bad files",
        description="Detect the format of PATH, decode every sample, count the labels each "
        "sample has and list bad files (one line each). Exit 0 when at least one sample is "
        "usable, 2 otherwise.",
    )
    c.add_argument("path", type=Path, metavar="PATH")
    c.add_argument("--format", choices=sorted({f for f, _ in FORMATS}), default=None,
                   help="the data format (default: detected)")
    c.add_argument("--json", type=Path, default=None, metavar="OUT",
                   help="also write the report as JSON to OUT")
    add_max_pixels(c)
    c.set_defaults(func=run)


def sample_counts(sample: EyeSample) -> dict[str, bool]:
    """Which labels one sample has (keys as in COUNTS)."""
    return {
        "labels": sample.labels is not None,
        "labels_pupil": sample.labels is not None and bool((sample.labels == PUPIL).any()),
        "pupil_center": sample.pupil_center is not None,
        "gaze": sample.gaze is not None,
        "head_pose": sample.head_pose is not None,
        "landmarks": bool(sample.landmarks),
    }


def check_dataset(dataset: EyeDataset, progress: bool | None = None) -> dict[str, object]:
    """Decode every sample of ``dataset``; return counts, image sizes and bad files.

    progress: None shows a bar only on a terminal.
    """
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    usable = 0
    it = progress_bar(
        dataset.iter_valid(), total=len(dataset), desc=f"check {dataset.format_name}",
        disable=None if progress is None else not progress, unit="sample",
    )
    for _, sample in it:
        usable += 1
        h, w = sample.image.shape[:2]
        sizes[f"{w}x{h}"] += 1
        counts.update(k for k, v in sample_counts(sample).items() if v)
    return {
        "samples": len(dataset),
        "usable": usable,
        "counts": {k: counts[k] for k, _ in COUNTS},
        "sizes": dict(sizes.most_common()),
        "bad": [{"path": b.path, "reason": b.reason} for b in dataset.bad],
    }


def _open(path: Path, fmt: str | None) -> tuple[str, EyeDataset]:
    """(format, dataset); any failure to open is one DataError naming the path."""
    try:
        fmt = dataset_format(path, fmt) or detect_format(path)
        return fmt, open_dataset(path, format=fmt)
    except (DataError, OSError):
        raise
    except Exception as e:  # a loader tripping over a malformed index file
        raise DataError(path, f"cannot open as a dataset ({type(e).__name__}: {e})",
                        "the dataset's index files are malformed; fix them or pass --format") from None


def run(args: argparse.Namespace) -> int:
    path: Path = args.path
    with pixel_limit(args.max_pixels):
        fmt, dataset = _open(path, args.format)
        result = check_dataset(dataset)
    sizes: dict[str, int] = result["sizes"]  # type: ignore[assignment]
    counts: dict[str, int] = result["counts"]  # type: ignore[assignment]
    bad: list[dict[str, str]] = result["bad"]  # type: ignore[assignment]
    print(f"{path}: format {fmt}, {result['samples']} samples, {result['usable']} usable, "
          f"{len(bad)} bad")
    if sizes:
        shown = ", ".join(f"{k} ({n})" for k, n in list(sizes.items())[:5])
        more = f", +{len(sizes) - 5} more" if len(sizes) > 5 else ""
        print(f"  image sizes (W x H): {shown}{more}")
    for key, name in COUNTS:
        print(f"  {name:<26}{counts[key]:>8}")
    if bad:
        print(f"bad files ({len(bad)}):")
        for b in bad:
            print(f"  {b['reason']}")
    if args.json is not None:
        write_json(args.json, {"path": str(path), "format": fmt, **result})
    return 0 if result["usable"] else 2

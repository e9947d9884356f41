"""`eyepurify segment INPUT... --out DIR`: label maps and colour overlays for eye images.

Writes ``DIR/labels/<name>.png`` (uint8 label map, 0 skin, 1 sclera, 2 iris, 3 pupil),
``DIR/overlays/<name>.png`` (classes blended over the image), ``DIR/manifest.json``
(per-input status, pupil centre and how it was fitted) and ``DIR/report.txt`` (bad
inputs, one line each). Inputs and names as for ``purify`` (:mod:`eyepurify.engines.plan`): explicit
files keep their path relative to their common folder, a folder is a dataset (an image
folder keeps its file names, other formats get indexed names), ``x_2`` when two would
collide. Exit 0: all done; 1: some inputs failed; 2: nothing done.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from eyepurify.commands._args import (
    add_device_arguments,
    add_run_arguments,
    device_settings,
    print_skipped,
    run_options,
    size_arg,
)
from eyepurify.errors import EyepurifyError

if TYPE_CHECKING:
    from eyepurify.engines.jobs import SegmentConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="predict skin/sclera/iris/pupil label maps for eye images",
                       description="Segment eye images (files, folders of images, globs) into label maps (0 skin, 1 sclera, 2 iris, 3 pupil) with colour overlays. Exit 0: all done; 1: some inputs failed (see report.txt); 2: nothing could be done.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images, globs, dataset folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", default=None, help="segmentation model file or training checkpoint (default: the shipped one)")
    p.add_argument("--no-orphan-fix", action="store_true", help="keep the raw prediction (no orphan-label fix)")
    p.add_argument("--pupil-factor", type=float, default=0.4, help="orphan fix: pupil radius / iris radius (default 0.4)")
    p.add_argument(
        "--size",
        type=size_arg,
        default=None,
        help="override: every whole image resized to HxW, no eye normalisation (default: the trained eye scale)",
    )
    p.add_argument(
        "--eye-scale",
        choices=["auto", "off"],
        default="auto",
        help="auto: find the eye and segment it at the model's trained eye scale; off: every image resized to the training size",
    )
    add_run_arguments(p, "segmenter")
    add_device_arguments(p, ray=True)
    p.set_defaults(func=run)


def config(args: argparse.Namespace, backend: str) -> SegmentConfig:
    """The run's frozen config from its arguments (``backend`` resolved)."""
    from eyepurify.engines.jobs import SegmentConfig

    return SegmentConfig(model=args.model, orphan_fix=not args.no_orphan_fix, pupil_factor=args.pupil_factor,
                         size=args.size, eye_scale=args.eye_scale, backend=backend, batch=args.batch,
                         **device_settings(args))


def run(args: argparse.Namespace) -> int:
    from eyepurify.engines.run import run_batch

    if args.batch < 1:
        raise EyepurifyError("--batch must be at least 1")
    if not args.pupil_factor > 0:
        raise EyepurifyError("--pupil-factor must be > 0")
    backend, options = run_options(args)
    summary = run_batch(config(args, backend), args.inputs, Path(args.out), options)
    print_skipped(summary.failed, summary.report)
    msg = f"segmented {summary.done} image(s) into {summary.out}"
    if summary.skipped:
        msg += f" ({summary.skipped} already done)"
    print(msg + f"; {len(summary.failed)} failed" + (f" (see {summary.report})" if summary.failed else ""))
    return summary.exit_code

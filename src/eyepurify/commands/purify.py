"""`eyepurify purify INPUT... --out DIR`: arguments → :func:`eyepurify.engines.run.run_batch` → summary.

Images, dataset samples and videos (``--faces``: face photos and videos) run as one batch
with resume, ``--shard`` and ``--engine ray`` alike (:mod:`eyepurify.engines`).
"""

from __future__ import annotations

import argparse
import sys
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
    from eyepurify.engines.jobs import PurifyConfig
    from eyepurify.engines.run import Summary

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("purify", help="purify eye images, folders, datasets or videos",
                       description="Purify images (files, folders, globs, any dataset format) and videos into the synthetic style. Outputs keep their input's name and, with --output full, its size (dataset samples that are files their relative names; .mat/.h5 entries indexed names). Face photos and videos need --faces. Exit 0: all done; 1: some inputs failed (see report.txt); 2: nothing could be done; 130: interrupted (continue with --resume).")
    p.add_argument("inputs", nargs="+", help="image files, folders, globs, dataset folders, videos")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", default=None, help="purifier model file, or a shipped set: 'default', 'v1' (the first release), "
                   "'v2', 'fast' (purifiers and segmenters distilled from v2, about a fifth of the FLOPs), 'fast_v1' "
                   "(distilled from v1); --segmenter still overrides")
    p.add_argument("--masks", default=None, help="folder of label maps named <input stem>.png")
    p.add_argument("--segmenter", default="default", help="segmenter model file used when no mask is given")
    p.add_argument(
        "--segment-size",
        type=size_arg,
        default=None,
        help="override: run the segmenter on every whole image resized to HxW (default: at its trained eye scale)",
    )
    p.add_argument(
        "--eye-scale",
        choices=["auto", "off"],
        default="auto",
        help="auto: find the eye and purify it at the model's trained eye scale, pasted back into the "
        "original (normalised eye patches of the trained aspect are resized whole to the training size); "
        "off: run at each image's own size",
    )
    p.add_argument(
        "--output",
        choices=["full", "crop"],
        default="full",
        help="full: the input's size; crop: the normalised eye patch at the model's size (box in manifest.json)",
    )
    p.add_argument("--predict-masks", action="store_true", help="ignore dataset labels; segment instead")
    p.add_argument("--format", default=None, help="dataset format of folder inputs (default: detect)")
    add_run_arguments(p, "purifier")
    add_face_arguments(p)
    p.add_argument("--no-face-check", action="store_true",
                   help="without --faces, inputs that look like face photos are refused ('add --faces'; "
                   "needs eyepurify[faces] installed to check): this skips that check")
    add_device_arguments(p, ray=True)
    p.set_defaults(func=run)


def add_face_arguments(p: argparse.ArgumentParser) -> None:
    """The options of face mode (`purify --faces`)."""
    g = p.add_argument_group("faces (photos and videos of faces; needs: pip install 'eyepurify[faces]')")
    g.add_argument("--faces", action="store_true",
                   help="inputs are face photos or videos: find faces and eyes (MTCNN), normalise each eye "
                   "(MPIIGaze-style), purify it and paste it back")
    g.add_argument("--temporal", choices=["off", "flow"], default="flow",
                   help="videos: flow: blend each purified eye with the previous output warped by optical flow "
                   "(default: less flicker); off: frame by frame")
    g.add_argument("--focal", type=float, default=None,
                   help="camera focal length in pixels (default: the image width)")
    g.add_argument("--max-faces", type=int, default=None, help="photos: purify at most N faces (largest first)")


def config(args: argparse.Namespace, backend: str) -> PurifyConfig:
    """The run's frozen config from its arguments (``backend`` resolved)."""
    from eyepurify.engines.jobs import FaceOptions, PurifyConfig

    faces = FaceOptions(args.temporal, args.focal, args.max_faces) if args.faces else None
    return PurifyConfig(model=args.model, segmenter=args.segmenter, segment_size=args.segment_size,
                        eye_scale=args.eye_scale, output=args.output, masks=args.masks,
                        predict_masks=args.predict_masks, format=args.format, backend=backend, batch=args.batch,
                        faces=faces, face_check=not getattr(args, "no_face_check", False), **device_settings(args))


def execute(args: argparse.Namespace) -> Summary:
    """The run ``args`` ask for (:func:`eyepurify.engines.run.run_batch`), without printing."""
    from eyepurify.engines.run import run_batch

    if args.batch < 1:
        raise EyepurifyError("--batch must be at least 1")
    backend, options = run_options(args)
    return run_batch(config(args, backend), args.inputs, Path(args.out), options)


def run(args: argparse.Namespace) -> int:
    summary = execute(args)
    print_skipped(summary.failed, summary.report)
    print(f"purified {summary.done} item(s) into {summary.out}; {len(summary.failed)} failed"
          + (f" (see {summary.report})" if summary.failed else ""))
    if summary.notes:
        print(f"{len(summary.notes)} item(s) with a note, e.g. {summary.notes[0][1]} (see {summary.report})",
              file=sys.stderr)
    return summary.exit_code

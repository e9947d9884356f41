"""`eyepurify evaluate --estimator MODEL --data DIR --out DIR`: your model on raw vs purified eyes."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from eyepurify.commands._args import size_arg
from eyepurify.errors import EyepurifyError

HELP = "your gaze estimator (ONNX, TorchScript, ours) on raw vs purified labelled eyes"


def register(sub: argparse._SubParsersAction) -> None:
    from eyepurify.backends import BACKENDS

    p = sub.add_parser(
        "evaluate", help=HELP,
        description=(
            "Run a gaze estimator (or, with --task segmentation, a segmenter) on the raw and on the "
            "purified images of a labelled set and write the comparison: mean ± std and median angular "
            "error, the cumulative error curve (OUT/evaluate_cdf.png), per-person calibrated error "
            "(a linear correction fitted on 9 samples of each person, scored on the rest; where the data "
            "names persons), the mean-gaze baseline, and the paired change with a bootstrap 95%% interval. "
            "The last line is the headline. Results in OUT/evaluate.json and OUT/evaluate.md."
        ),
        epilog=(
            "MODEL: an ONNX file (run by ONNX Runtime), a TorchScript file, a gaze-cnn file written by "
            "'eyepurify train-gaze', or 'default' (the shipped estimator). Foreign models get the input "
            "contract of the flags (MPIIGaze defaults: 36x60 gray in [0, 1], NCHW float32) and return "
            "(pitch, yaw) in radians (--output pitchyaw) or a 3-D gaze vector in the camera frame "
            "(--output vector; x right, y down, z forward, (0, 0, -1) looks into the camera). "
            "Our own model files ignore the contract flags."
        ),
    )
    p.add_argument("--estimator", required=True, metavar="MODEL",
                   help="ONNX, TorchScript or eyepurify model file, or 'default' (the shipped model)")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="labelled set: any format 'eyepurify data check' reads (MPIIGaze, Columbia, UnityEyes, "
                        "renders), or an image folder with --labels")
    p.add_argument("--labels", default=None, metavar="CSV",
                   help="for an image folder: CSV with columns file,pitch,yaw (radians) or file,x,y,z, and "
                        "optionally person")
    p.add_argument("--purifier", nargs="+", default=["default"], metavar="P",
                   help="purifiers to compare with raw: default, v1, v2, fast, a model file, or none (default: default)")
    p.add_argument("--out", required=True, help="output folder (evaluate.json, evaluate.md, evaluate_cdf.png)")
    p.add_argument("--task", choices=["gaze", "segmentation"], default="gaze",
                   help="gaze (default) or segmentation: mIoU and pupil-centre error of a segmenter on a set with masks")
    g = p.add_argument_group("input and output contract of a foreign (ONNX / TorchScript) model")
    g.add_argument("--input-size", type=size_arg, default=None, metavar="HxW",
                   help="model input height x width (default 36x60; segmentation 72x120)")
    c = g.add_mutually_exclusive_group()
    c.add_argument("--gray", dest="gray", action="store_true", default=None,
                   help="one gray channel (default for gaze)")
    c.add_argument("--color", dest="gray", action="store_false", help="three RGB channels (default for segmentation)")
    g.add_argument("--range", choices=["0-1", "0-255", "imagenet"], default="0-1",
                   help="pixel values: 0-1 (default), 0-255, or imagenet (0-1 minus the ImageNet mean, over its std)")
    g.add_argument("--equalize", action="store_true", help="histogram-equalise each image first (MPIIGaze's preprocessing)")
    g.add_argument("--output", choices=["pitchyaw", "vector"], default="pitchyaw",
                   help="model output: pitchyaw (N×2 radians, default) or vector (N×3)")
    p.add_argument("--n", type=int, default=None, help="use at most N samples, drawn with --seed (default: all)")
    p.add_argument("--size", type=size_arg, default=(72, 120),
                   help="working size HxW: images are read and purified at it (default 72x120)")
    p.add_argument("--seed", type=int, default=0, help="sample draw, calibration split and bootstrap seed")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: its own choice)")
    p.add_argument("--backend", default=None, choices=BACKENDS,
                   help="purifier backend (default: $EYEPURIFY_BACKEND, else auto; see 'purify --help')")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eyepurify.commands._args import backend_name
    from eyepurify.gaze.models import InputContract

    t0 = time.perf_counter()
    args.backend = backend_name(args)
    if args.n is not None and args.n < 1:
        raise EyepurifyError("--n must be at least 1")
    seg = args.task == "segmentation"
    contract = InputContract(
        size=tuple(args.input_size or ((72, 120) if seg else (36, 60))),
        gray=(not seg) if args.gray is None else bool(args.gray), range=args.range, equalize=bool(args.equalize))
    purifiers = [p for p in args.purifier if p != "none"]
    if len(purifiers) != len(set(purifiers)):
        raise EyepurifyError("--purifier: each purifier once")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise EyepurifyError(f"{out}: exists and is not a folder; choose another --out")
    if seg:
        from eyepurify.bench.evaluate import evaluate_segmentation

        lines = evaluate_segmentation(args, contract, purifiers, out, t0)
    else:
        from eyepurify.bench.evaluate import evaluate_gaze

        lines = evaluate_gaze(args, contract, purifiers, out, t0)
    print("\n".join(lines))
    return 0

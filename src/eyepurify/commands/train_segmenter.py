"""`eyepurify train-segmenter DATA... --out RUN`: train the coarse segmentation network."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys

from eyepurify.commands._args import size_arg
from eyepurify.errors import EyepurifyError
from eyepurify.models.segmentation import PRESETS
from eyepurify.train.segmenter import AUGMENTS, SegmenterConfig


def register(sub: argparse._SubParsersAction) -> None:
    d = SegmenterConfig()
    p = sub.add_parser(
        "train-segmenter",
        help="train the coarse skin/sclera/iris/pupil segmentation network",
        description=(
            "Train the segmentation network on labelled eye data (any format open_dataset "
            "reads, e.g. a folder with images/ and masks/). Writes RUN/config.json, "
            "RUN/checkpoint.safetensors (Ctrl-C writes one and stops), RUN/log.jsonl, RUN/metrics.json "
            "and, when finished, RUN/model.safetensors for `eyepurify segment --model`."
        ),
    )
    p.add_argument("data", nargs="+", metavar="DATA", help="dataset folders/files with label maps")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder")
    p.add_argument("--steps", type=int, default=d.steps, help=f"optimisation steps (default {d.steps})")
    p.add_argument("--batch", type=int, default=d.batch, help=f"batch size (default {d.batch})")
    p.add_argument("--size", type=size_arg, default=d.size, help="training size HxW (default 72x120)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"the one seed of the run (default {d.seed})")
    p.add_argument("--augment", choices=AUGMENTS, default=d.augment, help=f"augmentation (default {d.augment})")
    p.add_argument("--model", choices=sorted(PRESETS), default=d.model, help=f"network preset (default {d.model})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"AdamW learning rate (default {d.lr})")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help=f"AdamW weight decay (default {d.weight_decay})")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction, help=f"held-out share for validation mIoU (default {d.val_fraction})")
    p.add_argument("--val-every", type=int, default=d.val_every, help=f"validate every N steps (default {d.val_every})")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help=f"checkpoint every N steps (default {d.checkpoint_every})")
    p.add_argument("--micro-batches", type=int, default=None,
                   help="split each batch into M parts run one after another (BatchNorm per part); under torchrun "
                        "the parts go to the processes (default: the number of processes)")
    p.add_argument("--format", default=None, help="data format (default: detected)")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN from its checkpoint")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a terminal)")
    from eyepurify.commands._args import add_device_arguments

    add_device_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eyepurify.train.distributed import process_count
    from eyepurify.train.segmenter import train

    try:
        config = SegmenterConfig(
            data=tuple(args.data), format=args.format, steps=args.steps, batch=args.batch,
            size=tuple(args.size), seed=args.seed, augment=args.augment, model=args.model,
            lr=args.lr, weight_decay=args.weight_decay, val_fraction=args.val_fraction,
            val_every=args.val_every, checkpoint_every=args.checkpoint_every,
            micro_batches=args.micro_batches or process_count(),
        )
    except ValueError as e:
        raise EyepurifyError(f"invalid settings: {e}") from None
    result = train(config, args.out, resume=args.resume, progress=args.progress)
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 reports
        return 128 + (result.signum or signal.SIGINT) if result.interrupted else 0
    for b in result.bad:
        print(f"skipped: {b.reason}", file=sys.stderr)
    val = "n/a" if math.isnan(result.val_miou) else f"{result.val_miou:.3f}"
    if result.interrupted:
        print(f"interrupted at step {result.step}: checkpoint in {result.out}, no model file; continue with --resume")
        return 128 + (result.signum or signal.SIGINT)
    print(f"trained {result.step} steps; validation mIoU {val}; model in {result.out / 'model.safetensors'}")
    return 0

"""`eyepurify distill --kind purifier|segmenter --data DIR... --out RUN`: a faster student of a shipped network."""

from __future__ import annotations

import argparse

from eyepurify.commands._args import size_arg
from eyepurify.errors import EyepurifyError
from eyepurify.train.distill import KINDS, LOSSES, DistillConfig


def register(sub: argparse._SubParsersAction) -> None:
    d = DistillConfig()
    p = sub.add_parser(
        "distill",
        help="distil a shipped network into a narrower, faster student",
        description=(
            "Train a student network to reproduce a teacher (default: the shipped purifier or "
            "segmenter) on augmented renders. Writes RUN/config.json, RUN/checkpoint.safetensors "
            "(Ctrl-C writes one and stops; continue with --resume), RUN/log.jsonl and, when finished, "
            "RUN/model.safetensors (with the teacher's eye scale and SHA-256)."
        ),
    )
    p.add_argument("--kind", choices=KINDS, required=True, help="which network to distil")
    p.add_argument("--teacher", default=None, metavar="FILE", help="teacher model file (default: the shipped model of --kind)")
    p.add_argument("--segmenter", default=None, metavar="FILE",
                   help="--kind purifier: segmenter predicting the student's masks (default: the shipped one)")
    p.add_argument("--net", default=d.net, metavar="PRESET", help=f"student preset (default {d.net})")
    p.add_argument("--data", nargs="+", required=True, metavar="DIR", help="render folders with label maps (eyepurify render)")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder")
    p.add_argument("--size", type=size_arg, default=d.size, help="training size HxW (default 72x120)")
    p.add_argument("--steps", type=int, default=d.steps, help=f"optimisation steps (default {d.steps})")
    p.add_argument("--batch", type=int, default=d.batch, help=f"batch size (default {d.batch})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"AdamW learning rate (default {d.lr})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"the one seed of the run (default {d.seed})")
    p.add_argument("--loss", choices=LOSSES, default=d.loss, help=f"--kind purifier: loss to the teacher's output (default {d.loss})")
    p.add_argument("--predicted-masks", type=float, default=d.predicted_masks,
                   help=f"--kind purifier: share of samples with predicted instead of true masks (default {d.predicted_masks})")
    p.add_argument("--temperature", type=float, default=d.temperature, help=f"--kind segmenter: softening temperature T (default {d.temperature})")
    p.add_argument("--kd-weight", type=float, default=d.kd_weight,
                   help=f"--kind segmenter: weight of the KL term; 1 − it weighs the cross-entropy (default {d.kd_weight})")
    p.add_argument("--val-every", type=int, default=d.val_every, help=f"validate every N steps (default {d.val_every})")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help=f"checkpoint every N steps (default {d.checkpoint_every})")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN from its checkpoint (bit-exact)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a terminal)")
    from eyepurify.commands._args import add_device_arguments

    add_device_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eyepurify.train.distill import distill

    try:
        config = DistillConfig(
            kind=args.kind, data=tuple(args.data), teacher=args.teacher, segmenter=args.segmenter, net=args.net,
            size=tuple(args.size), steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed, loss=args.loss,
            predicted_masks=args.predicted_masks, temperature=args.temperature, kd_weight=args.kd_weight,
            val_every=args.val_every, checkpoint_every=args.checkpoint_every,
        )
    except ValueError as e:
        raise EyepurifyError(f"invalid settings: {e}") from None
    result = distill(config, args.out, resume=args.resume, progress=args.progress)
    val = ", ".join(f"{k} {v:.4g}" for k, v in result.val.items()) or "n/a"
    print(f"distilled {result.step} steps; validation {val}; model in {result.model}")
    return 0

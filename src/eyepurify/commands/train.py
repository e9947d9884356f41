"""`eyepurify train`: train a feed-forward purifier (ours or the Johnson baseline)."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

from eyepurify.commands._args import size_arg
from eyepurify.errors import EyepurifyError
from eyepurify.losses.total import LossConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a purifier on content images and synthetic style images")
    p.add_argument("--content", nargs="+", default=(),
                   help="content datasets: labelled (renders) and/or real images without label maps (labelled by --content-segmenter at the canonical eye scale)")
    p.add_argument("--pairs", nargs="+", default=(), metavar="RENDERS",
                   help="paired render folders (`eyepurify render --domain both`): the wild render is the input, the indoor "
                        "render of the same draw its target (purifier v2; instead of --content)")
    p.add_argument("--content-segmenter", default="default",
                   help="segmenter model for content without label maps (default: the shipped one; 'none' skips such content)")
    p.add_argument("--style", nargs="+", default=None,
                   help="style images (with masks/<stem>.png) or labelled folders (default with --pairs: their indoor renders)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--method", choices=["ours", "johnson"], default="ours")
    p.add_argument("--net", default="small", help="network preset: eyepurify, small, johnson, v2, v2_wide, test_tiny (see models/transformer.py)")
    p.add_argument("--backbone", default="lite0", help="loss network: lite0, vgg19, random (tests only)")
    p.add_argument("--vgg19-weights", default=None)
    p.add_argument("--size", type=size_arg, default=(72, 120), help="training crop HxW")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--alpha", type=float, default=None, help="content weight α (default 1e2)")
    p.add_argument("--beta", type=float, default=None, help="style weight β (default 1e4, the paper's for VGG-19; with the lite0 loss network use ~10: 1e4 collapses to a template eye, see docs/sim2real.md)")
    p.add_argument("--theta", type=float, default=None, help="TV weight θ on the 0–255 scale")
    p.add_argument("--attention-weight", type=float, default=1e3)
    v2 = p.add_argument_group("purifier v2 terms (need --pairs)")
    v2.add_argument("--pixel-weight", type=float, default=0.0, help="L1 to the paired indoor render ([0, 1] scale)")
    v2.add_argument("--feature-weight", type=float, default=0.0, help="loss-network feature distance to the paired indoor render")
    v2.add_argument("--paper-weight", type=float, default=1.0, help="scale of the paper's objective (0: off)")
    v2.add_argument("--task-segmenter", default=None, help="frozen segmenter trained on indoor renders only")
    v2.add_argument("--seg-weight", type=float, default=0.0, help="weight of its cross-entropy on the output")
    v2.add_argument("--task-gaze", default=None, help="frozen gaze CNN trained on indoor renders only (eyepurify train-gaze)")
    v2.add_argument("--gaze-weight", type=float, default=0.0, help="weight of its 1 − cos gaze error on the output")
    v2.add_argument("--mask-input", choices=["labels", "predicted", "none"], default="labels",
                    help="what the network reads beside the image: the true label maps, the shipped segmenter's, or none")
    v2.add_argument("--swag", action="store_true", help="softmax transform of the loss-network features (Wang et al. 2021)")
    p.add_argument("--content-limit", type=int, default=None)
    p.add_argument("--content-augment", choices=["none", "geometric", "strong"], default="none",
                   help="augment content batches (small real sets): random similarity; 'strong' adds light/colour/noise/blur")
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--sample-every", type=int, default=200)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--micro-batches", type=int, default=None,
                   help="split each batch into M parts run one after another (BatchNorm per part); under torchrun "
                        "the parts go to the processes (default: the number of processes; on --resume: the run's)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out bit-exactly")
    from eyepurify.commands._args import add_device_arguments

    add_device_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eyepurify.train.distributed import process_count
    from eyepurify.train.purifier import PurifierTrainConfig, train_purifier

    loss = LossConfig()
    over = {k: getattr(args, k) for k in ("alpha", "beta", "theta") if getattr(args, k) is not None}
    if over:
        loss = replace(loss, **over)
    try:
        cfg = PurifierTrainConfig(
            content=tuple(args.content), style=tuple(args.style or args.pairs), method=args.method, net=args.net,
            pairs=tuple(args.pairs), pixel_weight=args.pixel_weight, feature_weight=args.feature_weight,
            paper_weight=args.paper_weight, task_segmenter=args.task_segmenter, seg_weight=args.seg_weight,
            task_gaze=args.task_gaze, gaze_weight=args.gaze_weight, mask_input=args.mask_input, swag=args.swag,
            backbone=args.backbone, vgg19_weights=args.vgg19_weights, size=args.size, batch=args.batch,
            steps=args.steps, lr=args.lr, seed=args.seed, attention_weight=args.attention_weight,
            content_limit=args.content_limit, content_augment=args.content_augment,
            content_segmenter=None if args.content_segmenter in ("none", "") else args.content_segmenter, val_every=args.val_every, sample_every=args.sample_every,
            checkpoint_every=args.checkpoint_every, loss=loss,
            micro_batches=args.micro_batches or process_count(),
        )
    except ValueError as e:
        raise EyepurifyError(str(e)) from None
    path = train_purifier(cfg, args.out, resume=args.resume)
    if process_count() == 1 or os.environ.get("RANK", "0") == "0":
        print(f"model written to {path}")
    return 0

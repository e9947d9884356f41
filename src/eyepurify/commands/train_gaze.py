"""`eyepurify train-gaze DATA... --out RUN`: train the paper's gaze CNN (METHOD §11) on labelled eyes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eyepurify.commands._args import size_arg
from eyepurify.errors import EyepurifyError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-gaze",
        help="train a gaze CNN on labelled eye images (renders, UnityEyes, MPIIGaze, ...)",
        description=(
            "Train the paper's gaze CNN (36x60 gray in, gaze out; early stopping on a held-out "
            "split) on every sample with a gaze label in DATA. Writes RUN/model.safetensors "
            "(a gaze-cnn model file), RUN/config.json and RUN/log.jsonl."
        ),
    )
    p.add_argument("data", nargs="+", metavar="DATA", help="dataset folders with gaze labels")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder (new or empty)")
    p.add_argument("--model", default="paper", help="network: paper (default), small (the shipped estimator) or test_tiny")
    p.add_argument("--n", type=int, default=None, help="use at most N samples per dataset (default: all)")
    p.add_argument("--size", type=size_arg, default=(72, 120), help="working size the images are read at (default 72x120)")
    p.add_argument("--seed", type=int, default=0, help="the one seed: split, initial weights, batch order")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=100, help="at most this many epochs (default 100)")
    p.add_argument("--patience", type=int, default=5, help="stop after N epochs without a better validation error")
    p.add_argument("--minutes", type=float, default=None, help="stop after this many minutes of training")
    from eyepurify.commands._args import add_device_arguments

    add_device_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from eyepurify.gaze.cnn import CNNEstimator
    from eyepurify.gaze.protocol import load_gaze_set
    from eyepurify.io import write_json, write_text

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EyepurifyError(f"{out}: exists and is not an empty folder; choose a new --out")
    sets = [load_gaze_set(d, args.n, tuple(args.size), args.seed) for d in args.data]
    gray = np.concatenate([s.gray() for s in sets])
    py = np.concatenate([s.pitchyaw for s in sets])
    est = CNNEstimator(model=args.model, seed=args.seed, batch=args.batch, lr=args.lr, max_epochs=args.epochs,
                       patience=args.patience, time_limit_s=None if args.minutes is None else 60 * args.minutes)
    est.fit(gray, py)
    config = {"data": [str(d) for d in args.data], "n": args.n, "size": list(args.size), "seed": args.seed,
              "model": args.model, "batch": args.batch, "lr": args.lr, "epochs": args.epochs,
              "patience": args.patience, "minutes": args.minutes, "samples": len(py),
              "command": getattr(args, "command_line", "")}
    write_json(out / "config.json", config)
    write_text(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in est.log))
    best = min(r["val_error_deg"] for r in est.log)
    path = est.save(out / "model.safetensors", {"train": config, "val_error_deg": round(best, 4)})
    print(f"trained {est.epochs} epochs on {len(py)} samples; validation error {best:.2f}°; model in {path}")
    return 0

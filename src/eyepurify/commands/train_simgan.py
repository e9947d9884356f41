"""`eyepurify train-simgan --synthetic PATH... --real PATH... --out DIR`: the SimGAN baseline."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from eyepurify.commands._args import size_arg
from eyepurify.errors import DataError, EyepurifyError
from eyepurify.io import IMAGE_SUFFIXES, list_images, read_image

QUICK = {"model": "test_tiny", "steps": 30, "batch": 8, "pretrain_refiner_steps": 10,
         "pretrain_disc_steps": 5, "eval_count": 16, "history_size": 64}


def register(sub: argparse._SubParsersAction) -> None:
    from eyepurify.models.simgan import REFINER_PRESETS
    from eyepurify.train.simgan import OPTIMIZERS, SimGANConfig

    d = SimGANConfig()
    p = sub.add_parser(
        "train-simgan",
        help="train the SimGAN refiner baseline (synthetic → realistic)",
        description=(
            "Train a SimGAN refiner (Shrivastava et al. 2017) on synthetic images and unlabelled "
            "real images (image folders or any dataset open_dataset reads), resized to --size "
            "(area interpolation when shrinking) and converted to gray for --channels 1. Writes "
            "OUT/config.json, OUT/checkpoint.safetensors (Ctrl-C writes one and stops; --resume "
            "continues), OUT/log.jsonl and, when finished, OUT/refiner.safetensors, OUT/log.json and "
            "OUT/samples.png (synthetic vs refined only). Reports mean |refined - input| in grey levels and "
            "whether the refiner stayed near the identity (< 1 grey level)."
        ),
    )
    p.add_argument("--synthetic", nargs="+", required=True, metavar="PATH", help="synthetic image folders/datasets/files")
    p.add_argument("--real", nargs="+", required=True, metavar="PATH", help="real image folders/datasets/files (labels unused)")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder")
    p.add_argument("--size", type=size_arg, default=d.size, help="image size HxW (default 36x60)")
    p.add_argument("--channels", type=int, choices=(1, 3), default=d.channels, help="1 gray or 3 RGB (default 1)")
    p.add_argument("--steps", type=int, default=None, help=f"adversarial refiner updates (default {d.steps}; quick {QUICK['steps']})")
    p.add_argument("--batch", type=int, default=None, help=f"batch size (default {d.batch}; quick {QUICK['batch']})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"the one seed of the run (default {d.seed})")
    p.add_argument("--model", choices=sorted(REFINER_PRESETS), default=None, help="network preset (default: default; quick: test_tiny)")
    p.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default {d.lr})")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer, help=f"optimizer (default {d.optimizer}; the paper used sgd)")
    p.add_argument("--reg-weight", type=float, default=d.reg_weight, help=f"self-regularisation weight λ (default {d.reg_weight})")
    p.add_argument("--d-steps-per-g", type=float, default=d.d_steps_per_g, help=f"discriminator updates per refiner update (default {d.d_steps_per_g})")
    p.add_argument("--pretrain-refiner-steps", type=int, default=None, help=f"default {d.pretrain_refiner_steps}")
    p.add_argument("--pretrain-disc-steps", type=int, default=None, help=f"default {d.pretrain_disc_steps}")
    p.add_argument("--history-size", type=int, default=None, help=f"refined-image history for D (default {d.history_size})")
    p.add_argument("--max-images", type=int, default=None, metavar="N", help="use at most N images per side (a seeded random subset)")
    p.add_argument("--quick", action="store_true", help="tiny settings for a smoke test (seconds)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out bit-exactly (same settings and images; --steps may grow)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a terminal)")
    from eyepurify.commands._args import add_device_arguments

    add_device_arguments(p)
    p.set_defaults(func=run)


def _paths(path: Path) -> Iterator[Path] | None:
    """Image files of a plain folder (directly or in images/), a single image file, else None."""
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return iter([path])
    if path.is_dir():
        for folder in (path, path / "images"):
            if folder.is_dir():
                found = list_images(folder)
                if found:
                    return iter(found)
    return None


def _rgb_images(path: Path, bad: list[str]) -> Iterator[np.ndarray]:
    """H×W×3 uint8 images of ``path`` (folder, image file or any open_dataset format)."""
    if not path.exists():
        raise DataError(path, "does not exist", "check the path")
    files = _paths(path)
    if files is not None:
        for f in files:
            try:
                yield read_image(f)
            except DataError as e:
                bad.append(str(e))
        return
    from eyepurify.data.detect import open_dataset

    ds = open_dataset(path)
    for _, sample in ds.iter_valid():
        yield sample.image
    bad.extend(f"{b.path}: {b.reason}" for b in ds.bad)


def to_model_image(rgb: np.ndarray, size: tuple[int, int], channels: int) -> np.ndarray:
    """uint8 H×W×3 (or H×W) → uint8 size×channels: gray by cv2 for 1 channel, resized by the imaging policy."""
    import cv2

    from eyepurify.imaging import resize_image

    a = np.asarray(rgb)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if channels == 1:
        a = cv2.cvtColor(np.ascontiguousarray(a[..., :3]), cv2.COLOR_RGB2GRAY)[..., None]
    a = resize_image(a, size)
    return np.ascontiguousarray(a, dtype=np.uint8)


def load_image_set(paths: list[str], size: tuple[int, int], channels: int, name: str,
                   max_images: int | None = None, seed: int = 0) -> np.ndarray:
    """All images of ``paths`` as uint8 N×H×W×C; unreadable files are reported and skipped."""
    bad: list[str] = []
    out = [to_model_image(im, size, channels) for p in paths for im in _rgb_images(Path(p), bad)]
    for b in bad[:10]:
        print(f"skipped: {b}", file=sys.stderr)
    if len(bad) > 10:
        print(f"skipped: ... and {len(bad) - 10} more", file=sys.stderr)
    if not out:
        raise EyepurifyError(f"no readable {name} images in {' '.join(paths)} (pass folders or datasets of eye images)")
    arr = np.stack(out)
    if max_images is not None and len(arr) > max_images:
        idx = np.sort(np.random.default_rng([seed, 7]).choice(len(arr), size=max_images, replace=False))
        arr = arr[idx]
    return arr


def run(args: argparse.Namespace) -> int:
    from eyepurify.train.distributed import process_count
    from eyepurify.train.simgan import REFINER_NAME, SimGANConfig, train_simgan

    if process_count() > 1:
        raise EyepurifyError("train-simgan runs in one process; start it without torchrun (data-parallel "
                             "training covers `train` and `train-segmenter`)")
    if args.max_images is not None and args.max_images < 1:
        raise EyepurifyError(f"--max-images {args.max_images} must be at least 1")
    base: dict[str, Any] = dict(QUICK) if args.quick else {}
    given = {
        "steps": args.steps, "batch": args.batch, "model": args.model,
        "pretrain_refiner_steps": args.pretrain_refiner_steps,
        "pretrain_disc_steps": args.pretrain_disc_steps, "history_size": args.history_size,
    }
    base.update({k: v for k, v in given.items() if v is not None})
    try:
        cfg = SimGANConfig(
            size=tuple(args.size), channels=args.channels, seed=args.seed, lr=args.lr,
            optimizer=args.optimizer, reg_weight=args.reg_weight, d_steps_per_g=args.d_steps_per_g, **base,
        )
    except ValueError as e:
        raise EyepurifyError(f"invalid settings: {e}") from None
    synthetic = load_image_set(args.synthetic, cfg.size, cfg.channels, "synthetic", args.max_images, cfg.seed)
    real = load_image_set(args.real, cfg.size, cfg.channels, "real", args.max_images, cfg.seed)
    result = train_simgan(cfg, synthetic, real, run_dir=args.out, progress=args.progress, resume=args.resume)
    log = result.log
    verdict = "NEAR IDENTITY (the refiner barely changes its input)" if log["near_identity"] else "not near identity"
    if log["collapsed"]:
        verdict = "COLLAPSED (the refiner outputs one constant image; lower --lr or raise --reg-weight)"
    print(
        f"trained on {len(synthetic)} synthetic / {len(real)} real images; mean |refined - input| "
        f"{log['mean_abs_diff']:.2f} grey levels: {verdict}; mean-intensity gap to real "
        f"{log['mean_gap_before']:.1f} -> {log['mean_gap_after']:.1f}; refiner in {Path(args.out) / REFINER_NAME}"
    )
    return 0

"""Training the coarse segmentation network (METHOD §4).

``train(config, out)`` reads as: load labelled samples → split train/validation → build
model, optimizer and batch source → loop (augment, cross-entropy, AdamW) with periodic
validation mIoU and checkpoints → write the inference model file.

Determinism: every random choice comes from ``config.seed``. Model initialisation uses a
generator seeded from it; the batch of step ``s`` (which samples, flips and photometric
changes) is drawn from a generator seeded by ``(seed, s)``, so a resumed run sees exactly
the batches the uninterrupted run would have seen, and checkpoints restore model,
optimizer and the global RNGs, so ``--resume`` continues bit-exactly.

Run folder (:mod:`eyepurify.train.loop`): ``config.json`` (the :class:`SegmenterConfig`),
``checkpoint.safetensors`` (training checkpoint, also holding the config; runs from before
the shared loop have ``last.safetensors``, still resumed), ``log.jsonl`` (loss and
validation mIoU per step), ``metrics.json`` (the same history with the data counts and
skipped files) and, when finished, ``model.safetensors`` (inference weights for
:class:`eyepurify.segment.Segmenter`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from eyepurify.data.base import BadFile, EyeDataset
from eyepurify.data.labelled import load_labelled
from eyepurify.device import Placement, make_placement
from eyepurify.errors import DataError, EyepurifyError
from eyepurify.eyescale import measure_eye_scale
from eyepurify.io import write_json
from eyepurify.labels import confusion_matrix, iou_from_confusion
from eyepurify.models.export import save_model
from eyepurify.models.segmentation import SegmentationNet, create_segmentation_net, predict_labels
from eyepurify.sample import NUM_CLASSES
from eyepurify.tensors import images_to_tensor, labels_to_tensor, photometric_augment
from eyepurify.train.checkpoint import restore, save_checkpoint
from eyepurify.train.config import RunConfig
from eyepurify.train.distributed import (
    Distributed,
    accumulate,
    check_micro_batches,
    from_env,
    shutdown,
    split,
    wrap,
)
from eyepurify.train.loop import RunFolder, run_loop

AUGMENTS = ("strong", "none")
MODEL_NAME = "model.safetensors"


@dataclass(frozen=True)
class SegmenterConfig(RunConfig):
    """Everything that defines a segmentation training run (saved as JSON with it).

    data: dataset paths (read with ``eyepurify.data.open_dataset``); format: forced
    format name or None to detect. size: training (H, W); samples are resized to it.
    augment: "strong" (random horizontal flip plus gamma, brightness, contrast, colour
    temperature, noise and blur) or "none". val_fraction: share of labelled samples held
    out for validation mIoU (at least one when there are two or more samples).
    """

    config_name: ClassVar[str] = "segmenter"

    data: tuple[str, ...] = ()
    format: str | None = None
    steps: int = 2000
    batch: int = 32
    size: tuple[int, int] = (72, 120)
    seed: int = 0
    augment: str = "strong"
    model: str = "default"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.1
    val_every: int = 250
    checkpoint_every: int = 250
    micro_batches: int = 1

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {AUGMENTS}, got {self.augment!r}")
        if self.steps < 0 or self.batch < 1 or min(self.size) < 1:
            raise ValueError(f"steps ≥ 0, batch ≥ 1 and a positive size are required: {self}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.val_every < 1 or self.checkpoint_every < 1:
            raise ValueError("val_every and checkpoint_every must be ≥ 1")


def seeded(*key: int) -> torch.Generator:
    """A torch generator whose seed is a well-mixed function of the integers ``key``."""
    seed = int(np.random.SeedSequence([int(k) for k in key]).generate_state(1, np.uint64)[0])
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- data


def open_datasets(paths: Sequence[str], format: str | None = None) -> list[EyeDataset]:
    """Open each path with ``eyepurify.data.open_dataset`` (DataError when unreadable)."""
    from eyepurify.data import open_dataset

    return [open_dataset(p, format=format) for p in paths]


def load_labelled_arrays(
    datasets: Sequence[EyeDataset], size: tuple[int, int], progress: bool | None = None
) -> tuple[np.ndarray, np.ndarray, list[BadFile], int]:
    """Every labelled sample resized to ``size`` (:func:`eyepurify.data.labelled.load_labelled`):
    (images N×H×W×3 uint8, labels N×H×W uint8, bad files, samples skipped without labels)."""
    got = load_labelled(datasets, size, progress=progress)
    if not got.samples:
        h, w = size
        return np.zeros((0, h, w, 3), np.uint8), np.zeros((0, h, w), np.uint8), got.bad, got.skipped
    return got.images(), got.labels(), got.bad, got.skipped


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) index split of ``n`` samples; validation gets
    ``round(n · val_fraction)`` of them, at least 1 when ``val_fraction > 0`` and ``n ≥ 2``."""
    order = torch.randperm(n, generator=seeded(seed, 0)).numpy()
    n_val = 0 if val_fraction <= 0 or n < 2 else min(n - 1, max(1, round(n * val_fraction)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


# ---------------------------------------------------------------- augmentation


class SegmentationBatches:
    """Training batches as a pure function of the step: ``batches(step) -> (x, y)``.

    x: float32 B×3×H×W in [0, 1]; y: int64 B×H×W. Samples are visited in seeded
    per-epoch permutations; augmentation draws from a generator seeded by (seed, step).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch: int, seed: int, augment: str) -> None:
        if len(images) == 0:
            raise ValueError("no training samples")
        if augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {AUGMENTS}, got {augment!r}")
        self.images, self.labels = images, labels
        self.batch, self.seed, self.augment = batch, seed, augment
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) >= 2:  # a batch spans at most two epochs
                self._perms.pop(min(self._perms))
            self._perms[epoch] = torch.randperm(len(self.images), generator=seeded(self.seed, 1, epoch)).numpy()
        return self._perms[epoch]

    def indices(self, step: int) -> np.ndarray:
        """The sample indices of batch ``step``."""
        n = len(self.images)
        pos = step * self.batch + np.arange(self.batch)
        return np.array([self._perm(int(p // n))[p % n] for p in pos])

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.indices(step)
        x = images_to_tensor(self.images[idx])
        y = labels_to_tensor(self.labels[idx])
        if self.augment == "strong":
            g = seeded(self.seed, 2, step)
            flip = torch.rand(len(idx), generator=g) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            y = torch.where(flip[:, None, None], y.flip(-1), y)
            x = photometric_augment(x, g)
        return x, y


# ---------------------------------------------------------------- factories


def create_model(name: str, seed: int) -> SegmentationNet:
    """A freshly initialised segmentation network (preset ``name``), seeded, global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return create_segmentation_net(name)


def create_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW over all parameters."""
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def create_loader(images: np.ndarray, labels: np.ndarray, batch: int, seed: int, augment: str) -> SegmentationBatches:
    """The step-indexed batch source (see :class:`SegmentationBatches`)."""
    return SegmentationBatches(images, labels, batch, seed, augment)


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, batch: int = 64) -> tuple[float, list[float]]:
    """(mean IoU, per-class IoU with NaN for absent classes) of ``model`` on uint8 arrays.

    The model is put in eval mode and its previous mode restored.
    """
    was_training = model.training
    model.eval()
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    try:
        for i in range(0, len(images), batch):
            pred = np.stack(predict_labels(model, images[i : i + batch], batch=batch))
            conf += confusion_matrix(pred, labels[i : i + batch])
    finally:
        model.train(was_training)
    miou, per_class = iou_from_confusion(conf)
    return miou, per_class.tolist()


# ---------------------------------------------------------------- training


@dataclass
class TrainResult:
    """What a run produced: final step, last validation mIoU (NaN without validation),
    history rows ({"step", "loss", "val_miou"?}), skipped files, and whether it was
    interrupted (checkpoint written, resume with ``--resume``; ``signum`` the signal)."""

    step: int
    val_miou: float
    history: list[dict[str, Any]]
    bad: list[BadFile]
    interrupted: bool
    out: Path
    signum: int = 0


def _check_resume(ckpt_cfg: dict[str, Any], config: SegmenterConfig, path: Path) -> None:
    old = SegmenterConfig.from_dict(ckpt_cfg)
    differ = [
        f.name for f in dataclasses.fields(SegmenterConfig)
        if f.name != "steps" and getattr(old, f.name) != getattr(config, f.name)
    ]
    if differ:
        raise EyepurifyError(
            f"{path}: the run was started with different settings ({', '.join(differ)}) "
            "(resume with the same settings; only --steps may change)"
        )


def train(
    config: SegmenterConfig,
    out: str | Path,
    *,
    resume: bool = False,
    datasets: Sequence[EyeDataset] | None = None,
    progress: bool | None = None,
    on_step: Callable[[int, float], None] | None = None,
    device: str | torch.device | Placement | None = None,
) -> TrainResult:
    """Train a segmentation network as ``config`` says, writing the run folder ``out``.

    device: where it trains (:mod:`eyepurify.device`; None: the process's placement and
    precision). Batches are drawn and augmented on the CPU (the same on every device).
    datasets: already opened datasets (default: ``open_datasets(config.data, config.format)``).
    on_step(step, loss): called after each optimisation step (tests, logging).
    A first SIGINT/SIGTERM writes a checkpoint and returns with ``interrupted=True``.
    """
    placement = make_placement(device)
    dist = from_env(placement=placement)
    try:
        return _train(config, Path(out), resume, datasets, progress, on_step, dist, placement)
    finally:
        shutdown(dist)


def _train(
    config: SegmenterConfig,
    out: Path,
    resume: bool,
    datasets: Sequence[EyeDataset] | None,
    progress: bool | None,
    on_step: Callable[[int, float], None] | None,
    dist: Distributed,
    placement: Placement | None = None,
) -> TrainResult:
    placement = placement or make_placement("cpu")
    run = RunFolder(out)
    ckpt = run.start(resume)
    if ckpt is not None:
        _check_resume(ckpt.config, config, Path(ckpt.path))
    check_micro_batches(config.batch, config.micro_batches, dist)
    dist.barrier()  # every rank has checked the folder before rank 0 writes to it

    if datasets is None:
        datasets = open_datasets(config.data, config.format)
    images, labels, bad, unlabelled = load_labelled_arrays(datasets, config.size, progress if dist.main else False)
    if len(images) == 0:
        where = ", ".join(config.data) or "the given datasets"
        raise DataError(where, f"no labelled samples ({unlabelled} without labels, {len(bad)} unreadable)", "training needs label maps (e.g. an images/ + masks/ folder)")
    train_idx, val_idx = split_indices(len(images), config.val_fraction, config.seed)

    model = create_model(config.model, config.seed)
    placement.module(model)  # before the optimiser (its state follows the parameters)
    optimizer = create_optimizer(model, config.lr, config.weight_decay)
    scaler = placement.grad_scaler()
    batches = create_loader(images[train_idx], labels[train_idx], config.batch, config.seed, config.augment)
    history: list[dict[str, Any]] = []
    step = 0
    if ckpt is not None:
        restore(ckpt, model, optimizer)
        step, history = ckpt.step, list(ckpt.extra.get("history", []))
    if dist.main:
        run.write_config(config.to_dict())
    ckpt_path = run.checkpoint
    wrapped = wrap(placement.module(model) if placement.compile else model, dist)
    parts = config.micro_batches

    def validate() -> float:
        return evaluate(model, images[val_idx], labels[val_idx])[0]

    def checkpoint(step: int) -> None:
        if not dist.main:
            return
        extra = {"history": history, "net": model.config.to_dict()}
        save_checkpoint(ckpt_path, model, step=step, optimizer=optimizer, config=config.to_dict(), extra=extra, kind="segmentation")
        summary = {
            "step": step, "steps": config.steps, "history": history,
            "train_samples": len(train_idx), "val_samples": len(val_idx),
            "unlabelled_skipped": unlabelled, "bad_files": [dataclasses.asdict(b) for b in bad],
        }
        write_json(out / "metrics.json", summary)

    def train_step(i: int) -> dict[str, Any]:
        batch = batches(i)

        def run_part(part: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            x, y = placement.to(split(batch, parts, part) if parts > 1 else batch)
            with placement.autocast():
                loss = F.cross_entropy(wrapped(placement.input(x)), y)
            return loss, {"loss": loss}

        optimizer.zero_grad(set_to_none=True)
        values = accumulate(model, wrapped, run_part, parts, dist, config.seed, i, scaler=scaler)
        scaler.step(optimizer)
        scaler.update()
        row: dict[str, Any] = {"loss": values["loss"]}
        if dist.main and len(val_idx) and ((i + 1) % config.val_every == 0 or i + 1 == config.steps):
            row["val_miou"] = validate()
        history.append({"step": i + 1, **row})
        if on_step is not None:
            on_step(i + 1, row["loss"])
        return {**row, "time": round(time.perf_counter() - t0, 3)}  # log.jsonl only

    def postfix(rec: dict[str, Any]) -> dict[str, str]:
        return {"loss": f"{rec['loss']:.4f}", **({"val_miou": f"{rec['val_miou']:.3f}"} if "val_miou" in rec else {})}

    model.train()
    t0 = time.perf_counter()
    end = run_loop(run if dist.main else None, step, config.steps, train_step, checkpoint,
                   checkpoint_every=config.checkpoint_every, desc="train segmenter",
                   progress=progress if dist.main else False, postfix=postfix, agree=dist.any)
    step, interrupted, signum = end.step, end.interrupted, end.signum
    val_miou = next((r["val_miou"] for r in reversed(history) if "val_miou" in r), float("nan"))
    if not interrupted and dist.main:
        meta = {
            "kind": "segmentation", "net": model.config.to_dict(), "size": list(config.size),
            "step": step, "val_miou": None if math.isnan(val_miou) else val_miou,
            "train_config": config.to_dict(), "eye_scale": measure_eye_scale(list(labels)).to_meta(),
        }
        save_model(out / MODEL_NAME, model, meta)
    dist.barrier()  # the model file exists when any rank returns
    return TrainResult(step, val_miou, history, bad, interrupted, out, signum)

"""Distilling a shipped network into a narrower student (``eyepurify distill``).

``distill(config, out)`` reads as: open the teacher → load labelled renders → build the
student, AdamW and the step-indexed batch source → loop (teacher queried on the augmented
batch, student fitted to it) with periodic validation and checkpoints → write the model file.

Kinds:

* ``purifier``: student TransformNet; input = augmented render + one-hot mask, the mask per
  sample either the true label map or the shipped segmenter's prediction (arg-max plus the
  orphan fix, as inference makes it), chosen with probability ``predicted_masks``; target =
  the teacher's output on the same input; loss L1 (``loss="l1"``) or L1 plus the L1 of the
  horizontal and vertical image differences (``"l1+grad"``, sharper edges).
* ``segmenter``: student SegmentationNet; loss ``kd_weight · T² · KL(teacher ‖ student)``
  on logits softened by the temperature T, plus ``(1 − kd_weight) ·`` cross-entropy to the
  true labels.

Inputs are render folders (any format ``open_dataset`` reads with label maps; a render
folder made with ``--domain both`` stands for its domain sub-folders), varied by the
segmenter trainer's random flip and photometric augmentation
(:class:`eyepurify.train.segmenter.SegmentationBatches`), so only generated data is used and
the result is shippable.

Determinism: one seed. The student is initialised from it, the batch of step ``s`` (samples,
flips, light changes) and its mask choices are functions of ``(seed, s)``, and checkpoints
hold model, optimizer and RNG state, so ``--resume`` continues bit-exactly (the same
``model.safetensors`` bytes as an uninterrupted run).

Run folder (:mod:`eyepurify.train.loop`): ``config.json``, ``checkpoint.safetensors``,
``log.jsonl`` (loss per step, validation every ``val_every``) and, when every step ran,
``model.safetensors``: the student with ``kind``, ``net``, ``size``, ``eye_scale`` (the
teacher's, so inference cuts and scales eyes exactly as with the teacher) and ``distill``
(the teacher file's name and SHA-256, the settings, the final validation).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eyepurify.data.render_folder import folder_domains
from eyepurify.device import Placement, make_placement
from eyepurify.errors import DataError, EyepurifyError, Interrupted
from eyepurify.io import file_sha256
from eyepurify.labels import orphan_fix
from eyepurify.models.export import save_model
from eyepurify.models.registry import load_model
from eyepurify.models.segmentation import PRESETS as SEG_PRESETS
from eyepurify.models.segmentation import create_segmentation_net
from eyepurify.models.transformer import PRESETS as NET_PRESETS
from eyepurify.models.transformer import create_transform_net
from eyepurify.sample import NUM_CLASSES
from eyepurify.tensors import labels_to_tensor, one_hot
from eyepurify.train.checkpoint import restore, save_checkpoint
from eyepurify.train.config import RunConfig
from eyepurify.train.loop import RunFolder, run_loop
from eyepurify.train.segmenter import (
    create_loader,
    load_labelled_arrays,
    open_datasets,
    seeded,
    split_indices,
)

KINDS = ("purifier", "segmenter")
LOSSES = ("l1", "l1+grad")
MODEL_NAME = "model.safetensors"
#: the registry kind of each student
REGISTRY_KIND = {"purifier": "purifier", "segmenter": "segmentation"}
#: the shipped file each kind distils by default
DEFAULT_TEACHER = {"purifier": "purifier.safetensors", "segmenter": "segmenter.safetensors"}


@dataclass(frozen=True)
class DistillConfig(RunConfig):
    """Everything that defines a distillation run (saved as JSON with it).

    teacher: model file (None: the shipped model of ``kind``); segmenter: the segmenter that
    predicts the purifier student's masks (None: the shipped one). net: student preset.
    predicted_masks: share of purifier samples whose mask is predicted rather than true.
    temperature, kd_weight: the segmenter's softened-logit KL term and its weight.
    """

    config_name: ClassVar[str] = "distill"

    kind: str = "purifier"
    data: tuple[str, ...] = ()
    teacher: str | None = None
    segmenter: str | None = None
    net: str = "fast"
    size: tuple[int, int] = (72, 120)
    steps: int = 2000
    batch: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    loss: str = "l1"
    predicted_masks: float = 0.5
    temperature: float = 2.0
    kd_weight: float = 0.5
    val_fraction: float = 0.05
    max_val: int = 64
    val_every: int = 250
    checkpoint_every: int = 250

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        presets = NET_PRESETS if self.kind == "purifier" else SEG_PRESETS
        if self.net not in presets:
            raise ValueError(f"unknown {self.kind} preset {self.net!r}; choose from {sorted(presets)}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.steps < 1 or self.batch < 1 or min(self.size) < 8:
            raise ValueError("steps and batch must be ≥ 1 and size at least 8×8")
        if not 0 <= self.predicted_masks <= 1 or not 0 <= self.kd_weight <= 1 or self.temperature <= 0:
            raise ValueError("predicted_masks and kd_weight must be in [0, 1] and temperature > 0")
        if not 0 <= self.val_fraction < 1 or self.val_every < 1 or self.checkpoint_every < 1:
            raise ValueError("val_fraction must be in [0, 1); val_every and checkpoint_every ≥ 1")


def teacher_path(config: DistillConfig) -> Path:
    """The teacher's model file (the shipped one of ``config.kind`` when none is given)."""
    from eyepurify.purify import packaged_weights

    return Path(config.teacher) if config.teacher else packaged_weights(DEFAULT_TEACHER[config.kind])


def data_folders(paths: Sequence[str]) -> list[str]:
    """``paths`` with every paired render folder replaced by its domain sub-folders."""
    out: list[str] = []
    for p in paths:
        domains = folder_domains(Path(p))
        out += [str(Path(p) / d) for d in domains] if domains else [str(p)]
    return out


def create_student(config: DistillConfig) -> nn.Module:
    """A freshly initialised student (preset ``config.net``), seeded, global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if config.kind == "purifier":
            return create_transform_net(config.net)
        return create_segmentation_net(config.net)


def predicted_labels(seg: nn.Module, x: Tensor) -> Tensor:
    """int64 N×H×W label maps of N×3×H×W images in [0, 1]: arg-max of ``seg`` plus the
    orphan fix, as :class:`eyepurify.segment.Segmenter` makes them at its trained size."""
    with torch.no_grad():
        lab = seg(x).argmax(1).to(torch.uint8).cpu().numpy()
    return labels_to_tensor(np.stack([orphan_fix(m) for m in lab])).to(x.device)


def image_gradient_l1(a: Tensor, b: Tensor) -> Tensor:
    """Mean absolute difference of the horizontal and vertical pixel differences of two N×C×H×W images."""
    dx = (a[..., :, 1:] - a[..., :, :-1]) - (b[..., :, 1:] - b[..., :, :-1])
    dy = (a[..., 1:, :] - a[..., :-1, :]) - (b[..., 1:, :] - b[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


def purifier_loss(student_out: Tensor, target: Tensor, loss: str) -> tuple[Tensor, dict[str, float]]:
    """(objective, logged terms) of N×3×H×W outputs against the teacher's N×3×H×W targets."""
    l1 = (student_out - target).abs().mean()
    if loss == "l1":
        return l1, {"l1": float(l1.detach())}
    g = image_gradient_l1(student_out, target)
    return l1 + g, {"l1": float(l1.detach()), "grad": float(g.detach())}


def segmenter_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, temperature: float,
                   kd_weight: float) -> tuple[Tensor, dict[str, float]]:
    """(objective, logged terms): ``kd_weight · T² · KL`` of softened N×C×H×W logits (per
    pixel, averaged) plus ``(1 − kd_weight) ·`` cross-entropy to int64 N×H×W labels."""
    t = temperature
    log_s = F.log_softmax(student_logits / t, dim=1)
    log_t = F.log_softmax(teacher_logits / t, dim=1)
    kl = (log_t.exp() * (log_t - log_s)).sum(1).mean() * t * t
    ce = F.cross_entropy(student_logits, labels)
    return kd_weight * kl + (1 - kd_weight) * ce, {"kl": float(kl.detach()), "ce": float(ce.detach())}


@dataclass
class DistillResult:
    """What a run produced: steps done, the last validation record, the model file (None
    when interrupted) and the run folder."""

    step: int
    val: dict[str, float]
    model: Path | None
    out: Path


def _check_resume(saved: dict[str, Any], config: DistillConfig, path: str) -> None:
    old = DistillConfig.from_dict(saved)
    differ = [f.name for f in dataclasses.fields(DistillConfig) if f.name != "steps" and getattr(old, f.name) != getattr(config, f.name)]
    if differ:
        raise EyepurifyError(f"{path}: the run was started with different settings ({', '.join(differ)}) "
                             "(resume with the same settings; only --steps may change)")


def distill(config: DistillConfig, out: str | Path, *, resume: bool = False, progress: bool | None = None,
            device: str | torch.device | Placement | None = None) -> DistillResult:
    """Distil ``config.teacher`` into a ``config.net`` student, writing the run folder ``out``.

    ``device``: where teacher and student run (:mod:`eyepurify.device`; None: the process's
    placement and precision); batches are drawn and augmented on the CPU.
    A first SIGINT/SIGTERM writes a checkpoint and raises :class:`Interrupted` (exit 130 / 143).
    """
    placement = make_placement(device)
    run = RunFolder(out)
    ckpt = run.start(resume)
    if ckpt is not None:
        _check_resume(ckpt.config, config, ckpt.path)

    kind = config.kind
    t_path = teacher_path(config)
    teacher, t_meta = load_model(t_path, REGISTRY_KIND[kind])
    teacher = placement.module(teacher.requires_grad_(False))
    seg = None
    if kind == "purifier":
        from eyepurify.purify import packaged_weights

        s_path = Path(config.segmenter) if config.segmenter else packaged_weights(DEFAULT_TEACHER["segmenter"])
        seg = placement.module(load_model(s_path, "segmentation")[0].requires_grad_(False))

    folders = data_folders(config.data)
    images, labels, bad, unlabelled = load_labelled_arrays(open_datasets(folders), config.size, progress)
    if len(images) == 0:
        raise DataError(", ".join(folders) or "--data", f"no labelled samples ({unlabelled} without labels, {len(bad)} unreadable)",
                        "distillation needs render folders with label maps (eyepurify render)")
    train_idx, val_idx = split_indices(len(images), config.val_fraction, config.seed)
    val_idx = val_idx[: config.max_val]
    batches = create_loader(images[train_idx], labels[train_idx], config.batch, config.seed, "strong")
    val_x, val_y = create_loader(images[val_idx], labels[val_idx], max(1, len(val_idx)), config.seed + 1, "strong")(0) \
        if len(val_idx) else (None, None)
    val_x, val_y = cast("tuple[Tensor | None, Tensor | None]", placement.to((val_x, val_y)))

    student = create_student(config)
    placement.module(student)  # before the optimiser (its state follows the parameters)
    scaler = placement.grad_scaler()
    opt = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step = 0
    if ckpt is not None:
        restore(ckpt, student, opt)
        step = ckpt.step
    run.write_config(config.to_dict())
    ckpt_path = run.checkpoint

    def masks(x: Tensor, y: Tensor, step: int) -> Tensor:
        """One-hot N×4×H×W masks: predicted where the step's draw says so, else the true labels."""
        use = torch.rand(len(x), generator=seeded(config.seed, 3, step)) < config.predicted_masks
        lab = y
        if bool(use.any()):
            lab = torch.where(use.to(x.device)[:, None, None], predicted_labels(seg, x), y)  # type: ignore[arg-type]
        return one_hot(lab, NUM_CLASSES)

    def objective(x: Tensor, y: Tensor, step: int) -> tuple[Tensor, dict[str, float]]:
        if kind == "purifier":
            m = masks(x, y, step)
            with torch.no_grad():
                target = teacher(x, m)
            return purifier_loss(student(x, m), target, config.loss)
        with torch.no_grad():
            t_logits = teacher(x)
        return segmenter_loss(student(x), t_logits, y, config.temperature, config.kd_weight)

    @torch.no_grad()
    def validate() -> dict[str, float]:
        """Purifier: L1 and PSNR (dB) to the teacher; segmenter: loss terms, mIoU vs labels and vs the teacher."""
        if val_x is None:
            return {}
        student.eval()
        try:
            if kind == "purifier":
                m = masks(val_x, val_y, 1 << 30)  # type: ignore[arg-type]  # a step no batch uses
                s_out, t_out = student(val_x, m), teacher(val_x, m)
                mse = ((s_out - t_out) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
                return {"l1": float((s_out - t_out).abs().mean()), "psnr_to_teacher": float((-10 * torch.log10(mse)).mean())}
            s_log, t_log = student(val_x), teacher(val_x)
            _, terms = segmenter_loss(s_log, t_log, val_y, config.temperature, config.kd_weight)  # type: ignore[arg-type]
            return {**terms, "miou": _miou(s_log.argmax(1), val_y), "miou_to_teacher": _miou(s_log.argmax(1), t_log.argmax(1))}  # type: ignore[arg-type]
        finally:
            student.train()

    last_val: dict[str, float] = {}

    def checkpoint(step: int) -> None:
        save_checkpoint(ckpt_path, student, step=step, optimizer=opt, config=config.to_dict(),
                        extra={"net": student.config.to_dict()}, kind=REGISTRY_KIND[kind])  # type: ignore[operator, union-attr]

    def train_step(i: int) -> dict[str, Any]:
        x, y = placement.to(batches(i))
        with placement.autocast():
            obj, terms = objective(placement.input(x), y, i)
        if not math.isfinite(float(obj.detach())):
            checkpoint(i)
            raise EyepurifyError(f"loss became {float(obj.detach())} at step {i}; lower --lr (checkpoint kept)")
        opt.zero_grad(set_to_none=True)
        scaler.scale(obj).backward()
        scaler.step(opt)
        scaler.update()
        rec: dict[str, Any] = {"loss": float(obj.detach()), **terms}
        if i + 1 == config.steps or (i + 1) % config.val_every == 0:
            rec["val"] = validate()
            last_val.clear()
            last_val.update(rec["val"])
        return rec

    def postfix(rec: dict[str, Any]) -> dict[str, str]:
        shown = {"loss": f"{rec['loss']:.4f}"}
        shown.update({k: f"{v:.3f}" for k, v in rec.get("val", {}).items()})
        return shown

    student.train()
    end = run_loop(run, step, config.steps, train_step, checkpoint, checkpoint_every=config.checkpoint_every,
                   desc=f"distill {kind}", progress=progress, postfix=postfix)
    if end.interrupted:
        raise Interrupted(f"{run.path}: interrupted at step {end.step} of {config.steps}; checkpoint written, "
                          "no model.safetensors (continue with --resume)", end.signum)
    if not last_val:
        last_val.update(validate())
    student.eval()
    meta: dict[str, Any] = {
        "kind": REGISTRY_KIND[kind], "net": student.config.to_dict(), "size": list(config.size),  # type: ignore[operator, union-attr]
        "step": end.step,
        "distill": {"teacher": t_path.name, "teacher_sha256": file_sha256(t_path), "config": config.to_dict(),
                    "val": dict(last_val), "train_samples": int(len(train_idx)), "val_samples": int(len(val_idx))},
    }
    for key in ("eye_scale", "eye_scale_note"):  # inference scales eyes exactly as with the teacher
        if key in t_meta:
            meta[key] = t_meta[key]
    if kind == "purifier":  # the purifier's training size is read from train.size (eyepurify.purify)
        meta["train"] = {"size": list(config.size), "distilled_from": t_path.name}
    path = run.path / MODEL_NAME
    save_model(path, student, meta)
    return DistillResult(end.step, dict(last_val), path, run.path)


def _miou(pred: Tensor, target: Tensor) -> float:
    """Mean IoU over the classes present in ``target`` or ``pred`` (int N×H×W tensors)."""
    from eyepurify.labels import confusion_matrix, iou_from_confusion

    conf = confusion_matrix(pred.to(torch.uint8).numpy(), target.to(torch.uint8).numpy())
    return float(iou_from_confusion(conf)[0])

"""Feed-forward purifier training (METHOD §9): `train` reads as a handful of factory calls.

``method="ours"``: TransformNet on RGB + one-hot mask, attention subnet trained jointly
with an auxiliary BCE, region-level task-guided loss (METHOD §8).
``method="johnson"``: the Johnson et al. baseline, RGB only, plain perceptual loss.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from eyepurify.errors import EyepurifyError, Interrupted
from eyepurify.eyescale import EyeScale, measure_eye_scale
from eyepurify.io import write_image
from eyepurify.losses.regions import Regions
from eyepurify.losses.total import LossConfig, perceptual_loss, total_loss
from eyepurify.models.attention import attention_bce
from eyepurify.models.backbones.base import flush_denormals
from eyepurify.models.export import save_model
from eyepurify.models.purifier import PurifierModel
from eyepurify.models.transformer import PRESETS, TransformNetConfig
from eyepurify.tensors import (
    attention_region,
    images_to_tensor,
    labels_to_tensor,
    one_hot,
    tensor_to_images,
)
from eyepurify.train.augment import CONTENT_AUGMENTS, augment_content
from eyepurify.train.checkpoint import restore, save_checkpoint
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
from eyepurify.train.purifier_data import load_labelled_set, load_style_set

METHODS = ("ours", "johnson")


@dataclass(frozen=True)
class PurifierTrainConfig:
    """Everything a purifier run depends on; saved with the run and inside every checkpoint."""

    content: tuple[str, ...]
    style: tuple[str, ...]
    method: str = "ours"
    net: str = "small"
    backbone: str = "lite0"
    vgg19_weights: str | None = None
    size: tuple[int, int] = (72, 120)
    batch: int = 4
    steps: int = 1000
    lr: float = 1e-3
    seed: int = 0
    attention_width: int = 8
    attention_weight: float = 1e3
    content_limit: int | None = None
    content_segmenter: str | None = "default"  # labels unlabelled (real) content; None skips it
    content_augment: str = "none"  # "none" | "geometric" | "strong" (train/augment.py)
    style_limit: int = 8
    micro_batches: int = 1  # batch split into parts run one by one / dealt to torchrun's processes
    val_fraction: float = 0.1
    max_val: int = 16
    val_every: int = 100
    sample_every: int = 200
    checkpoint_every: int = 100
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise EyepurifyError(f"unknown method {self.method!r}; choose from {METHODS}")
        if self.net not in PRESETS:
            raise EyepurifyError(f"unknown network {self.net!r}; choose from {sorted(PRESETS)}")
        if self.content_augment not in CONTENT_AUGMENTS:
            raise EyepurifyError(f"unknown content augmentation {self.content_augment!r}; choose from {CONTENT_AUGMENTS}")
        if self.steps < 1 or self.batch < 1 or min(self.size) < 8:
            raise EyepurifyError("steps and batch must be ≥ 1 and size at least 8×8")

    def net_config(self) -> TransformNetConfig:
        cfg = PRESETS[self.net]
        return replace(cfg, mask_channels=0) if self.method == "johnson" else cfg

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["loss"] = self.loss.as_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> PurifierTrainConfig:
        d = dict(d)
        loss = dict(d.pop("loss", {}) or {})  # type: ignore[arg-type]
        for k, v in loss.items():
            if isinstance(v, list):
                loss[k] = tuple(v)
        known = {f.name for f in fields(cls)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
        return cls(**kw, loss=LossConfig(**loss))  # type: ignore[arg-type]


@dataclass
class TrainData:
    """Float tensors at the training size: content train/val, style; int label maps."""

    x: Tensor
    lab: Tensor
    x_val: Tensor
    lab_val: Tensor
    s: Tensor
    s_lab: Tensor


def create_data(cfg: PurifierTrainConfig, progress: bool = True) -> TrainData:
    """Load content and style sets and split off a seeded validation set."""
    seg = None
    if cfg.content_segmenter is not None:
        from eyepurify.segment import Segmenter

        seg = Segmenter.from_pretrained(None if cfg.content_segmenter == "default" else cfg.content_segmenter)
    imgs, labs, _ = load_labelled_set(cfg.content, cfg.size, cfg.content_limit, progress, seg)
    s_imgs, s_labs, _ = load_style_set(cfg.style, cfg.size, cfg.style_limit)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(imgs))
    n_val = min(cfg.max_val, int(round(len(imgs) * cfg.val_fraction))) if len(imgs) > 1 else 0
    val, train = order[:n_val], order[n_val:]
    x, lab = images_to_tensor(imgs), labels_to_tensor(labs)
    return TrainData(
        x[train], lab[train], x[val], lab[val], images_to_tensor(s_imgs), labels_to_tensor(s_labs)
    )


def create_model(cfg: PurifierTrainConfig) -> PurifierModel:
    torch.manual_seed(cfg.seed)
    return PurifierModel(cfg.net_config(), cfg.attention_width)


def create_optimizer(model: nn.Module, cfg: PurifierTrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def create_loss_network(cfg: PurifierTrainConfig):  # type: ignore[no-untyped-def]
    from eyepurify.models.backbones import create_backbone

    return create_backbone(cfg.backbone, cfg.vgg19_weights)


def purifier_terms(
    model: PurifierModel,
    backbone,  # type: ignore[no-untyped-def]
    x: Tensor,
    lab: Tensor,
    s: Tensor,
    s_lab: Tensor,
    cfg: PurifierTrainConfig,
) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor | None]:
    """One batch: (objective, named terms, output O, att⁺ of I or None).

    x, s: N×3×H×W in [0, 1] (s has one style image per content image); lab, s_lab: N×H×W.
    """
    loss_cfg = cfg.loss
    if model.attention is None:
        layers = loss_cfg.plain_layers
        out = model.net(x)
        with torch.no_grad():
            fx, fs = backbone.features(x, layers), backbone.features(s, layers)
        terms = perceptual_loss(backbone.features(out, layers), fx, fs, out, loss_cfg)
        return terms["total"], terms, out, None
    layers = loss_cfg.masked_layers
    mx, ms = one_hot(lab), one_hot(s_lab)
    out = model.net(x, mx)
    logit_x, logit_s = model.attention.logits(x, mx), model.attention.logits(s, ms)
    att_x, att_s = torch.sigmoid(logit_x), torch.sigmoid(logit_s)
    with torch.no_grad():
        fx, fs = backbone.features(x, layers), backbone.features(s, layers)
    terms = total_loss(
        backbone.features(out, layers), fx, fs, out,
        Regions.from_attention(att_x), Regions.from_attention(att_s), loss_cfg,
    )
    bce = attention_bce(logit_x, attention_region(lab)) + attention_bce(logit_s, attention_region(s_lab))
    terms["attention_bce"] = bce
    objective = terms["total"] + cfg.attention_weight * bce
    terms["objective"] = objective
    return objective, terms, out, att_x


def sample_grid(x: Tensor, att: Tensor | None, out: Tensor, s: Tensor, rows: int = 4) -> np.ndarray:
    """uint8 grid: one row per sample, columns input | attention | output | style."""
    n = min(rows, x.shape[0])
    a = att[:n].expand(-1, 3, -1, -1) if att is not None else torch.zeros_like(x[:n])
    cols = [x[:n], a, out[:n].detach(), s[:n]]
    grid = torch.cat([torch.cat(list(c), dim=2) for c in zip(*cols, strict=True)], dim=1)
    return tensor_to_images(grid[None])[0]


def _batch(data: TrainData, gen: torch.Generator, n: int, augment: str = "none") -> tuple[Tensor, Tensor, Tensor, Tensor]:
    i = torch.randint(len(data.x), (n,), generator=gen)
    j = torch.randint(len(data.s), (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    x, lab = data.x[i].clone(), data.lab[i].clone()
    x[flip], lab[flip] = x[flip].flip(-1), lab[flip].flip(-1)
    x, lab = augment_content(x, lab, augment, gen)
    return x, lab, data.s[j], data.s_lab[j]


class Objective(nn.Module):
    """:func:`purifier_terms` as a module, so that DistributedDataParallel sees the forward."""

    def __init__(self, model: PurifierModel, backbone: nn.Module, cfg: PurifierTrainConfig) -> None:
        super().__init__()
        self.model, self.backbone, self.cfg = model, backbone, cfg

    def forward(self, x: Tensor, lab: Tensor, s: Tensor, s_lab: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor | None]:
        return purifier_terms(self.model, self.backbone, x, lab, s, s_lab, self.cfg)


@torch.no_grad()
def validate(model: PurifierModel, backbone, data: TrainData, cfg: PurifierTrainConfig) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Mean objective and terms on the held-out content (eval mode; first style image)."""
    if len(data.x_val) == 0:
        return {}
    was = model.training
    model.eval()
    n = len(data.x_val)
    s = data.s[:1].expand(n, -1, -1, -1)
    sl = data.s_lab[:1].expand(n, -1, -1)
    obj, terms, _, _ = purifier_terms(model, backbone, data.x_val, data.lab_val, s, sl, cfg)
    model.train(was)
    keys = ("total", "content", "style", "tv", "attention_bce")
    return {"objective": float(obj), **{k: float(terms[k]) for k in keys if k in terms}}


@flush_denormals()
def train_purifier(cfg: PurifierTrainConfig, run_dir: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Train (or resume) a purifier in ``run_dir``; returns the exported model file.

    On resume the saved config is used, except ``steps`` (so a run can be extended).

    Writes config.json, log.jsonl (per-step terms + validation; on resume cut back to the
    checkpoint's step, so no step is logged twice), samples/step_*.png,
    checkpoint.safetensors (every ``checkpoint_every`` steps, on Ctrl-C and at the end) and,
    only when every step ran, model.safetensors (inference weights + config). A first
    SIGINT/SIGTERM writes the checkpoint and raises :class:`Interrupted` (exit 130 / 143).

    Under ``torchrun --nproc_per_node W`` the processes share each step's batch
    (``cfg.micro_batches`` parts, a multiple of W; :mod:`eyepurify.train.distributed`) and
    rank 0 writes the run folder.
    """
    dist = from_env()
    try:
        return _train(cfg, RunFolder(run_dir), resume, progress, dist)
    finally:
        shutdown(dist)


def _train(cfg: PurifierTrainConfig, run: RunFolder, resume: bool, progress: bool, dist: Distributed) -> Path:
    ckpt = run.start(resume)
    if ckpt is not None:
        cfg = replace(PurifierTrainConfig.from_dict(ckpt.config), steps=cfg.steps)
    check_micro_batches(cfg.batch, cfg.micro_batches, dist)
    dist.barrier()  # every rank has checked the folder before rank 0 writes to it
    if dist.main:
        run.write_config(cfg.to_dict())

    data = create_data(cfg, progress and dist.main)
    backbone = create_loss_network(cfg)
    model = create_model(cfg)
    opt = create_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    if ckpt is not None:
        restore(ckpt, model, opt, generators={"batches": gen})
        step = ckpt.step
    else:
        torch.manual_seed(cfg.seed)
    objective = wrap(Objective(model, backbone, cfg), dist)
    ckpt_path = run.checkpoint
    parts = cfg.micro_batches

    def checkpoint(step: int) -> None:
        if dist.main:
            save_checkpoint(ckpt_path, model, step=step, optimizer=opt, config=cfg.to_dict(),
                            generators={"batches": gen}, extra={"backbone_is_random": backbone.is_random}, kind="purifier")

    def train_step(i: int) -> dict[str, object]:
        batch = _batch(data, gen, cfg.batch, cfg.content_augment)
        first: dict[str, Tensor | None] = {}

        def run_part(part: int) -> tuple[Tensor, dict[str, Tensor]]:
            x, lab, s, sl = split(batch, parts, part) if parts > 1 else batch
            obj, terms, out, att = objective(x, lab, s, sl)
            if not first:
                first.update(x=x, att=att, out=out.detach(), s=s)
            return obj, {k: v for k, v in terms.items() if "/" not in k}

        opt.zero_grad(set_to_none=True)
        values = accumulate(model, objective, run_part, parts, dist, cfg.seed, i)
        obj = values.get("objective", values["total"])
        if not np.isfinite(obj):
            checkpoint(i)
            raise EyepurifyError(f"loss became {obj} at step {i}; lower --lr (checkpoint kept)")
        opt.step()
        rec: dict[str, object] = {"time": round(time.perf_counter() - t0, 3), **values}
        if dist.main and (i + 1 == cfg.steps or (i + 1) % cfg.val_every == 0):
            rec["val"] = validate(model, backbone, data, cfg)
        if dist.main and (i + 1 == cfg.steps or (i + 1) % cfg.sample_every == 0):
            write_image(run.path / "samples" / f"step_{i + 1:06d}.png",
                        sample_grid(first["x"], first["att"], first["out"], first["s"]))  # type: ignore[arg-type]
        shown["loss"] = f"{obj:.4g}"
        return rec

    shown: dict[str, str] = {}  # the bar's postfix
    model.train()
    t0 = time.perf_counter()
    end = run_loop(run if dist.main else None, step, cfg.steps, train_step, checkpoint,
                   checkpoint_every=cfg.checkpoint_every, desc="train", progress=progress and dist.main,
                   postfix=lambda rec: shown, agree=dist.any)
    step = end.step
    if end.interrupted:
        raise Interrupted(f"{run.path}: interrupted at step {step} of {cfg.steps}; checkpoint written, "
                          "no model.safetensors (continue with --resume)", end.signum)
    model_path = run.path / "model.safetensors"
    if dist.main:
        meta = {"kind": "purifier", "net": model.net.config.to_dict(), "train": cfg.to_dict(), "step": step,
                "backbone": backbone.name, "backbone_is_random": backbone.is_random,
                "eye_scale": _eye_scale(data.lab).to_meta()}
        save_model(model_path, model.net, meta)
    dist.barrier()  # the model file exists when any rank returns
    return model_path


def _eye_scale(labels: Tensor) -> EyeScale:
    """The eye scale of the content label maps (N×H×W), or the render scale if none shows an eye."""
    try:
        return measure_eye_scale(list(labels.to(torch.uint8).numpy()))
    except ValueError:
        return EyeScale.for_renders(labels.shape[-2:])

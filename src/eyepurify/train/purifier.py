"""Feed-forward purifier training (METHOD §9, §15): `train` reads as a handful of factory calls.

``method="ours"``: TransformNet on RGB + one-hot mask, attention subnet trained jointly
with an auxiliary BCE, region-level task-guided loss (METHOD §8).
``method="johnson"``: the Johnson et al. baseline, RGB only, plain perceptual loss.

Purifier v2 (METHOD §15) adds, on paired renders (``pairs``: folders written by
``eyepurify render --domain both``; the wild render is the input, the indoor render of the
same draw its target): a pixel term and a loss-network feature term to the target, and
task-consistency terms from frozen models trained on indoor renders only (a segmenter and
a gaze CNN) read on the output. ``paper_weight`` scales the paper's objective (0 turns it
off); ``mask_input`` says what the network reads beside the image: the true label maps,
those the shipped segmenter predicts (as at inference), or nothing; ``swag`` applies the
softmax feature transform of Wang et al. (CVPR 2021) before the loss-network terms.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from eyepurify.device import Placement, make_placement
from eyepurify.errors import EyepurifyError, Interrupted
from eyepurify.eyescale import EyeScale, measure_eye_scale
from eyepurify.io import write_image
from eyepurify.losses.paired import feature_loss, pixel_loss
from eyepurify.losses.regions import Regions
from eyepurify.losses.style import softmax_features
from eyepurify.losses.task import gaze_consistency, gaze_input, segmentation_consistency
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
from eyepurify.train.augment import CONTENT_AUGMENTS, augment_content, augment_paired
from eyepurify.train.checkpoint import restore, save_checkpoint
from eyepurify.train.distributed import (
    Distributed,
    accumulate,
    check_micro_batches,
    from_env,
    part_slice,
    shutdown,
    split,
    wrap,
)
from eyepurify.train.loop import RunFolder, run_loop
from eyepurify.train.purifier_data import load_labelled_set, load_style_set

METHODS = ("ours", "johnson")
MASK_INPUTS = ("labels", "predicted", "none")
#: loss-network layers of the paired feature term (low to mid level: texture, shape)
PAIRED_LAYERS = ("conv2_2", "conv3_2", "conv4_2")


@dataclass(frozen=True)
class PurifierTrainConfig:
    """Everything a purifier run depends on; saved with the run and inside every checkpoint."""

    content: tuple[str, ...]
    style: tuple[str, ...]
    method: str = "ours"
    pairs: tuple[str, ...] = ()  # paired render folders: wild input, indoor target (v2)
    pixel_weight: float = 0.0  # L1 to the paired target, [0, 1] scale
    feature_weight: float = 0.0  # loss-network content distance to the paired target
    paper_weight: float = 1.0  # scale of the paper's objective (region content + style + TV)
    task_segmenter: str | None = None  # frozen segmenter trained on indoor renders only
    seg_weight: float = 0.0
    task_gaze: str | None = None  # frozen gaze CNN trained on indoor renders only
    gaze_weight: float = 0.0
    mask_input: str = "labels"  # what the network reads beside the image: MASK_INPUTS
    swag: bool = False  # softmax transform of the loss-network features
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
        if self.mask_input not in MASK_INPUTS:
            raise EyepurifyError(f"unknown mask input {self.mask_input!r}; choose from {MASK_INPUTS}")
        if not self.content and not self.pairs:
            raise EyepurifyError("no training data: give content folders or paired render folders")
        if self.content and self.pairs:
            raise EyepurifyError("give either content folders or paired render folders, not both")
        weights = ("pixel_weight", "feature_weight", "paper_weight", "seg_weight", "gaze_weight")
        for name in weights:
            v = getattr(self, name)
            if not (v >= 0.0 and v < float("inf")):
                raise EyepurifyError(f"{name} must be finite and ≥ 0, got {v}")
        if (self.pixel_weight or self.feature_weight or self.seg_weight or self.gaze_weight) and not self.pairs:
            raise EyepurifyError("the paired and task terms need paired renders (--pairs DIR)")
        if self.seg_weight and not self.task_segmenter:
            raise EyepurifyError("seg_weight needs a task segmenter (--task-segmenter FILE)")
        if self.gaze_weight and not self.task_gaze:
            raise EyepurifyError("gaze_weight needs a task gaze CNN (--task-gaze FILE)")
        if self.method == "johnson" and self.mask_input != "labels":
            raise EyepurifyError("the Johnson baseline reads no masks; leave --mask-input at its default")

    def net_config(self) -> TransformNetConfig:
        cfg = PRESETS[self.net]
        no_mask = self.method == "johnson" or self.mask_input == "none"
        return replace(cfg, mask_channels=0) if no_mask else cfg

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["loss"] = self.loss.as_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> PurifierTrainConfig:
        d = dict(d)
        loss = dict(d.pop("loss", {}) or {})  # type: ignore[call-overload]
        for k, v in loss.items():
            if isinstance(v, list):
                loss[k] = tuple(v)
        known = {f.name for f in fields(cls)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
        return cls(**kw, loss=LossConfig(**loss))  # type: ignore[arg-type]


@dataclass
class Paired:
    """What paired renders add to a content set (rows match its rows): the indoor targets
    (float N×3×H×W), gaze N×3 unit vectors (None: no gaze labels) and the label maps the
    network reads (int N×H×W; None: the true ones)."""

    target: Tensor
    gaze: Tensor | None
    net_lab: Tensor | None

    def rows(self, index: Tensor | np.ndarray) -> Paired:
        idx = torch.as_tensor(index)
        return Paired(self.target[idx], None if self.gaze is None else self.gaze[idx],
                      None if self.net_lab is None else self.net_lab[idx])


@dataclass
class TrainData:
    """Float tensors at the training size: content train/val, style; int label maps;
    the paired parts of the content (v2) or None."""

    x: Tensor
    lab: Tensor
    x_val: Tensor
    lab_val: Tensor
    s: Tensor
    s_lab: Tensor
    paired: Paired | None = None
    paired_val: Paired | None = None


def _content_segmenter(name: str | None):
    if name is None:
        return None
    from eyepurify.segment import Segmenter

    return Segmenter.from_pretrained(None if name == "default" else name)


def create_data(cfg: PurifierTrainConfig, progress: bool | None = None) -> TrainData:
    """Load content (or paired renders) and style sets and split off a seeded validation set."""
    paired: Paired | None = None
    if cfg.pairs:
        from eyepurify.data.render_folder import load_pairs

        sets = [load_pairs(p, cfg.size, cfg.content_limit) for p in cfg.pairs]
        imgs = np.concatenate([p.wild for p in sets])
        labs = np.concatenate([p.labels for p in sets])
        gazes = [p.gaze for p in sets]
        gaze = None if any(g is None for g in gazes) else torch.from_numpy(np.concatenate(gazes)).float()  # type: ignore[arg-type]
        net_lab = None
        if cfg.mask_input == "predicted":
            seg = _content_segmenter(cfg.content_segmenter or "default")
            net_lab = labels_to_tensor(list(seg(list(imgs))))
        paired = Paired(images_to_tensor(np.concatenate([p.indoor for p in sets])), gaze, net_lab)
    else:
        imgs, labs, _ = load_labelled_set(cfg.content, cfg.size, cfg.content_limit, progress,
                                          _content_segmenter(cfg.content_segmenter))
    s_imgs, s_labs, _ = load_style_set(cfg.style, cfg.size, cfg.style_limit)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(imgs))
    n_val = min(cfg.max_val, int(round(len(imgs) * cfg.val_fraction))) if len(imgs) > 1 else 0
    val, train = order[:n_val], order[n_val:]
    x, lab = images_to_tensor(imgs), labels_to_tensor(labs)
    return TrainData(
        x[train], lab[train], x[val], lab[val], images_to_tensor(s_imgs), labels_to_tensor(s_labs),
        None if paired is None else paired.rows(train), None if paired is None else paired.rows(val),
    )


@dataclass
class TaskModels:
    """Frozen models trained on indoor renders only, read on the purified output (v2)."""

    segmenter: nn.Module | None
    gaze: nn.Module | None


def create_task_models(cfg: PurifierTrainConfig, placement: Placement | None = None) -> TaskModels:
    """The frozen task segmenter and gaze CNN the config names (None where not used)."""
    from eyepurify.models.registry import load_model

    def frozen(path: str | None, kind: str) -> nn.Module | None:
        if path is None:
            return None
        net, _ = load_model(path, kind)
        for q in net.parameters():
            q.requires_grad_(False)
        return (net if placement is None else placement.module(net)).eval()

    return TaskModels(frozen(cfg.task_segmenter if cfg.seg_weight else None, "segmentation"),
                      frozen(cfg.task_gaze if cfg.gaze_weight else None, "gaze-cnn"))


def create_model(cfg: PurifierTrainConfig) -> PurifierModel:
    torch.manual_seed(cfg.seed)
    return PurifierModel(cfg.net_config(), cfg.attention_width, attention=cfg.method == "ours")


def create_optimizer(model: nn.Module, cfg: PurifierTrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def create_loss_network(cfg: PurifierTrainConfig):
    from eyepurify.models.backbones import create_backbone

    return create_backbone(cfg.backbone, cfg.vgg19_weights)


def purifier_terms(
    model: PurifierModel,
    backbone,
    x: Tensor,
    lab: Tensor,
    s: Tensor,
    s_lab: Tensor,
    cfg: PurifierTrainConfig,
    paired: Paired | None = None,
    tasks: TaskModels | None = None,
) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor | None]:
    """One batch: (objective, named terms, output O, att⁺ of I or None).

    x, s: N×3×H×W in [0, 1] (s has one style image per content image); lab, s_lab: N×H×W.
    paired: the batch's paired targets, gaze and network label maps (v2); tasks: the frozen
    task models of the consistency terms.
    """
    loss_cfg = cfg.loss
    if model.attention is None:
        layers = loss_cfg.plain_layers
        out = model.net(x)
        with torch.no_grad():
            fx, fs = backbone.features(x, layers), backbone.features(s, layers)
        terms = perceptual_loss(backbone.features(out, layers), fx, fs, out, loss_cfg)
        return terms["total"], terms, out, None
    net_mask = None
    if model.net.config.mask_channels:
        net_mask = one_hot(lab if paired is None or paired.net_lab is None else paired.net_lab)
    out = model.net(x, net_mask)
    paper = cfg.paper_weight > 0
    paired_layers = PAIRED_LAYERS if paired is not None and cfg.feature_weight else ()
    layers = _unique_layers((loss_cfg.masked_layers if paper else ()) + paired_layers)
    f_out = backbone.features(out, layers) if layers else {}
    terms = {}
    objective = out.new_zeros(())
    att_x: Tensor | None = None
    if paper:
        mx, ms = one_hot(lab), one_hot(s_lab)
        logit_x, logit_s = model.attention.logits(x, mx), model.attention.logits(s, ms)
        att_x, att_s = torch.sigmoid(logit_x), torch.sigmoid(logit_s)
        with torch.no_grad():
            fx, fs = backbone.features(x, loss_cfg.masked_layers), backbone.features(s, loss_cfg.masked_layers)
        fo = f_out
        if cfg.swag:
            fx, fs, fo = _swag(fx), _swag(fs), _swag({k: f_out[k] for k in loss_cfg.masked_layers})
        terms = total_loss(
            fo, fx, fs, out, Regions.from_attention(att_x), Regions.from_attention(att_s), loss_cfg,
        )
        bce = attention_bce(logit_x, attention_region(lab)) + attention_bce(logit_s, attention_region(s_lab))
        terms["attention_bce"] = bce
        objective = cfg.paper_weight * terms["total"] + cfg.attention_weight * bce
    if paired is not None:
        objective = objective + _paired_terms(backbone, out, f_out, lab, paired, tasks, cfg, terms)
    terms["objective"] = objective
    return objective, terms, out, att_x


def _unique_layers(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def _swag(features: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: softmax_features(v) for k, v in features.items()}


def _paired_terms(
    backbone,
    out: Tensor, f_out: dict[str, Tensor], lab: Tensor, paired: Paired, tasks: TaskModels | None,
    cfg: PurifierTrainConfig, terms: dict[str, Tensor],
) -> Tensor:
    """The weighted v2 terms of one batch (pixel, feature, seg, gaze; each also put in ``terms``)."""
    total = out.new_zeros(())
    if cfg.pixel_weight:
        terms["pixel"] = pixel_loss(out, paired.target)
        total = total + cfg.pixel_weight * terms["pixel"]
    if cfg.feature_weight:
        with torch.no_grad():
            f_t = backbone.features(paired.target, PAIRED_LAYERS)
        terms["feature"] = feature_loss(f_out, f_t, PAIRED_LAYERS)
        total = total + cfg.feature_weight * terms["feature"]
    if tasks is not None and tasks.segmenter is not None and cfg.seg_weight:
        terms["seg"] = segmentation_consistency(tasks.segmenter(out), lab)
        total = total + cfg.seg_weight * terms["seg"]
    if tasks is not None and tasks.gaze is not None and cfg.gaze_weight and paired.gaze is not None:
        size: tuple[int, int] = tasks.gaze.config.input_size  # type: ignore[union-attr, assignment]
        terms["gaze"] = gaze_consistency(tasks.gaze(gaze_input(out, size)), paired.gaze)
        total = total + cfg.gaze_weight * terms["gaze"]
    return total


def sample_grid(x: Tensor, att: Tensor | None, out: Tensor, s: Tensor, rows: int = 4) -> np.ndarray:
    """uint8 grid: one row per sample, columns input | attention | output | style."""
    n = min(rows, x.shape[0])
    a = att[:n].expand(-1, 3, -1, -1) if att is not None else torch.zeros_like(x[:n])
    cols = [c.float() for c in (x[:n], a, out[:n].detach(), s[:n])]
    grid = torch.cat([torch.cat(list(c), dim=2) for c in zip(*cols, strict=True)], dim=1)
    return tensor_to_images(grid[None])[0]


Batch = tuple[Tensor, Tensor, Tensor, Tensor, "Paired | None"]


def _batch(data: TrainData, gen: torch.Generator, n: int, augment: str = "none") -> Batch:
    i = torch.randint(len(data.x), (n,), generator=gen)
    j = torch.randint(len(data.s), (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    x, lab = data.x[i].clone(), data.lab[i].clone()
    x[flip], lab[flip] = x[flip].flip(-1), lab[flip].flip(-1)
    if data.paired is None:
        x, lab = augment_content(x, lab, augment, gen)
        return x, lab, data.s[j], data.s_lab[j], None
    p = data.paired.rows(i)
    t, nl = p.target.clone(), None if p.net_lab is None else p.net_lab.clone()
    t[flip] = t[flip].flip(-1)
    if nl is not None:
        nl[flip] = nl[flip].flip(-1)
    g = p.gaze
    if g is not None:  # a mirrored eye looks the mirrored way: x → −x in the camera frame
        g = g.clone()
        g[flip, 0] = -g[flip, 0]
    x, lab, t, nl = augment_paired(x, lab, t, nl, augment, gen)
    return x, lab, data.s[j], data.s_lab[j], Paired(t, g, nl)


def _part(batch: Batch, parts: int, part: int) -> Batch:
    """Micro-batch ``part`` of ``parts`` of a batch (the batch itself when ``parts`` is 1)."""
    if parts == 1:
        return batch
    x, lab, s, sl, p = batch
    rows = part_slice(x.shape[0], parts, part)
    x, lab, s, sl = split((x, lab, s, sl), parts, part)
    if p is not None:
        p = Paired(p.target[rows], None if p.gaze is None else p.gaze[rows], None if p.net_lab is None else p.net_lab[rows])
    return x, lab, s, sl, p


class Objective(nn.Module):
    """:func:`purifier_terms` as a module, so that DistributedDataParallel sees the forward."""

    def __init__(self, model: PurifierModel, backbone: nn.Module, cfg: PurifierTrainConfig, tasks: TaskModels | None = None) -> None:
        super().__init__()
        self.model, self.backbone, self.cfg, self.tasks = model, backbone, cfg, tasks

    def forward(self, x: Tensor, lab: Tensor, s: Tensor, s_lab: Tensor,
                paired: Paired | None = None) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor | None]:
        return purifier_terms(self.model, self.backbone, x, lab, s, s_lab, self.cfg, paired, self.tasks)


@torch.no_grad()
def validate(model: PurifierModel, backbone, data: TrainData, cfg: PurifierTrainConfig,
             tasks: TaskModels | None = None, placement: Placement | None = None) -> dict[str, float]:
    """Mean objective and terms on the held-out content (eval mode; first style image);
    with paired renders also the mean PSNR (dB) of the outputs to their targets."""
    if len(data.x_val) == 0:
        return {}
    was = model.training
    model.eval()
    n = len(data.x_val)
    s = data.s[:1].expand(n, -1, -1, -1)
    sl = data.s_lab[:1].expand(n, -1, -1)
    p = placement or make_placement("cpu")
    x_val, lab_val, s, sl, paired_val = p.to((data.x_val, data.lab_val, s, sl, data.paired_val))
    with p.autocast():
        obj, terms, out, _ = purifier_terms(model, backbone, x_val, lab_val, s, sl, cfg, paired_val, tasks)
    out = out.float()
    model.train(was)
    keys = ("total", "content", "style", "tv", "attention_bce", "pixel", "feature", "seg", "gaze")
    rec = {"objective": float(obj), **{k: float(terms[k]) for k in keys if k in terms}}
    if data.paired_val is not None:
        mse = (out - paired_val.target).square().mean(dim=(1, 2, 3)).clamp_min(1e-10)
        rec["psnr"] = float((-10 * torch.log10(mse)).mean())
    return rec


@flush_denormals()
def train_purifier(cfg: PurifierTrainConfig, run_dir: str | Path, resume: bool = False, progress: bool | None = None,
                   device: str | torch.device | Placement | None = None) -> Path:
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

    ``device``: where it trains (:mod:`eyepurify.device`; None: the process's placement, with
    its autocast precision; fp16 uses a gradient scaler). Batches are drawn on the CPU by
    the run's generator, so the data order does not depend on the device. ``progress``: a
    bar with rate and ETA (None: on a terminal only, or as ``EYEPURIFY_PROGRESS`` says).
    """
    placement = make_placement(device)
    dist = from_env(placement=placement)
    try:
        return _train(cfg, RunFolder(run_dir), resume, progress, dist, placement)
    finally:
        shutdown(dist)


def _train(cfg: PurifierTrainConfig, run: RunFolder, resume: bool, progress: bool | None, dist: Distributed,
           placement: Placement | None = None) -> Path:
    placement = placement or make_placement("cpu")
    ckpt = run.start(resume)
    if ckpt is not None:
        cfg = replace(PurifierTrainConfig.from_dict(ckpt.config), steps=cfg.steps)
    check_micro_batches(cfg.batch, cfg.micro_batches, dist)
    dist.barrier()  # every rank has checked the folder before rank 0 writes to it
    if dist.main:
        run.write_config(cfg.to_dict())

    progress = progress if dist.main else False  # one bar, rank 0's
    data = create_data(cfg, progress)
    backbone = placement.module(create_loss_network(cfg))
    model = create_model(cfg)
    placement.module(model)  # moved before the optimiser is made (its state follows the parameters)
    opt = create_optimizer(model, cfg)
    scaler = placement.grad_scaler()
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    if ckpt is not None:
        restore(ckpt, model, opt, generators={"batches": gen})
        step = ckpt.step
    else:
        torch.manual_seed(cfg.seed)
    tasks = create_task_models(cfg, placement)
    objective = wrap(placement.module(Objective(model, backbone, cfg, tasks)), dist)
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
            x, lab, s, sl, paired = placement.to(_part(batch, parts, part))
            with placement.autocast():
                obj, terms, out, att = objective(x, lab, s, sl, paired)
            if not first:  # the sheet's last column: the paired target, else the style image
                first.update(x=x, att=att, out=out.detach(), s=s if paired is None else paired.target)
            return obj, {k: v for k, v in terms.items() if "/" not in k}

        opt.zero_grad(set_to_none=True)
        values = accumulate(model, objective, run_part, parts, dist, cfg.seed, i, scaler=scaler)
        obj = values["objective"] if "objective" in values else values["total"]
        if not np.isfinite(obj):
            checkpoint(i)
            raise EyepurifyError(f"loss became {obj} at step {i}; lower --lr (checkpoint kept)")
        scaler.step(opt)
        scaler.update()
        rec: dict[str, object] = {"time": round(time.perf_counter() - t0, 3), **values}
        if dist.main and (i + 1 == cfg.steps or (i + 1) % cfg.val_every == 0):
            rec["val"] = validate(model, backbone, data, cfg, tasks, placement)
        if dist.main and (i + 1 == cfg.steps or (i + 1) % cfg.sample_every == 0):
            write_image(run.path / "samples" / f"step_{i + 1:06d}.png",
                        sample_grid(first["x"], first["att"], first["out"], first["s"]))  # type: ignore[arg-type]
        shown["loss"] = f"{obj:.4g}"
        return rec

    shown: dict[str, str] = {}  # the bar's postfix
    model.train()
    t0 = time.perf_counter()
    end = run_loop(run if dist.main else None, step, cfg.steps, train_step, checkpoint,
                   checkpoint_every=cfg.checkpoint_every, desc="train", progress=progress,
                   postfix=lambda rec: shown, agree=dist.any)
    step = end.step
    if end.interrupted:
        raise Interrupted(f"{run.path}: interrupted at step {step} of {cfg.steps}; checkpoint written, "
                          "no model.safetensors (continue with --resume)", end.signum)
    model_path = run.path / "model.safetensors"
    if dist.main:
        meta = {"kind": "purifier", "net": model.net.config.to_dict(), "train": cfg.to_dict(), "step": step,
                "backbone": backbone.name, "backbone_is_random": backbone.is_random,
                "eye_scale": _eye_scale(data.lab).to_meta(), "color": _color(data.x)}
        save_model(model_path, model.net, meta)
    dist.barrier()  # the model file exists when any rank returns
    return model_path


def _color(x: Tensor) -> str:
    """"gray" when every content image has three equal channels (a model for gray inputs), else "rgb"."""
    return "gray" if bool((x[:, 0] == x[:, 1]).all() and (x[:, 1] == x[:, 2]).all()) else "rgb"


def _eye_scale(labels: Tensor) -> EyeScale:
    """The eye scale of the content label maps (N×H×W), or the render scale if none shows an eye."""
    try:
        return measure_eye_scale(list(labels.to(torch.uint8).numpy()))
    except ValueError:
        return EyeScale.for_renders(labels.shape[-2:])

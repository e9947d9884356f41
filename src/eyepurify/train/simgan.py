"""Training the SimGAN refiner baseline (Shrivastava et al. 2017; METHOD §10).

``train_simgan(cfg, synthetic, real)`` reads as: hold out a few synthetic and real images
for evaluation → build refiner R and local discriminator D (seeded) → pre-train R on the
self-regularisation loss alone (it learns to copy its input) → pre-train D on real vs
refined → alternate: one R update on ``−log D_real(R(x)) + λ·|R(x) − x|`` (per-patch
cross-entropy, L1 self-regularisation), then ``d_steps_per_g`` D updates on a batch of real
images and a batch of refined ones, ``history_fraction`` of which come from a buffer of
earlier refined images (the buffer then takes as many of the newest refined images in
random slots) → measure how far the refined held-out images moved from their inputs.

The measured difference is the point: public ports' users report refiners that learn the
identity (refined ≈ synthetic). ``log["mean_abs_diff"]`` is mean |refined − input| on the
held-out synthetic images in grey levels (0..255) and ``log["near_identity"]`` is true below
:data:`NEAR_IDENTITY_THRESHOLD` (1 grey level: smaller than the rounding of an 8-bit image
can show), together with the intensity statistics of synthetic, refined and real images.
The opposite failure is flagged too: ``log["collapsed"]`` is true when the refined images'
pixel standard deviation is below :data:`COLLAPSE_THRESHOLD` (one constant output, seen when
the discriminator wins and the refiner's tanh saturates).

Loss scales (the paper gives λ for eyes only implicitly): the adversarial term is the mean
cross-entropy over patches and images, the regulariser the mean absolute difference over
pixels with images in [0, 1]; ``reg_weight`` is λ on these means.

Determinism: network initialisation is seeded from ``cfg.seed`` (the global torch RNG is
left untouched) and every sampled batch, history slot and held-out split comes from one
``numpy.random.Generator(cfg.seed)``, so a run repeats exactly with the same torch build
and thread count. A run folder's checkpoint holds both networks, both optimizers, the
history buffer, that generator and the loss lists, so ``resume`` continues bit-exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from eyepurify.device import Placement, make_placement
from eyepurify.errors import EyepurifyError, Interrupted
from eyepurify.io import write_bytes, write_json
from eyepurify.models.export import save_model
from eyepurify.models.simgan import (
    MODEL_KIND,
    NEAR_IDENTITY_THRESHOLD,
    REAL,
    REFINED,
    REFINER_PRESETS,
    LocalDiscriminator,
    Refiner,
    arrays_to_tensor,
    count_parameters,
    create_discriminator,
    create_refiner,
    device_of,
    refine_arrays,
)
from eyepurify.records import AsDict
from eyepurify.train.checkpoint import restore, save_checkpoint
from eyepurify.train.loop import RunFolder, run_loop

COLLAPSE_THRESHOLD = 1.0  #: grey levels; refined pixel std below it = "collapsed" (one constant output)
REFINER_NAME = "refiner.safetensors"
OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class SimGANConfig(AsDict):
    """Everything that defines a SimGAN run (saved as JSON with it).

    Defaults fit a CPU budget; the paper's eye-gaze values are in brackets (docs/simgan.md).
    steps: refiner updates after pre-training. batch: images per R batch and per D batch
    half [512]. lr / optimizer: "adam" (β = 0.5, 0.999) or "sgd" [SGD, 0.001]. reg_weight:
    λ of the L1 self-regularisation on per-pixel means (see the module docstring).
    history_size: refined images kept for D; history_fraction: share of each D refined batch
    drawn from it [0.5]. pretrain_refiner_steps [1000] / pretrain_disc_steps [200].
    d_steps_per_g: D updates per R update, fractions accumulate [K_d/K_g = 1/50].
    size: (H, W) of every image; channels: 1 or 3. model: "default" (the paper's networks) or
    "test_tiny". eval_count: held-out synthetic (and real) images for the final measurement.
    checkpoint_every: steps (of all three stages) between checkpoints of a run folder.
    """

    steps: int = 400
    batch: int = 16
    lr: float = 5e-4
    optimizer: str = "adam"
    reg_weight: float = 1.0
    history_size: int = 1024
    history_fraction: float = 0.5
    pretrain_refiner_steps: int = 100
    pretrain_disc_steps: int = 50
    d_steps_per_g: float = 1.0
    size: tuple[int, int] = (36, 60)
    channels: int = 1
    model: str = "default"
    seed: int = 0
    eval_count: int = 64
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", tuple(int(s) for s in self.size))
        if self.steps < 0 or self.pretrain_refiner_steps < 0 or self.pretrain_disc_steps < 0:
            raise ValueError("step counts must be ≥ 0")
        if self.batch < 1 or self.history_size < 0 or self.eval_count < 1 or self.checkpoint_every < 1:
            raise ValueError("batch, eval_count and checkpoint_every must be ≥ 1 and history_size ≥ 0")
        if not 0.0 <= self.history_fraction <= 1.0 or self.d_steps_per_g < 0:
            raise ValueError("history_fraction must be in [0, 1] and d_steps_per_g ≥ 0")
        if self.lr <= 0 or self.reg_weight < 0:
            raise ValueError("lr must be > 0 and reg_weight ≥ 0")
        if len(self.size) != 2 or min(self.size) < 4:
            raise ValueError(f"size must be (H, W) with sides ≥ 4, got {self.size}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.model not in REFINER_PRESETS:
            raise ValueError(f"model must be one of {sorted(REFINER_PRESETS)}, got {self.model!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> SimGANConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown SimGANConfig fields {unknown}")
        return cls(**d)  # type: ignore[arg-type]


@dataclass
class SimGANResult:
    """The trained refiner (eval mode) and the run's log (losses, timings, measurements)."""

    refiner: Refiner
    log: dict[str, object] = field(default_factory=dict)


class HistoryBuffer:
    """Earlier refined images for the discriminator (Shrivastava et al. §2.3).

    ``sample(n, rng)`` draws ``n`` stored images without replacement (fewer if fewer are
    stored); ``push(images, rng)`` appends until ``capacity`` is reached, then overwrites
    random slots. Stored tensors are detached copies (callers' tensors are never aliased).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.images: torch.Tensor | None = None
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def push(self, images: torch.Tensor, rng: np.random.Generator) -> None:
        if self.capacity == 0 or len(images) == 0:
            return
        images = images.detach()[: self.capacity]
        if self.images is None:
            self.images = torch.empty((self.capacity, *images.shape[1:]), dtype=images.dtype, device=images.device)
        free = min(self.capacity - self.count, len(images))
        if free:
            self.images[self.count : self.count + free] = images[:free]
            self.count += free
        rest = images[free:]
        if len(rest):
            slots = rng.choice(self.count, size=len(rest), replace=False)
            self.images[torch.from_numpy(slots)] = rest

    def sample(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        n = min(int(n), self.count)
        if n == 0 or self.images is None:
            return torch.empty(0, device=None if self.images is None else self.images.device)
        idx = rng.choice(self.count, size=n, replace=False)
        return self.images[torch.from_numpy(idx)].clone()


# ---------------------------------------------------------------- data helpers


def _check_images(name: str, arr: np.ndarray, cfg: SimGANConfig) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 3 and cfg.channels == 1:
        arr = arr[..., None]
    want = (*cfg.size, cfg.channels)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != want:
        raise EyepurifyError(
            f"{name} images are {arr.dtype} {arr.shape}, expected uint8 N×{want[0]}×{want[1]}×{want[2]} "
            "(resize/convert them to the configured size and channels)"
        )
    if len(arr) < 1:
        raise EyepurifyError(f"no {name} images (pass at least one)")
    return arr


def _split(n: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool]:
    """(train indices, eval indices, eval_is_train) holding out ≤ count and ≤ n/5 items."""
    perm = rng.permutation(n)
    k = min(count, n // 5)
    if k < 1:
        return perm, perm[:count], True
    return perm[k:], perm[:k], False


def _w1(a: np.ndarray, b: np.ndarray) -> float:
    """Wasserstein-1 distance between the pixel-value distributions of two arrays (grey levels)."""
    q = np.linspace(0.0, 1.0, 1001)
    return float(np.mean(np.abs(np.quantile(a.astype(np.float64), q) - np.quantile(b.astype(np.float64), q))))


# ---------------------------------------------------------------- public API


def _ce(logits: torch.Tensor, target: int) -> torch.Tensor:
    """Mean per-patch cross-entropy of N×2×h×w logits against one class."""
    t = torch.full((logits.shape[0], *logits.shape[2:]), target, dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, t)


def _acc(logits: torch.Tensor, target: int) -> float:
    return float((logits.argmax(1) == target).float().mean())


def _set_grad(module: torch.nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def _optimizer(params, cfg: SimGANConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr)
    return torch.optim.Adam(params, lr=cfg.lr, betas=(0.5, 0.999))


def create_networks(cfg: SimGANConfig) -> tuple[Refiner, LocalDiscriminator]:
    """Refiner and discriminator initialised from ``cfg.seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        refiner = create_refiner(cfg.model, cfg.channels)
        disc = create_discriminator(cfg.model, cfg.channels)
    return refiner, disc


@torch.no_grad()
def measure(refiner: Refiner, disc: LocalDiscriminator | None, synthetic: np.ndarray, real: np.ndarray) -> dict[str, float | bool]:
    """Refined-vs-input difference and intensity statistics on uint8 N×H×W×C arrays."""
    refined = np.stack(refine_arrays(refiner, list(synthetic)))
    diff = float(np.abs(refined.astype(np.float64) - synthetic.astype(np.float64)).mean())
    s, r, y = (a.astype(np.float64) for a in (synthetic, refined, real))
    out: dict[str, float | bool] = {
        "mean_abs_diff": diff,
        "max_abs_diff": float(np.abs(r - s).max()),
        "near_identity": diff < NEAR_IDENTITY_THRESHOLD,
        "collapsed": float(r.std()) < COLLAPSE_THRESHOLD,
        "synthetic_mean": float(s.mean()), "refined_mean": float(r.mean()), "real_mean": float(y.mean()),
        "synthetic_std": float(s.std()), "refined_std": float(r.std()), "real_std": float(y.std()),
        "mean_gap_before": float(abs(s.mean() - y.mean())), "mean_gap_after": float(abs(r.mean() - y.mean())),
        "w1_before": _w1(s, y), "w1_after": _w1(r, y),
    }
    if disc is not None:
        disc.eval()
        dev = device_of(disc)
        out["disc_acc_real"] = _acc(disc(arrays_to_tensor(real, dev)), REAL)
        out["disc_acc_refined"] = _acc(disc(arrays_to_tensor(refined, dev)), REFINED)
        out["disc_acc_synthetic_raw"] = _acc(disc(arrays_to_tensor(synthetic, dev)), REFINED)
        disc.train()
    return out


class _Nets(torch.nn.Module):
    """What a SimGAN checkpoint holds as its model: both networks and the history buffer
    (``history``: capacity×C×H×W float, its first ``count`` slots in use)."""

    def __init__(self, refiner: Refiner, disc: LocalDiscriminator, cfg: SimGANConfig) -> None:
        super().__init__()
        self.refiner, self.disc = refiner, disc
        self.register_buffer("history", torch.zeros(cfg.history_size, cfg.channels, *cfg.size))


def _data_id(synthetic: np.ndarray, real: np.ndarray) -> str:
    """A fingerprint of the training images (a resumed run must see the same ones)."""
    h = hashlib.sha256()
    for a in (synthetic, real):
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _check_resume(saved: dict[str, object], cfg: SimGANConfig, path: str) -> None:
    old = SimGANConfig.from_dict(saved)
    differ = [f.name for f in dataclasses.fields(SimGANConfig) if f.name != "steps" and getattr(old, f.name) != getattr(cfg, f.name)]
    if differ:
        raise EyepurifyError(f"{path}: the run was started with different settings ({', '.join(differ)}) "
                             "(resume with the same settings; only --steps may change)")


def train_simgan(
    cfg: SimGANConfig,
    synthetic: np.ndarray,
    real: np.ndarray,
    run_dir: str | Path | None = None,
    progress: bool | None = True,
    resume: bool = False,
    device: str | torch.device | Placement | None = None,
) -> SimGANResult:
    """Train a SimGAN refiner on uint8 N×H×W×C ``synthetic`` and unlabelled M×H×W×C ``real``
    images (H×W = ``cfg.size``, C = ``cfg.channels``; N×H×W accepted for C = 1).

    With ``run_dir`` (the :mod:`eyepurify.train.loop` layout): config.json,
    checkpoint.safetensors (both networks, optimizers, history buffer, RNG; every
    ``checkpoint_every`` steps, on Ctrl-C and at the end) and log.jsonl while training; at
    the end refiner.safetensors (load with :func:`load_refiner`), log.json and samples.png
    (held-out synthetic vs refined; no real images). ``resume``: continue the run in
    ``run_dir`` bit-exactly (same settings and images; only ``steps`` may grow). A first
    SIGINT/SIGTERM writes the checkpoint and raises :class:`Interrupted` (exit 130 / 143).
    progress: True shows a bar on stderr, None only on a terminal, False never.
    device: where both networks train (:mod:`eyepurify.device`; None: the process's), in
    float32 (the refiner's L1 regulariser is the point of the baseline); batches are drawn on the CPU.
    """
    placement = make_placement(device)
    synthetic = _check_images("synthetic", synthetic, cfg)
    real = _check_images("real", real, cfg)
    if resume and run_dir is None:
        raise EyepurifyError("resuming needs the run folder (run_dir)")
    run = RunFolder(run_dir) if run_dir is not None else None
    ckpt = run.start(resume) if run is not None else None
    data_id = _data_id(synthetic, real)
    if ckpt is not None:
        _check_resume(ckpt.config, cfg, ckpt.path)
        if ckpt.extra.get("data") != data_id:
            raise EyepurifyError(f"{ckpt.path}: the run was started on other images (resume with the same "
                                 "--synthetic, --real and --max-images)")
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    s_train, s_eval, s_shared = _split(len(synthetic), cfg.eval_count, rng)
    r_train, r_eval, r_shared = _split(len(real), cfg.eval_count, rng)
    refiner, disc = create_networks(cfg)
    nets = placement.module(_Nets(refiner, disc, cfg)) if not placement.compile else _Nets(refiner, disc, cfg).to(placement.device)
    refiner.train()
    disc.train()
    opt_r = _optimizer(refiner.parameters(), cfg)
    opt_d = _optimizer(disc.parameters(), cfg)
    history = HistoryBuffer(cfg.history_size)
    b = cfg.batch
    pre_reg: list[float] = []
    pre_d: list[float] = []
    hist: dict[str, list[float]] = {k: [] for k in ("r_adv", "r_reg", "d_loss", "d_acc_real", "d_acc_refined")}
    state: dict[str, object] = {"acc": 0.0, "pretrained": None}
    start = 0
    if ckpt is not None:
        restore(ckpt, nets, {"refiner": opt_r, "disc": opt_d}, generators={"batches": rng}, global_rng=False)
        loop = ckpt.extra["loop"]
        pre_reg, pre_d, hist = list(loop["pre_reg"]), list(loop["pre_d"]), {k: list(v) for k, v in loop["hist"].items()}
        state = {"acc": loop["acc"], "pretrained": loop["pretrained"]}
        history.count = int(loop["history_count"])
        start = ckpt.step
    if history.capacity:
        history.images = nets.history  # type: ignore[assignment]  # the buffer the checkpoint saves
    ckpt_path = run.checkpoint if run is not None else None
    if run is not None:
        run.write_config(cfg.to_dict())

    def checkpoint(step: int) -> None:
        if ckpt_path is None:
            return
        loop = {"pre_reg": pre_reg, "pre_d": pre_d, "hist": hist, "acc": state["acc"],
                "pretrained": state["pretrained"], "history_count": history.count}
        save_checkpoint(ckpt_path, nets, step=step, optimizer={"refiner": opt_r, "disc": opt_d}, config=cfg.to_dict(),
                        generators={"batches": rng}, extra={"data": data_id, "loop": loop}, kind=MODEL_KIND)

    def synth_batch() -> torch.Tensor:
        return arrays_to_tensor(synthetic[rng.choice(s_train, size=b, replace=len(s_train) < b)], placement.device)

    def real_batch() -> torch.Tensor:
        return arrays_to_tensor(real[rng.choice(r_train, size=b, replace=len(r_train) < b)], placement.device)

    def d_update(refined_now: torch.Tensor) -> tuple[float, float, float]:
        n_hist = min(int(round(b * cfg.history_fraction)), len(history))
        fake = torch.cat([refined_now[: b - n_hist], history.sample(n_hist, rng).reshape(-1, *refined_now.shape[1:])])
        history.push(refined_now[: max(1, b - n_hist)], rng)
        yr = real_batch()
        lr_, lf = disc(yr), disc(fake)
        loss = 0.5 * (_ce(lr_, REAL) + _ce(lf, REFINED))
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()
        return loss.item(), _acc(lr_.detach(), REAL), _acc(lf.detach(), REFINED)

    n_pre_r, n_pre_d = cfg.pretrain_refiner_steps, cfg.pretrain_disc_steps

    def measure_pretrained() -> None:
        if state["pretrained"] is None:
            state["pretrained"] = measure(refiner, None, synthetic[s_eval], real[r_eval])

    def train_step(i: int) -> dict[str, object]:
        if i < n_pre_r:  # 1. refiner pre-training on self-regularisation alone
            _set_grad(disc, False)
            x = synth_batch()
            loss = F.l1_loss(refiner(x), x)
            opt_r.zero_grad(set_to_none=True)
            loss.backward()
            opt_r.step()
            _set_grad(disc, True)
            pre_reg.append(loss.item())
            return {"stage": "pre-R", "l1": pre_reg[-1]}
        measure_pretrained()
        if i < n_pre_r + n_pre_d:  # 2. discriminator pre-training on real vs refined
            with torch.no_grad():
                refined = refiner(synth_batch())
            loss_d, _, _ = d_update(refined)
            pre_d.append(loss_d)
            return {"stage": "pre-D", "d": loss_d}
        # 3. adversarial training
        _set_grad(disc, False)
        x = synth_batch()
        y = refiner(x)
        adv = _ce(disc(y), REAL)
        reg = F.l1_loss(y, x)
        loss = adv + cfg.reg_weight * reg
        opt_r.zero_grad(set_to_none=True)
        loss.backward()
        opt_r.step()
        _set_grad(disc, True)
        hist["r_adv"].append(adv.item())
        hist["r_reg"].append(reg.item())
        acc = float(state["acc"]) + cfg.d_steps_per_g  # type: ignore[arg-type]
        first = True
        while acc >= 1.0:
            acc -= 1.0
            refined = y.detach() if first else refiner(synth_batch()).detach()
            first = False
            d_loss, a_real, a_ref = d_update(refined)
            hist["d_loss"].append(d_loss)
            hist["d_acc_real"].append(a_real)
            hist["d_acc_refined"].append(a_ref)
        state["acc"] = acc
        return {"stage": "adv", "adv": hist["r_adv"][-1], "reg": hist["r_reg"][-1],
                **({"d": hist["d_loss"][-1]} if hist["d_loss"] else {})}

    def postfix(rec: dict[str, object]) -> dict[str, str]:
        if rec["stage"] == "pre-R":
            return {"stage": "pre-R", "l1": f"{rec['l1']:.4f}"}
        if rec["stage"] == "pre-D":
            return {"stage": "pre-D", "d": f"{rec['d']:.3f}"}
        return {"adv": f"{rec['adv']:.3f}", "reg": f"{255 * rec['reg']:.2f}",  # type: ignore[operator]
                "d": f"{rec['d']:.3f}" if "d" in rec else "-"}

    total = n_pre_r + n_pre_d + cfg.steps
    end = run_loop(run, start, total, train_step, checkpoint, checkpoint_every=cfg.checkpoint_every,
                   desc="simgan", progress=progress, postfix=postfix)
    if end.interrupted:
        raise Interrupted(f"{run.path if run else 'simgan'}: interrupted at step {end.step} of {total}; "
                          "checkpoint written, no refiner.safetensors (continue with --resume)", end.signum)
    measure_pretrained()
    log: dict[str, object] = {
        "config": cfg.to_dict(),
        "parameters": {"refiner": count_parameters(refiner), "discriminator": count_parameters(disc)},
        "images": {"synthetic_train": int(len(s_train)), "synthetic_eval": int(len(s_eval)),
                   "real_train": int(len(r_train)), "real_eval": int(len(r_eval)),
                   "eval_is_train": bool(s_shared or r_shared)},
        "near_identity_threshold": NEAR_IDENTITY_THRESHOLD,
        "pretrained": state["pretrained"],
    }
    refiner.eval()
    seconds = time.perf_counter() - t0
    final = measure(refiner, disc, synthetic[s_eval], real[r_eval])
    tail = max(1, cfg.steps // 10)
    log.update(final)
    log["summary"] = {
        "pretrain_refiner_l1_last": pre_reg[-1] if pre_reg else None,
        "pretrain_disc_loss_last": pre_d[-1] if pre_d else None,
        **{f"{k}_mean_last10pct": (float(np.mean(v[-tail:])) if v else None) for k, v in hist.items()},
    }
    every = max(1, cfg.steps // 200)
    log["history"] = {k: [round(x, 5) for x in v[::every]] for k, v in hist.items()}
    log["history_every"] = every
    log["seconds"] = seconds
    log["threads"] = torch.get_num_threads()
    result = SimGANResult(refiner=refiner.to("cpu"), log=log)
    if run_dir is not None:
        write_run(run_dir, cfg, result, synthetic[s_eval])
    return result


def write_run(run_dir: str | Path, cfg: SimGANConfig, result: SimGANResult, synthetic_eval: np.ndarray) -> None:
    """refiner.safetensors, config.json, log.json and samples.png (synthetic vs refined only)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_model(run_dir / REFINER_NAME, result.refiner,
               {"kind": MODEL_KIND, "refiner": result.refiner.config.to_dict(), "train": cfg.to_dict()})
    write_json(run_dir / "config.json", cfg.to_dict())
    write_json(run_dir / "log.json", result.log)
    save_samples(run_dir / "samples.png", result.refiner, synthetic_eval[:8])


def save_samples(path: str | Path, refiner: Refiner, synthetic: np.ndarray) -> None:
    """A 3-row figure: synthetic inputs, refined outputs, |difference| × 4 (uint8 N×H×W×C)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    refined = np.stack(refine_arrays(refiner, list(synthetic)))
    diff = np.clip(np.abs(refined.astype(np.int16) - synthetic.astype(np.int16)) * 4, 0, 255).astype(np.uint8)
    n = len(synthetic)
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n, 3.4), squeeze=False)
    for row, (name, arr) in enumerate((("synthetic", synthetic), ("refined", refined), ("|diff| × 4", diff))):
        for j in range(n):
            ax = axes[row, j]
            im = arr[j]
            ax.imshow(im[..., 0] if im.shape[-1] == 1 else im, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_bytes(Path(path), buf.getvalue())

"""The paper's gaze CNN (METHOD §11; the network of SimGAN's gaze experiment).

Layers (no padding, ReLU after every conv and hidden FC)::

    35×55 gray → conv32 3×3 → conv32 3×3 → conv64 3×3 → maxpool 3×3 /2 → conv80 3×3
    → conv192 3×3 → maxpool 2×2 /2 → flatten (192×5×10 = 9600) → FC 1000 → FC 3 (gaze vector)

What "FC9600" is: with 3×3 valid convolutions and the 3×3 / 2×2 poolings at stride 2 (as
SimGAN describes them), a 35×55 input leaves 192 maps of 5×10 = exactly 9600 values, so
"FC9600" names the flattened conv output that feeds FC1000, not a 9600-unit layer (which
would add 10⁸ weights). At 36×60 the same stack leaves 192×5×11 = 10560 values; the
"paper" model therefore takes 35×55 (MPIIGaze's patch size) and the wrapper resizes
36×60 inputs to it. :func:`flat_size` computes the number for any input.

The output is normalised to a unit vector; the loss is the squared L2 distance between
unit vectors (= 2 − 2 cos of the angular error). Training: Adam, constant lr 1e-3,
batch 512, until the validation error stops improving (early stopping with patience on
a held-out split; the best epoch's weights are kept).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from eyepurify.device import make_placement
from eyepurify.errors import EyepurifyError
from eyepurify.gaze.features import to_gray
from eyepurify.gaze.geometry import angular_error, pitchyaw_to_vector, vector_to_pitchyaw
from eyepurify.progress import progress_bar
from eyepurify.records import AsDict


@dataclass(frozen=True)
class GazeCNNConfig(AsDict):
    """Layer widths and the input size (H, W) of a gaze CNN."""

    input_size: tuple[int, int] = (35, 55)
    convs1: tuple[int, ...] = (32, 32, 64)
    convs2: tuple[int, ...] = (80, 192)
    fc: int = 1000

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> GazeCNNConfig:
        """The config of a model file's ``net`` entry (lists become tuples); TypeError/ValueError when malformed."""
        if set(d) - {"input_size", "convs1", "convs2", "fc"}:
            raise ValueError(f"unknown gaze CNN fields {sorted(set(d) - {'input_size', 'convs1', 'convs2', 'fc'})}")
        size = tuple(int(v) for v in d.get("input_size", (35, 55)))  # type: ignore[attr-defined]
        c1 = tuple(int(v) for v in d.get("convs1", (32, 32, 64)))  # type: ignore[attr-defined]
        c2 = tuple(int(v) for v in d.get("convs2", (80, 192)))  # type: ignore[attr-defined]
        if len(size) != 2 or not c1 or not c2 or min(*size, *c1, *c2) < 1:
            raise ValueError(f"invalid gaze CNN config {d}")
        return cls(size, c1, c2, int(d.get("fc", 1000)))  # type: ignore[call-overload]


#: name -> config; "paper" is METHOD §11, "small" the shipped estimator, "test_tiny" a stand-in for fast tests
MODELS: dict[str, GazeCNNConfig] = {
    "paper": GazeCNNConfig(),
    "test_tiny": GazeCNNConfig(input_size=(18, 30), convs1=(4, 8), convs2=(8,), fc=32),
    # the shipped estimator (weights/gaze.safetensors, docs/training.md): 36×60, 0.3 M weights (1.2 MB)
    "small": GazeCNNConfig(input_size=(36, 60), convs1=(8, 16), convs2=(32,), fc=128),
}


def _conv_out(n: int, k: int, s: int = 1) -> int:
    return (n - k) // s + 1


def flat_size(config: GazeCNNConfig) -> int:
    """Values entering the first FC layer (9600 for the paper model at 35×55)."""
    h, w = config.input_size
    for _ in config.convs1:
        h, w = _conv_out(h, 3), _conv_out(w, 3)
    h, w = _conv_out(h, 3, 2), _conv_out(w, 3, 2)
    for _ in config.convs2:
        h, w = _conv_out(h, 3), _conv_out(w, 3)
    h, w = _conv_out(h, 2, 2), _conv_out(w, 2, 2)
    if h < 1 or w < 1:
        raise EyepurifyError(f"input size {config.input_size} is too small for this gaze CNN")
    return config.convs2[-1] * h * w


class GazeCNN(nn.Module):
    """float N×1×H×W in [0, 1] → N×3 unit gaze vectors."""

    def __init__(self, config: GazeCNNConfig = MODELS["paper"]) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c = 1
        for o in config.convs1:
            layers += [nn.Conv2d(c, o, 3), nn.ReLU(inplace=True)]
            c = o
        layers.append(nn.MaxPool2d(3, 2))
        for o in config.convs2:
            layers += [nn.Conv2d(c, o, 3), nn.ReLU(inplace=True)]
            c = o
        layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(flat_size(config), config.fc), nn.ReLU(inplace=True), nn.Linear(config.fc, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.head(self.features(x - 0.5))
        return torch.nn.functional.normalize(v, dim=1, eps=1e-8)


def images_to_input(images: np.ndarray | list[np.ndarray], size: tuple[int, int]) -> torch.Tensor:
    """Gray or RGB uint8 images → float N×1×h×w in [0, 1] at ``size``."""
    g = to_gray(images, size)
    return torch.from_numpy(g.astype(np.float32) / 255.0)[:, None]


@dataclass
class CNNEstimator:
    """fit/predict wrapper of :class:`GazeCNN` on uint8 gray (or RGB) images and (pitch, yaw).

    val_fraction of the training images (at least one) is held out for early stopping:
    training stops after ``patience`` epochs without a lower mean validation angular error
    (or at ``max_epochs``) and the best epoch's weights are kept. ``time_limit_s``: stop
    after this many seconds of training (None: no limit). One ``seed`` fixes the split,
    the initial weights and the batch order.
    """

    model: str = "paper"
    seed: int = 0
    batch: int = 512
    lr: float = 1e-3
    max_epochs: int = 100
    patience: int = 5
    val_fraction: float = 0.1
    time_limit_s: float | None = None
    progress: bool | None = None
    #: where it trains and predicts (:mod:`eyepurify.device`; None: the process's placement)
    device: str | None = None
    log: list[dict[str, float]] = field(default_factory=list)
    net: GazeCNN | None = None

    def _config(self) -> GazeCNNConfig:
        if self.model not in MODELS:
            raise EyepurifyError(f"unknown gaze CNN {self.model!r} (use one of {', '.join(MODELS)})")
        return MODELS[self.model]

    def fit(self, images: np.ndarray, pitchyaw: np.ndarray) -> CNNEstimator:
        cfg = self._config()
        py = np.asarray(pitchyaw, np.float64)
        if len(images) != len(py) or len(py) < 2:
            raise EyepurifyError(f"need at least 2 images with one gaze each, got {len(images)} and {len(py)}")
        x = images_to_input(images, cfg.input_size)
        y = torch.from_numpy(pitchyaw_to_vector(py).astype(np.float32))
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(x))
        n_val = min(len(x) - 1, max(1, round(self.val_fraction * len(x))))
        val, tr = order[:n_val], order[n_val:]
        torch.manual_seed(self.seed)
        net = GazeCNN(cfg)
        placement = make_placement(self.device)
        placement.module(net)  # before the optimiser (its state follows the parameters)
        x, y = placement.to((x, y))
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        best, best_state, bad = float("inf"), copy.deepcopy(net.state_dict()), 0
        t0 = time.perf_counter()
        self.log = []
        bar = progress_bar(range(self.max_epochs), total=self.max_epochs, desc=f"gaze cnn ({self.model})",
                           disable=None if self.progress is None else not self.progress, unit="epoch")
        for epoch in bar:
            net.train()
            perm = torch.from_numpy(tr)[torch.randperm(len(tr), generator=gen)].to(x.device)
            total = 0.0
            for s in range(0, len(perm), self.batch):
                idx = perm[s : s + self.batch]
                loss = ((net(x[idx]) - y[idx]) ** 2).sum(1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            err = float(np.mean(angular_error(_predict_vectors(net, x[val]), y[val].cpu().numpy())))
            self.log.append({"epoch": epoch + 1, "train_loss": total / len(tr), "val_error_deg": err,
                             "seconds": time.perf_counter() - t0})
            bar.set_postfix(val=f"{err:.2f}°")
            if err < best - 1e-6:
                best, best_state, bad = err, copy.deepcopy(net.state_dict()), 0
            else:
                bad += 1
            if bad >= self.patience:
                break
            if self.time_limit_s is not None and time.perf_counter() - t0 > self.time_limit_s:
                break
        net.load_state_dict(best_state)
        self.net = net.to("cpu").eval()
        return self

    def save(self, path: str | Path, meta: dict[str, object] | None = None) -> Path:
        """Write the fitted network as a ``gaze-cnn`` model file (safetensors + JSON metadata)."""
        from eyepurify.models.export import save_model

        if self.net is None:
            raise EyepurifyError("the gaze CNN is not fitted yet (call fit first)")
        save_model(path, self.net, {"kind": "gaze-cnn", "net": self.net.config.to_dict(), **(meta or {})})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> CNNEstimator:
        """A fitted estimator from a ``gaze-cnn`` model file (WeightsError naming the file otherwise)."""
        from eyepurify.models.registry import load_model

        net, _ = load_model(path, "gaze-cnn")
        return cls(net=net.eval())  # type: ignore[arg-type]

    def predict(self, images: np.ndarray) -> np.ndarray:
        """uint8 images → N×2 (pitch, yaw) radians."""
        if self.net is None:
            raise EyepurifyError("the gaze CNN is not fitted yet (call fit first)")
        x = images_to_input(images, self.net.config.input_size)
        return vector_to_pitchyaw(_predict_vectors(self.net, x))

    @property
    def epochs(self) -> int:
        return len(self.log)


@torch.inference_mode()
def _predict_vectors(net: GazeCNN, x: torch.Tensor, batch: int = 1024) -> np.ndarray:
    was = net.training
    net.eval()
    dev = next(net.parameters()).device
    out = [net(x[s : s + batch].to(dev)).float().cpu() for s in range(0, len(x), batch)]
    net.train(was)
    return (torch.cat(out) if out else torch.zeros((0, 3))).numpy().astype(np.float64)

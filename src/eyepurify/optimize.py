"""Optimisation-based purification (the Gatys rows, METHOD §10): projected L-BFGS on the image.

``method="gatys"`` minimises the plain perceptual loss (global content + whole-image Grams +
TV, no masks); ``method="masked"`` minimises the region-level task-guided loss of METHOD §8
(paper eq. 15/21), using I's region maps for O and S's maps for S. After every L-BFGS
iteration the image is clamped to [0, 1] ("projected L-BFGS").
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from eyepurify.errors import EyepurifyError
from eyepurify.losses.regions import ATTENTION_CLASSES, Regions
from eyepurify.losses.total import LossConfig, perceptual_loss, total_loss
from eyepurify.models.backbones.base import flush_denormals
from eyepurify.progress import progress_bar
from eyepurify.sample import LABEL_NAMES

Method = Literal["gatys", "masked"]
Init = Literal["noise", "content"]
METHODS: tuple[str, ...] = ("gatys", "masked")
INITS: tuple[str, ...] = ("noise", "content")

#: Cap on objective evaluations inside one L-BFGS iteration (the strong-Wolfe line search).
MAX_EVALS_PER_ITERATION = 20
LBFGS_HISTORY = 50


class FeatureBackbone(Protocol):
    """What the optimiser needs from a loss network (``eyepurify.models.backbones.Backbone``)."""

    name: str
    is_random: bool
    layer_names: tuple[str, ...]

    def features(self, x: Tensor, layers: Sequence[str]) -> dict[str, Tensor]: ...


@dataclass
class OptimizeLog:
    """What an optimisation run did.

    ``initial``: the named terms at the initial image (iteration 0, not an iteration).
    ``iterations``: one dict per completed L-BFGS iteration k = 1, 2, …: "iteration",
    "closure_evals" (objective + gradient evaluations so far, counting the initial one and
    the line searches), "seconds" (wall time of this iteration) and every named loss term
    at the projected image after iteration k. ``stop_reason`` says why it ended.
    """

    method: str
    backbone: str
    backbone_is_random: bool
    iterations_requested: int
    config: dict[str, object]
    initial: dict[str, float] = field(default_factory=dict)
    iterations: list[dict[str, float]] = field(default_factory=list)
    closure_evals: int = 0
    stop_reason: str = ""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def iterations_completed(self) -> int:
        return len(self.iterations)

    @property
    def final(self) -> dict[str, float]:
        """Terms of the returned image."""
        return self.iterations[-1] if self.iterations else self.initial

    def to_dict(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        d["iterations_completed"] = self.iterations_completed
        return d


class _NonFiniteObjective(Exception):
    pass


def _check_image(x: Tensor, what: str) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise EyepurifyError(f"{what} must be a 1×3×H×W float tensor, got {shape}")
    if not x.is_floating_point():
        raise EyepurifyError(f"{what} must be float in [0, 1], got {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise EyepurifyError(f"{what} has NaN or infinite values (refusing to optimise; check the input)")
    if float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise EyepurifyError(
            f"{what} has values in [{float(x.min()):.3g}, {float(x.max()):.3g}], expected [0, 1] "
            "(divide 8-bit images by 255)"
        )


def _check_regions(r: Regions, image: Tensor, what: str) -> None:
    if r.attention.shape[0] != 1 or r.size != tuple(image.shape[2:]):
        raise EyepurifyError(
            f"{what} regions are {tuple(r.attention.shape)} but the image is {tuple(image.shape)} "
            "(give one map per image, at the image's size)"
        )
    for t in (r.attention, r.background):
        if not bool(torch.isfinite(t).all()):
            raise EyepurifyError(f"{what} regions have NaN or infinite values")


def _terms_to_floats(terms: dict[str, Tensor]) -> dict[str, float]:
    return {k: float(v.detach()) for k, v in terms.items()}


@flush_denormals()
def optimize_image(
    content: Tensor,
    style: Tensor,
    backbone: FeatureBackbone,
    content_regions: Regions | None = None,
    style_regions: Regions | None = None,
    method: Method = "gatys",
    iters: int = 400,
    init: Init = "noise",
    seed: int = 0,
    config: LossConfig | None = None,
    callback: Callable[[int, Tensor, dict[str, float]], None] | None = None,
    show_progress: bool | None = None,
    device: Any = None,
) -> tuple[Tensor, OptimizeLog]:
    """Purify ``content`` towards ``style`` by projected L-BFGS on the pixels.

    content: I, 1×3×H×W float in [0, 1]; style: S, 1×3×H'×W' in [0, 1] (any size: Grams are
    normalised by area, so S and O need not match). content_regions / style_regions: the
    maps of I (used for O too) and of S at their images' sizes; required for "masked",
    refused for "gatys". config: weights and layers (None: ``LossConfig()``). init "noise" starts from uniform noise drawn from ``seed``,
    "content" from a copy of I. ``callback(k, image, terms)`` runs after iteration k.
    ``show_progress``: None shows a bar only on a terminal.

    Returns (O as 1×3×H×W in [0, 1] on content's device, log). ``device``: where the
    optimisation runs (:mod:`eyepurify.device`: images, masks and the backbone are moved
    there; None: the process's placement, in float32: L-BFGS needs exact line searches). Raises EyepurifyError for non-finite or out-of-range inputs, bad
    region maps or a backbone lacking a needed layer. Without attention pixels (in I or S)
    the masked run warns and drops the local terms (λ_l = 0), keeping the global ones.
    """
    config = LossConfig() if config is None else config
    if method not in METHODS:
        raise EyepurifyError(f"unknown method {method!r} (choose one of {', '.join(METHODS)})")
    if init not in INITS:
        raise EyepurifyError(f"unknown init {init!r} (choose one of {', '.join(INITS)})")
    if iters < 0:
        raise EyepurifyError(f"iters must be >= 0, got {iters}")
    _check_image(content, "content image")
    _check_image(style, "style image")
    from eyepurify.device import make_placement

    home = content.device
    run_on = make_placement(device).device if device is not None or home.type == "cpu" else home
    backbone.to(run_on)  # type: ignore[attr-defined]
    content = content.detach().to(device=run_on, dtype=torch.float32)
    style = style.detach().to(device=content.device, dtype=torch.float32)
    run_warnings: list[str] = []

    def warn(msg: str) -> None:
        run_warnings.append(msg)
        warnings.warn(msg, stacklevel=3)

    if method == "masked":
        if content_regions is None or style_regions is None:
            raise EyepurifyError(
                "method 'masked' needs region maps for both the content and the style image "
                "(give masks, or use method 'gatys')"
            )
        _check_regions(content_regions, content, "content")
        _check_regions(style_regions, style, "style")
        content_regions = Regions(
            content_regions.attention.detach().to(content), content_regions.background.detach().to(content)
        )
        style_regions = Regions(
            style_regions.attention.detach().to(content), style_regions.background.detach().to(content)
        )
        empty_in = [
            name for name, r in (("content", content_regions), ("style", style_regions))
            if float(r.attention.sum()) == 0.0
        ]
        if empty_in:
            warn(
                f"no attention (iris/pupil) pixels in the {' and '.join(empty_in)} mask: "
                "falling back to the global terms only (lambda_local = 0)"
            )
            config = dataclasses.replace(config, lambda_local=0.0)
        elif content_regions.attention.shape[1] > 1:
            n_att = content_regions.attention.shape[1]
            for k in range(n_att):
                label = f" ({LABEL_NAMES[ATTENTION_CLASSES[k]]})" if n_att == len(ATTENTION_CLASSES) else ""
                missing = [
                    name for name, r in (("content", content_regions), ("style", style_regions))
                    if float(r.attention[:, k].sum()) == 0.0
                ]
                if missing:
                    warn(
                        f"attention class {k}{label} is absent from the {' and '.join(missing)} mask; "
                        "its local style term is skipped"
                    )
        layers = config.masked_layers
    else:
        if content_regions is not None or style_regions is not None:
            raise EyepurifyError("method 'gatys' uses no masks (drop them, or use method 'masked')")
        layers = config.plain_layers
    missing_layers = [name for name in layers if name not in backbone.layer_names]
    if missing_layers:
        raise EyepurifyError(
            f"backbone {backbone.name!r} lacks layer(s) {', '.join(missing_layers)} (pick another "
            "backbone or change the LossConfig layers)"
        )

    with torch.no_grad():
        content_features = {k: v.detach() for k, v in backbone.features(content, layers).items()}
        style_features = {k: v.detach() for k, v in backbone.features(style, layers).items()}

    def objective(x: Tensor) -> dict[str, Tensor]:
        feats = backbone.features(x, layers)
        if method == "masked":
            assert content_regions is not None and style_regions is not None
            return total_loss(feats, content_features, style_features, x, content_regions, style_regions, config)
        return perceptual_loss(feats, content_features, style_features, x, config)

    if init == "noise":
        gen = torch.Generator().manual_seed(int(seed))
        x0 = torch.rand(content.shape, generator=gen, dtype=torch.float32).to(content.device)
    else:
        x0 = content.contiguous().clone()
    x = x0.requires_grad_(True)

    log = OptimizeLog(
        method=method, backbone=backbone.name, backbone_is_random=bool(backbone.is_random),
        iterations_requested=int(iters), config=config.as_dict(), warnings=run_warnings,
    )
    # Memo of the last real evaluation: L-BFGS re-evaluates the point we just evaluated at
    # the start of every step; a hit restores the gradient instead of recomputing it.
    memo: dict[str, Any] = {}

    def evaluate() -> Tensor:
        if "x" in memo and torch.equal(x.detach(), memo["x"]):
            x.grad = memo["grad"].clone()
            return memo["loss"]
        x.grad = None
        terms = objective(x)
        total = terms["total"]
        if not bool(torch.isfinite(total)):
            raise _NonFiniteObjective(f"objective is {float(total.detach())}")
        total.backward()
        assert x.grad is not None
        log.closure_evals += 1
        memo.update(x=x.detach().clone(), grad=x.grad.detach().clone(), loss=total.detach(),
                    terms=_terms_to_floats(terms))
        return total.detach()

    start = time.perf_counter()
    try:
        evaluate()
    except _NonFiniteObjective as e:
        raise EyepurifyError(
            f"the objective is not finite at the initial image ({e}); check the backbone and inputs"
        ) from None
    log.initial = dict(memo["terms"])

    optimizer = torch.optim.LBFGS(
        [x], lr=1.0, max_iter=1, max_eval=MAX_EVALS_PER_ITERATION,
        history_size=LBFGS_HISTORY, line_search_fn="strong_wolfe",
    )
    log.stop_reason = f"completed {iters} iterations"
    bar = progress_bar(range(1, iters + 1), total=iters, desc=f"optimize {method}", disable=(
        None if show_progress is None else not show_progress))
    for k in bar:
        t0 = time.perf_counter()
        previous = x.detach().clone()
        try:
            optimizer.step(evaluate)
            with torch.no_grad():
                x.clamp_(0.0, 1.0)
            if torch.equal(x.detach(), previous):
                log.stop_reason = (
                    f"converged after {k - 1} iterations: L-BFGS made no step (gradient or "
                    "change below tolerance)"
                )
                break
            evaluate()
        except _NonFiniteObjective as e:
            with torch.no_grad():
                x.copy_(previous)
            log.stop_reason = (
                f"stopped in iteration {k}: {e}; returned the image after iteration {k - 1}"
            )
            warn(log.stop_reason)
            break
        entry: dict[str, float] = {
            "iteration": k, "closure_evals": log.closure_evals,
            "seconds": time.perf_counter() - t0,
        }
        entry.update(memo["terms"])
        log.iterations.append(entry)
        if callback is not None:
            callback(k, x.detach().clone(), dict(entry))
    log.seconds = time.perf_counter() - start
    return x.detach().to(home, copy=True), log


def optimise_images(
    small: Sequence[np.ndarray], labels: Sequence[np.ndarray], style: np.ndarray, style_labels: np.ndarray,
    backbone: FeatureBackbone, iters: int, desc: str = "masked L-BFGS",
) -> list[np.ndarray]:
    """Masked projected L-BFGS (init = content) of each uint8 H×W×3 image (with its label
    map) towards one style image, on ``backbone``'s features, ``iters`` iterations each."""
    from eyepurify.tensors import images_to_tensor, labels_to_tensor, tensor_to_images

    s = images_to_tensor([style]).contiguous()
    s_reg = Regions.from_labels(labels_to_tensor([style_labels]))
    out = []
    for im, lab in progress_bar(list(zip(small, labels, strict=True)), desc=desc, unit="image"):
        reg = Regions.from_labels(labels_to_tensor([lab]))
        y, _ = optimize_image(images_to_tensor([im]).contiguous(), s, backbone, reg, s_reg, method="masked",
                              iters=iters, init="content", show_progress=False)
        out.append(tensor_to_images(y)[0])
    return out

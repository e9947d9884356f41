"""The functional check every model file passes at load (:func:`eyepurify.models.registry.load_model`):
the network runs once on a fixed probe eye and must give finite outputs that are not flat
(a gaze CNN, whose output is one vector, only finite ones).

Finite weights can still make a network useless: a BatchNorm running variance below zero
gives NaN (and so black images, all-skin label maps), huge weights saturate every output to
black or white or overflow, dead or zero weights give the same value at every pixel (a grey
image, one class everywhere). Such a file is refused with one line naming it (exit 2)
instead of writing wrong images. One forward pass at :data:`PROBE_SIZE` costs a few
milliseconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from eyepurify.errors import WeightsError
from eyepurify.sample import NUM_CLASSES

#: (H, W) of the probe eye: the shipped models' aspect at half their trained size.
PROBE_SIZE = (36, 60)
#: An output whose values span less than this over the probe image is flat.
FLAT = 1e-4


def probe_eye(size: tuple[int, int] = PROBE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(H×W×3 uint8 image, H×W uint8 label map) of a fixed, noise-free eye: skin, an almond
    sclera, iris and pupil at about the eye scale of the shipped models, with shading."""
    h, w = size
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    image = np.empty((h, w, 3))
    image[:] = (186, 146, 126)
    image *= (0.85 + 0.15 * yy / h)[..., None]  # light from above
    labels = np.zeros((h, w), np.uint8)
    opening = ((xx - 0.49 * w) / (0.32 * w)) ** 2 + ((yy - 0.49 * h) / (0.24 * h)) ** 2 < 1
    labels[opening] = 1
    image[opening] = (228, 222, 216)
    r2 = (xx - 0.52 * w) ** 2 + (yy - 0.49 * h) ** 2
    iris = opening & (r2 < (0.22 * h) ** 2)
    labels[iris] = 2
    image[iris] = (96, 64, 42)
    pupil = opening & (r2 < (0.09 * h) ** 2)
    labels[pupil] = 3
    image[pupil] = (16, 12, 12)
    return np.clip(image, 0, 255).astype(np.uint8), labels


def _inputs(size: tuple[int, int] = PROBE_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    image, labels = probe_eye(size)
    x = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    return x, torch.from_numpy(labels.astype(np.int64)).unsqueeze(0)


def run_probe(net: Any, kind: str) -> torch.Tensor:
    """The output of ``net`` (a network of ``kind``, or a runner with its call signature) on
    the probe eye: an image N×C×H×W for purifiers and refiners, class logits for segmenters."""
    from eyepurify.tensors import one_hot

    x, labels = _inputs()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a few milliseconds of work: threads would only wait on a busy machine
    try:
        with torch.inference_mode():
            if kind == "purifier":
                k = net.config.mask_channels
                return net(x, one_hot(labels, k) if k else None)
            if kind == "simgan-refiner":
                c = net.config.channels
                return net(x.mean(1, keepdim=True) if c == 1 else x)
            if kind == "gaze-cnn":
                size = tuple(net.config.input_size)
                gray = torch.nn.functional.interpolate(x.mean(1, keepdim=True), size=size, mode="bilinear", align_corners=False)
                return net(gray)
            return net(x)
    finally:
        torch.set_num_threads(threads)


def output_problem(y: torch.Tensor, kind: str) -> str:
    """What is wrong with a probe output ("" when nothing)."""
    if not torch.isfinite(y).all():
        return "NaN or inf"
    y = y.detach().float()
    if kind == "gaze-cnn":  # one gaze vector: nothing to be flat across
        return ""
    if kind == "segmentation" and y.shape[1] != NUM_CLASSES:
        return f"{y.shape[1]} classes instead of {NUM_CLASSES}"
    spread = (y.amax(dim=(-2, -1)) - y.amin(dim=(-2, -1))).max()
    if float(spread) < FLAT:
        return "a flat output (every pixel the same)"
    if kind in ("purifier", "simgan-refiner") and float(((y <= 0) | (y >= 1)).float().mean()) > 0.98:
        return "an image saturated to black or white"
    return ""


def probe_model(net: nn.Module, kind: str, path: object) -> None:
    """Refuse (WeightsError naming ``path``) a network whose output on the probe eye is not
    finite, is flat or saturated, or that fails to run on it."""
    try:
        y = run_probe(net, kind)
    except Exception as e:
        raise WeightsError(f"{path}: the network fails on a probe image ({type(e).__name__}: {e}); "
                           "the model file is damaged or not made for eyepurify (retrain or re-export it)") from None
    problem = output_problem(y, kind)
    if problem:
        raise WeightsError(f"{path}: the network gives {problem} on a probe eye image (broken weights, e.g. a "
                           "negative BatchNorm variance or huge values); retrain or re-export it")

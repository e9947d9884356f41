"""Tiny synthetic eye images with exact label maps, for segmentation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eyepurify.data.base import EyeDataset
from eyepurify.io import write_image
from eyepurify.sample import EyeSample


def synthetic_eye(rng: np.random.Generator, h: int = 24, w: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """(H×W×3 uint8 image, H×W uint8 labels): an elliptic eye opening with iris and pupil."""
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    cy, cx = h / 2 + rng.uniform(-1, 1), w / 2 + rng.uniform(-2, 2)
    eye = ((xx - cx) / (0.42 * w)) ** 2 + ((yy - cy) / (0.36 * h)) ** 2 <= 1
    r_iris = rng.uniform(0.25, 0.32) * h
    ix, iy = cx + rng.uniform(-0.15, 0.15) * w, cy + rng.uniform(-0.08, 0.08) * h
    d2 = (xx - ix) ** 2 + (yy - iy) ** 2
    labels = np.zeros((h, w), np.uint8)
    labels[eye] = 1
    labels[eye & (d2 <= r_iris**2)] = 2
    labels[eye & (d2 <= (rng.uniform(0.35, 0.5) * r_iris) ** 2)] = 3
    palette = np.array([
        rng.uniform([150, 100, 80], [230, 170, 140]),  # skin
        rng.uniform([200, 200, 200], [250, 250, 250]),  # sclera
        rng.uniform([40, 40, 20], [140, 120, 100]),  # iris
        rng.uniform([0, 0, 0], [25, 25, 25]),  # pupil
    ])
    image = palette[labels] + rng.normal(0, 6, (h, w, 3))
    return image.round().clip(0, 255).astype(np.uint8), labels


class SyntheticEyes(EyeDataset):
    """``n`` synthetic eyes from ``seed``; every ``unlabelled_every``-th sample has no labels."""

    format_name = "synthetic"

    def __init__(self, n: int, seed: int = 0, h: int = 24, w: int = 40, unlabelled_every: int = 0) -> None:
        super().__init__()
        self.n, self.seed, self.h, self.w, self.unlabelled_every = n, seed, h, w, unlabelled_every

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> EyeSample:
        if not 0 <= index < self.n:
            raise IndexError(index)
        image, labels = synthetic_eye(np.random.default_rng([self.seed, index]), self.h, self.w)
        if self.unlabelled_every and index % self.unlabelled_every == self.unlabelled_every - 1:
            labels = None
        return EyeSample(image=image, labels=labels, source=f"synthetic/{index}")


def write_eye_folder(root: Path, n: int, seed: int = 0, h: int = 24, w: int = 40) -> Path:
    """Write ``root/images/eNN.png`` + ``root/masks/eNN.png``; returns ``root``."""
    ds = SyntheticEyes(n, seed, h, w)
    for i in range(n):
        s = ds[i]
        write_image(root / "images" / f"e{i:02d}.png", s.image)
        assert s.labels is not None
        write_image(root / "masks" / f"e{i:02d}.png", s.labels)
    return root

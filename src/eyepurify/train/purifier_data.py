"""Content and style sets for purifier training, held in memory at the training size."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eyepurify.data.render_folder import render_domains
from eyepurify.errors import DataError, EyepurifyError
from eyepurify.eyescale import crop
from eyepurify.imaging import resize_image, resize_labels
from eyepurify.io import IMAGE_SUFFIXES, read_image, read_mask
from eyepurify.progress import progress_bar

if TYPE_CHECKING:
    from eyepurify.segment import Segmenter


def resize_pair(image: np.ndarray, labels: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize H×W×3 uint8 (:func:`resize_image`) and H×W labels (nearest) to size (H, W)."""
    return resize_image(image, size), resize_labels(labels, size)


def load_labelled_set(
    paths: Sequence[str | Path],
    size: tuple[int, int],
    limit: int | None = None,
    progress: bool = True,
    segmenter: Segmenter | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every labelled sample of the datasets at ``paths`` → (N×H×W×3 uint8, N×H×W uint8, sources).

    Samples without label maps (real photos) are labelled by ``segmenter`` at its trained eye
    scale (orphan fix included) and cut to the canonical eye box, as inference will see them;
    without a segmenter they are skipped (the count is reported in the error if none are
    left). Bad files are skipped as the dataset reports them.
    """
    from eyepurify.data import open_dataset

    images, labels, sources = [], [], []
    skipped = 0
    for p in paths:
        ds = open_dataset(Path(p))
        for _, s in progress_bar(ds.iter_valid(), total=len(ds), desc=f"load {Path(p).name}", disable=not progress):
            if limit is not None and len(images) >= limit:
                break
            if s.labels is None and segmenter is None:
                skipped += 1
                continue
            if s.labels is None:
                full, small, box, _ = segmenter.predict_normalised([s.image])[0]  # type: ignore[union-attr]
                im, lab = (crop(s.image, box, size), resize_labels(small, size)) if box is not None else resize_pair(s.image, full, size)
            else:
                im, lab = resize_pair(s.image, s.labels, size)
            images.append(im)
            labels.append(lab)
            sources.append(s.source)
    if not images:
        raise EyepurifyError(
            f"no labelled samples in {list(map(str, paths))} ({skipped} without label maps): "
            "training needs images with masks (render them, use a folder with masks/, or give a segmenter)"
        )
    return np.stack(images), np.stack(labels), sources


def _mask_for(image_path: Path) -> Path | None:
    for cand in (
        image_path.parent / "masks" / (image_path.stem + ".png"),
        image_path.parent.parent / "masks" / (image_path.stem + ".png"),
    ):
        if cand.is_file():
            return cand
    return None


def load_style_set(
    paths: Sequence[str | Path], size: tuple[int, int], limit: int = 8
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Style images with their label maps at ``size``.

    Each path is an image file (its mask is ``masks/<stem>.png`` beside it or beside its
    folder) or a dataset folder (its first ``limit`` labelled samples).
    """
    images, labels, sources = [], [], []
    for p in map(Path, paths):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            m = _mask_for(p)
            if m is None:
                raise DataError(p, "style image has no mask", "put its label map at masks/<stem>.png beside it")
            im = read_image(p)
            lab = read_mask(m, im.shape[:2])
            im, lab = resize_pair(im, lab, size)
            images.append(im)
            labels.append(lab)
            sources.append(str(p))
        elif p.is_dir():
            if "indoor" in render_domains(p):
                p = p / "indoor"  # a render folder's synthetic style is its indoor domain
            ims, labs, srcs = load_labelled_set([p], size, limit=limit, progress=False)
            images += list(ims)
            labels += list(labs)
            sources += srcs
        else:
            raise DataError(p, "style input not found", "pass style image files (with masks) or a labelled folder")
    if not images:
        raise EyepurifyError("no style images given")
    return np.stack(images), np.stack(labels), sources

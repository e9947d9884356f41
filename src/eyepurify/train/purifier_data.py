"""Content and style sets for purifier training, held in memory at the training size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eyepurify.data.labelled import load_labelled
from eyepurify.data.render_folder import folder_domains
from eyepurify.errors import DataError, EyepurifyError
from eyepurify.eyescale import crop
from eyepurify.imaging import resize_labels, resize_pair
from eyepurify.io import IMAGE_SUFFIXES, read_image, read_mask
from eyepurify.sample import EyeSample

if TYPE_CHECKING:
    from eyepurify.segment import Segmenter


def load_labelled_set(
    paths: Sequence[str | Path],
    size: tuple[int, int],
    limit: int | None = None,
    progress: bool | None = None,
    segmenter: Segmenter | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every labelled sample of the datasets at ``paths`` → (N×H×W×3 uint8, N×H×W uint8, sources)
    (:func:`eyepurify.data.labelled.load_labelled`).

    Samples without label maps (real photos) are labelled by ``segmenter`` at its trained eye
    scale (orphan fix included) and cut to the canonical eye box, as inference will see them;
    without a segmenter they are skipped (the count is reported in the error if none are
    left). Bad files are skipped as the dataset reports them.
    """

    def relabel(s: EyeSample) -> EyeSample:
        assert segmenter is not None
        full, small, box, _ = segmenter.predict_normalised([s.image])[0]
        if box is not None:
            return replace(s, image=crop(s.image, box, size), labels=resize_labels(small, size))
        image, labels = resize_pair(s.image, full, size)
        return replace(s, image=image, labels=labels)

    got = load_labelled(paths, size, relabel=relabel if segmenter is not None else None, limit=limit,
                        progress=progress)
    if not got.samples:
        raise EyepurifyError(
            f"no labelled samples in {list(map(str, paths))} ({got.skipped} without label maps): "
            "training needs images with masks (render them, use a folder with masks/, or give a segmenter)"
        )
    return got.images(), got.labels(), got.sources()


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
            im, small = resize_pair(im, lab, size)
            assert small is not None
            images.append(im)
            labels.append(small)
            sources.append(str(p))
        elif p.is_dir():
            if "indoor" in folder_domains(p):
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

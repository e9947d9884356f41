"""A folder of eye images, optionally with label maps in ``masks/<stem>.png``.

Two layouts are accepted:

* ``root/images/*.png`` with ``root/masks/*.png`` (the layout of the shared ``*_seg`` sets);
* ``root/*.png`` with an optional ``root/masks/*.png`` beside the images.

With ``recursive=True`` images in subfolders are found too and their masks are looked up
under the same relative path inside ``masks/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eyepurify.data.base import BadFile, EyeDataset
from eyepurify.errors import DataError
from eyepurify.imaging import resize_image, resize_labels
from eyepurify.io import IMAGE_SUFFIXES, not_a_file_reason, read_image, read_mask
from eyepurify.sample import PUPIL, EyeSample

FORMAT = "folder"
MASK_DIR = "masks"
IMAGE_DIR = "images"


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def _layout(path: Path) -> tuple[Path, Path]:
    """(image folder, mask folder) of a dataset folder (the mask folder may not exist)."""
    if (path / IMAGE_DIR).is_dir():
        return path / IMAGE_DIR, path / MASK_DIR
    return path, path / MASK_DIR


def _list(folder: Path, recursive: bool, skip: Path | None, bad: list[BadFile] | None = None) -> list[Path]:
    """Image files under ``folder``, sorted; entries named like images that are not readable
    files (a folder ``x.png``, a broken link, a symlink loop) go to ``bad``."""
    it = folder.rglob("*") if recursive else folder.iterdir()
    out = []
    for p in sorted(it):
        if skip is not None and (p == skip or skip in p.parents):
            continue
        if recursive and any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue
        if _is_image(p):
            out.append(p)
        elif bad is not None and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."):
            why = not_a_file_reason(p)
            if why and not (recursive and p.is_dir()):
                bad.append(BadFile(str(p), str(DataError(p, why, "remove it or replace it with an image file"))))
    return sorted(out)


def sniff(path: Path) -> bool:
    """True when ``path`` is a folder holding image files (directly or in ``images/``)."""
    path = Path(path)
    if not path.is_dir():
        return False
    images, _ = _layout(path)
    return any(_is_image(p) for p in images.iterdir())


def _pupil_centroid(labels: np.ndarray) -> np.ndarray | None:
    """(2,) float (x, y) centroid of the pupil pixels of an H×W label map, or None."""
    ys, xs = np.nonzero(labels == PUPIL)
    if xs.size == 0:
        return None
    return np.array([xs.mean(), ys.mean()], dtype=np.float64)


class ImageFolder(EyeDataset):
    """Images of a folder, with label maps from ``masks/<stem>.png`` when present.

    path: the dataset folder (either layout, see the module docstring).
    masks: True = every image needs a mask, False = ignore masks, None = use them when a
        ``masks/`` folder exists. An image without its mask is a bad sample (DataError).
    size: (H, W) to resize to (images with area interpolation, labels with nearest), or
        None to keep each file's size.
    recursive: also read images in subfolders.
    """

    format_name = FORMAT

    def __init__(
        self,
        path: str | Path,
        masks: bool | None = None,
        size: tuple[int, int] | None = None,
        recursive: bool = False,
    ) -> None:
        super().__init__()
        self.root = Path(path)
        if not self.root.is_dir():
            raise DataError(self.root, "not a folder", "pass a folder of images")
        if size is not None and (len(size) != 2 or min(size) < 2):
            raise ValueError(f"size must be (H, W) with both >= 2, got {size}")
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.image_dir, mask_dir = _layout(self.root)
        if masks is True and not mask_dir.is_dir():
            raise DataError(
                self.root, f"no {MASK_DIR}/ folder",
                f"put label maps in {mask_dir} or open without masks",
            )
        self.mask_dir = mask_dir if (masks is not False and mask_dir.is_dir()) else None
        self.files = _list(self.image_dir, recursive, skip=mask_dir, bad=self.bad)
        if not self.files:
            raise DataError(
                self.image_dir, "no images found; supported: " + ", ".join(IMAGE_SUFFIXES),
                "check the path or the file extensions",
            )
        if self.mask_dir is not None:
            wanted = {self._mask_path(p) for p in self.files}
            for m in _list(self.mask_dir, recursive, skip=None):
                if m not in wanted:
                    self.bad.append(BadFile(str(m), str(DataError(
                        m, "mask has no image", f"add its image to {self.image_dir} or remove it"
                    ))))

    def _mask_path(self, image: Path) -> Path:
        assert self.mask_dir is not None
        return (self.mask_dir / image.relative_to(self.image_dir)).with_suffix(".png")

    def __len__(self) -> int:
        return len(self.files)

    def source_of(self, index: int) -> str:
        return str(self.files[index])

    def __getitem__(self, index: int) -> EyeSample:
        path = self.files[index]
        image = read_image(path)
        labels = None
        if self.mask_dir is not None:
            mpath = self._mask_path(path)
            if not mpath.is_file():
                raise DataError(path, f"mask missing: {mpath}", "add the mask or open without masks")
            labels = read_mask(mpath, shape=image.shape[:2])
        if self.size is not None:
            image = resize_image(image, self.size)
            labels = None if labels is None else resize_labels(labels, self.size)
        return EyeSample(
            image=image,
            labels=labels,
            pupil_center=None if labels is None else _pupil_centroid(labels),
            source=str(path),
        )


def open_dataset(path: Path, **kw: object) -> ImageFolder:
    """Open a folder of images (options as :class:`ImageFolder`)."""
    return ImageFolder(path, **kw)  # type: ignore[arg-type]

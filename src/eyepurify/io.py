"""Reading and writing images, label maps and JSON with clear errors and atomic writes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from eyepurify.errors import DataError
from eyepurify.sample import NUM_CLASSES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _open(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.asarray(im, dtype=np.int64).astype(np.uint16)
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif mode not in ("L", "LA", "RGB", "RGBA"):
                im = im.convert("RGB")
            return np.asarray(im)
    except FileNotFoundError:
        raise DataError(path, "file not found", "check the path") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(
            path, f"cannot decode image ({type(e).__name__}: {e})",
            "the file is corrupt or truncated; re-export it or remove it",
        ) from None


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as H×W×3 uint8 RGB.

    Grayscale is replicated to 3 channels, alpha is dropped, 16-bit is scaled to 8-bit.
    Raises DataError naming the file for missing, corrupt or truncated files.
    """
    path = Path(path)
    a = _open(path)
    if a.dtype == np.uint16:
        a = (a.astype(np.float64) / 257.0).round().clip(0, 255).astype(np.uint8)
    if a.dtype != np.uint8:
        raise DataError(path, f"unsupported pixel type {a.dtype}", "save it as 8-bit PNG/JPEG")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.shape[2] == 2:  # LA
        a = np.repeat(a[:, :, :1], 3, axis=2)
    elif a.shape[2] == 4:
        a = a[:, :, :3]
    if a.shape[0] < 2 or a.shape[1] < 2:
        raise DataError(path, f"image is only {a.shape[1]}×{a.shape[0]} pixels", "use a larger image")
    return np.ascontiguousarray(a)


def read_mask(
    path: str | os.PathLike[str], shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Read a label-map PNG as H×W uint8 with values in {0, 1, 2, 3}.

    ``shape`` (H, W), when given, must match. RGB masks are accepted when their three
    channels are equal. Raises DataError for 16-bit masks, unknown label values or a size
    mismatch.
    """
    path = Path(path)
    a = _open(path)
    if a.dtype != np.uint8:
        raise DataError(path, f"mask has bit depth {a.dtype}", "save label maps as 8-bit single-channel PNG")
    if a.ndim == 3:
        if a.shape[2] in (2, 4):
            a = a[:, :, : a.shape[2] - 1]
        if a.shape[2] == 3 and not (np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2])):
            raise DataError(path, "mask is colour, not a label map", "save one channel with values 0 skin, 1 sclera, 2 iris, 3 pupil")
        a = a[..., 0]
    bad = np.unique(a[a >= NUM_CLASSES])
    if bad.size:
        raise DataError(
            path, f"unknown label values {bad[:8].tolist()}",
            "labels must be 0 skin, 1 sclera, 2 iris, 3 pupil",
        )
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise DataError(
            path, f"mask is {a.shape[1]}×{a.shape[0]} but its image is {shape[1]}×{shape[0]}",
            "masks must have their image's size",
        )
    return np.ascontiguousarray(a)


def file_mode() -> int:
    """0o666 minus the process umask: what open() would give (mkstemp alone gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` atomically (temp file in the same folder + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_image(path: str | os.PathLike[str], image: np.ndarray, quality: int = 95) -> None:
    """Write an H×W×3 or H×W uint8 array atomically (temp file + rename); format from suffix."""
    import io as _io

    path = Path(path)
    if image.dtype != np.uint8:
        raise ValueError(f"{path}: write_image expects uint8, got {image.dtype}")
    buf = _io.BytesIO()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP"}.get(path.suffix.lower(), "PNG")
    kw = {"quality": quality} if fmt == "JPEG" else {}
    Image.fromarray(image).save(buf, format=fmt, **kw)
    write_bytes(path, buf.getvalue())


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write text atomically."""
    write_bytes(Path(path), text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: object) -> None:
    """Write JSON atomically (indented, numpy scalars/arrays converted)."""

    def default(o: object) -> object:
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    write_text(path, json.dumps(obj, indent=2, default=default) + "\n")


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "not a folder", "pass a folder of images")
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )

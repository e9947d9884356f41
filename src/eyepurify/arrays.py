"""The image arrays the Python API takes (``Purifier(...)``, ``Segmenter(...)``).

Accepted: uint8 H×W (gray, what PIL gives for an MPIIGaze patch), H×W×1 (gray) and H×W×3
(RGB; gray photos stored as three equal channels stay gray). A purified image comes back in
the layout it came in. Refused, with a one-line reason and the fix: any other dtype (floats,
16-bit), H×W×4 (RGBA), other channel counts, empty images and arrays of other ranks.
"""

from __future__ import annotations

import numpy as np

from eyepurify.errors import EyepurifyError

ACCEPTED = "uint8 H×W, H×W×1 or H×W×3"


class ImageArrayError(EyepurifyError, ValueError):
    """An array the API cannot take as an eye image (also a ValueError, as before)."""


def to_rgb(image: object, what: str = "image") -> tuple[np.ndarray, tuple[int, ...]]:
    """(H×W×3 uint8, the input's shape) for an accepted image, else :class:`ImageArrayError`."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        fix = ("scale 0–1 floats with (x * 255).round().astype(np.uint8)" if a.dtype.kind == "f"
               else "convert it to 8 bits (e.g. (x >> 8).astype(np.uint8) for 16-bit)")
        raise ImageArrayError(f"{what}: expected {ACCEPTED}, got dtype {a.dtype} ({fix})")
    if a.ndim == 2:
        rgb = np.repeat(a[..., None], 3, axis=-1)
    elif a.ndim == 3 and a.shape[2] == 1:
        rgb = np.repeat(a, 3, axis=-1)
    elif a.ndim == 3 and a.shape[2] == 3:
        rgb = a
    elif a.ndim == 3 and a.shape[2] == 4:
        raise ImageArrayError(f"{what}: expected {ACCEPTED}, got RGBA {a.shape} (drop the alpha channel: image[..., :3])")
    else:
        raise ImageArrayError(f"{what}: expected {ACCEPTED}, got shape {a.shape} "
                              "(a batch goes in as a list of images or an N×H×W×3 / N×H×W×1 array)")
    if min(rgb.shape[:2]) < 1:
        raise ImageArrayError(f"{what}: the image is empty ({a.shape})")
    return np.ascontiguousarray(rgb), a.shape


def like_input(rgb: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A purified H×W×3 image back in the input's layout (H×W, H×W×1 or H×W×3)."""
    if len(shape) == 2:
        return rgb[..., 0].copy()
    if shape[-1] == 1:
        return rgb[..., :1].copy()
    return rgb


def as_list(images: object, what: str = "image") -> tuple[list[np.ndarray], list[tuple[int, ...]]]:
    """A single image, an N×H×W×C array or a list of images → (H×W×3 list, input shapes)."""
    out: list[np.ndarray] = []
    shapes: list[tuple[int, ...]] = []
    seq: list[object] = list(images)  # type: ignore[call-overload]
    for i, im in enumerate(seq):
        rgb, shape = to_rgb(im, f"{what} {i}")
        out.append(rgb)
        shapes.append(shape)
    return out, shapes


def is_single(a: np.ndarray) -> bool:
    """True when an array is one image (2 or 3 dimensions), not a batch (4: N×H×W×C; a batch
    of gray H×W images goes in as a list or as N×H×W×1)."""
    return a.ndim in (2, 3)

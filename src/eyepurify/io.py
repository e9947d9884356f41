"""Reading and writing images, label maps and JSON with clear errors and atomic writes.

Every image read goes through one safe decode (:func:`read_image` / :func:`read_mask`):
the header's pixel count is checked against a limit before any pixel is decoded
(decompression bombs and huge photos are refused, see :func:`pixel_limit`), the EXIF
orientation is applied, and the bit-depth policy is: 8-bit as it is, 16-bit scaled to
8-bit, 32-bit integers scaled when they fit 16 bits, 32-bit floats when they lie in 0–1;
anything else is refused. Every failure is a one-line :class:`DataError` naming the file
and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from eyepurify.errors import DataError, printable, read_error
from eyepurify.sample import NUM_CLASSES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Default decode limit (pixels, from the file header): 50 megapixels, about an 8700×5800 photo.
DEFAULT_MAX_PIXELS = 50_000_000
_PIL_MAX_PIXELS = Image.MAX_IMAGE_PIXELS or DEFAULT_MAX_PIXELS
_limit = {"max_pixels": DEFAULT_MAX_PIXELS}
_FIX_CORRUPT = "the file is corrupt or truncated; re-export it or remove it"


def max_pixels() -> int:
    """The decode limit in force (see :func:`pixel_limit`)."""
    return _limit["max_pixels"]


@contextlib.contextmanager
def pixel_limit(n: int | None) -> Iterator[None]:
    """Within the block, refuse images whose header claims more than ``n`` pixels
    (None: keep the current limit). Pillow's own bomb guard is raised to match."""
    if n is None:
        yield
        return
    if n < 1:
        raise ValueError(f"pixel limit must be at least 1, got {n}")
    before, pil_before = _limit["max_pixels"], Image.MAX_IMAGE_PIXELS
    _limit["max_pixels"] = int(n)
    Image.MAX_IMAGE_PIXELS = max(int(n), _PIL_MAX_PIXELS)
    try:
        yield
    finally:
        _limit["max_pixels"], Image.MAX_IMAGE_PIXELS = before, pil_before


def _too_large(path: Path, pixels: str, limit: int) -> DataError:
    return DataError(
        path, f"image is {pixels}, over the limit of {limit:,} pixels (a huge photo or a decompression bomb)",
        "downscale it, or raise the limit with --max-pixels",
    )


def _as_array(im: Image.Image, path: Path) -> np.ndarray:
    """A decoded PIL image as uint8 (L, LA, RGB, RGBA), uint16, int32 or float32 array."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im).astype(np.uint16)
    if mode in ("I", "F"):
        return np.asarray(im)
    if mode in ("P", "PA"):
        im = im.convert("RGBA" if ("transparency" in im.info or mode == "PA") else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        try:
            im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...
        except (ValueError, OSError) as e:
            raise DataError(path, f"unsupported pixel format {mode} ({e})", "save it as 8-bit RGB or grayscale") from None
    return np.asarray(im)


def _open(path: Path) -> np.ndarray:
    """The one safe decode: pixel limit from the header, EXIF orientation, raw array."""
    limit = max_pixels()
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise DataError(path, "is a folder, not an image", "pass the image files, or the folder as a dataset")
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
            raise DataError(path, "is not a regular file", "pass an image file")
        if st.st_size == 0:
            raise DataError(path, "file is empty (0 bytes)", _FIX_CORRUPT)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im: Image.Image = Image.open(path)
        with im:
            w, h = im.size
            if w * h > limit:
                raise _too_large(path, f"{w}×{h} = {w * h:,} pixels", limit)
            im.load()
            try:
                im = ImageOps.exif_transpose(im)
            except Exception as e:  # a malformed EXIF block must not pass as "no rotation"
                raise DataError(path, f"unreadable EXIF orientation ({type(e).__name__}: {e})",
                                "re-save the image without EXIF or with a valid orientation") from None
            return _as_array(im, path)
    except DataError:
        raise
    except Image.DecompressionBombError as e:
        m = re.search(r"\((\d+) pixels\)", str(e))
        raise _too_large(path, f"{int(m.group(1)):,} pixels" if m else "beyond Pillow's bomb limit", limit) from None
    except OSError as e:
        if e.errno is not None:  # the file system said no (permission, folder, I/O error)
            raise read_error(path, e) from None
        raise DataError(path, f"cannot decode image ({type(e).__name__}: {e})", _FIX_CORRUPT) from None
    except Exception as e:  # Pillow's plugins raise many kinds on malformed headers
        raise DataError(path, f"cannot decode image ({type(e).__name__}: {e})", _FIX_CORRUPT) from None


def _to_uint8(a: np.ndarray, path: Path) -> np.ndarray:
    """The bit-depth policy: 8-bit kept, 16-bit and 16-bit-range int32 scaled, 0–1 floats
    scaled; anything else refused."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.int32:
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise DataError(path, f"32-bit integer image with values {lo}..{hi}, outside 16 bits",
                            "save it as an 8- or 16-bit image")
        a = a.astype(np.uint16)
    if a.dtype == np.uint16:
        return (a.astype(np.float64) / 257.0).round().clip(0, 255).astype(np.uint8)
    if a.dtype == np.float32:
        if not np.isfinite(a).all():
            raise DataError(path, "floating-point image contains NaN or inf", "save it as an 8-bit image")
        flo, fhi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if flo < 0 or fhi > 1:
            raise DataError(path, f"floating-point image with values {flo:.4g}..{fhi:.4g}; only 0–1 floats are read",
                            "scale it to 0–1 or save it as an 8-bit image")
        return (a.astype(np.float64) * 255.0).round().astype(np.uint8)
    raise DataError(path, f"unsupported pixel type {a.dtype}", "save it as 8-bit PNG/JPEG")


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as H×W×3 uint8 RGB, upright (EXIF orientation applied).

    Grayscale is replicated to 3 channels, alpha is dropped, 16-bit is scaled to 8-bit (see
    the module docstring for the bit-depth policy). Raises DataError naming the file for
    missing, unreadable, corrupt, truncated, over-limit or unsupported files.
    """
    path = Path(path)
    a = _to_uint8(_open(path), path)
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


#: Every temp file eyepurify writes is ``.eyepurify-<token>-<8 hex>.tmp[.suffix]``: at most 46
#: bytes whatever the target's name (a 255-byte name must work), and recognisable only by the
#: token. ``TEMP_TOKEN`` is this process's; a batch run records it in its lock file so that
#: ``--resume`` after a kill removes exactly the temp files of that run, never a user's file
#: that merely looks like one (:mod:`eyepurify.engines.manifest`).
TEMP_TOKEN = secrets.token_hex(8)
TEMP_TOKEN_RE = re.compile(r"[0-9a-f]{16}")


def temp_name_re(token: str) -> re.Pattern[str]:
    """The names of the temp files written with ``token`` (a 16-hex-digit token)."""
    if not TEMP_TOKEN_RE.fullmatch(token):
        raise ValueError(f"not a temp token: {token!r}")
    return re.compile(rf"\.eyepurify-{token}-[0-9a-f]{{8}}\.tmp(\.[A-Za-z0-9]{{1,8}})?")


def temp_file(folder: str | os.PathLike[str], suffix: str = "") -> tuple[int, str]:
    """(open write-only fd, path) of a new empty temp file in ``folder`` (mode 0600, created
    exclusively, never through a symlink), named as :data:`TEMP_TOKEN` says; ``suffix``
    (e.g. ``.avi``, at most 8 letters or digits) is kept for writers that pick a format by it."""
    if suffix and not re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix):
        suffix = ""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        path = os.path.join(folder, f".eyepurify-{TEMP_TOKEN}-{secrets.token_hex(4)}.tmp{suffix}")
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "cannot create a temp file", str(folder))


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` atomically: a temp file in the same folder, flushed to disk (fsync),
    then renamed over ``path``, so a crash leaves the old file or the new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = ""
    try:
        fd, tmp = temp_file(path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp and os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None and e.errno is not None:
            raise OSError(e.errno, e.strerror, str(path)) from None  # name the file (disk full)
        if isinstance(e, OSError) and e.filename == tmp:
            raise OSError(e.errno, e.strerror, str(path)) from None  # the target, not our temp name
        raise


def read_state_file(path: str | os.PathLike[str], limit: int, what: str, fix: str) -> bytes:
    """The bytes of a state file eyepurify wrote itself (a manifest, a lock, a cache record),
    read as untrusted: opened without following a symlink and without blocking (a FIFO or a
    device is refused, never read), at most ``limit`` bytes; anything else is a one-line
    DataError naming ``path``, ``what`` it should be and the ``fix``."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DataError(path, f"is a symlink, not {what}", fix) from None
        raise read_error(path, e, fix) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DataError(path, f"is not a regular file (a FIFO, socket or device), not {what}", fix)
        if st.st_size > limit:
            raise DataError(path, f"is {st.st_size:,} bytes, over the {limit:,} bytes {what} may have", fix)
        chunks, size = [], 0
        while size <= limit:
            block = os.read(fd, min(1 << 20, limit + 1 - size))
            if not block:
                break
            chunks.append(block)
            size += len(block)
        if size > limit:  # it grew while being read
            raise DataError(path, f"is over the {limit:,} bytes {what} may have", fix)
        return b"".join(chunks)
    except OSError as e:
        raise read_error(path, e, fix) from None
    finally:
        os.close(fd)


def csv_cell(value: object) -> object:
    """A CSV cell: numbers as they are; text :func:`printable`, and prefixed with ``'`` when it
    starts like a spreadsheet formula (``=``, ``+``, ``-``, ``@``, tab, carriage return)."""
    if not isinstance(value, str):
        return value
    text = printable(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a file written by another library (video writer, safetensors) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (how a batch run records which model made its outputs)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def regular_file_sha256(path: str | os.PathLike[str]) -> str | None:
    """Hex SHA-256 of a regular file's bytes; None for anything else (missing, a folder, a
    FIFO or device: opened without blocking, never read)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        h = hashlib.sha256()
        while block := os.read(fd, 1 << 20):
            h.update(block)
        return h.hexdigest()
    except OSError:
        return None
    finally:
        os.close(fd)


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
    """Write text atomically as UTF-8 (undecodable file names in it escaped, :func:`printable`)."""
    write_bytes(Path(path), printable(text).encode("utf-8"))


def json_text(obj: object) -> str:
    """``obj`` as the JSON eyepurify writes (indented, numpy scalars/arrays and paths converted)."""

    def default(o: object) -> object:
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    return json.dumps(obj, indent=2, default=default) + "\n"


def write_json(path: str | os.PathLike[str], obj: object) -> None:
    """Write :func:`json_text` of ``obj`` atomically."""
    write_text(path, json_text(obj))


def not_a_file_reason(path: Path) -> str:
    """Why ``path`` (named like an image) cannot be read as one: a folder, a broken symlink,
    a symlink loop, or not a regular file; "" for a regular file."""
    try:
        st = path.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a symlink loop"
        if path.is_symlink():
            return "is a broken symlink (its target is missing)"
        return f"cannot be read ({e.strerror or e})"
    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not an image file"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file (a FIFO, socket or device)"
    return ""


def scan_images(folder: str | os.PathLike[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """(image files directly inside ``folder`` sorted by name, [(path, one-line reason)] for
    entries named like images that are not readable files). Hidden files are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "not a folder", "pass a folder of images")
    files, skipped = [], []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES or p.name.startswith("."):
            continue
        why = not_a_file_reason(p)
        if why:
            skipped.append((str(p), str(DataError(p, why, "remove it or replace it with an image file"))))
        else:
            files.append(p)
    return files, skipped


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (hidden files skipped)."""
    return scan_images(folder)[0]

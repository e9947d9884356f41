"""A generated corpus of bad (and awkward but good) inputs for the batch commands.

``write_corpus(root)`` writes, in about a second:

* ``root/img/``: image files, each either *good* (must be written: palette, CMYK, 16-bit,
  LA, 1-bit, 0–1 float TIFF, EXIF-rotated JPEG, a PNG named .jpg, a unicode name, two
  names that differ only in case, 255-byte names that also differ only in case, a name
  that is not UTF-8, names that start like spreadsheet formulas) or *bad* (must be reported by name: 0 bytes, truncated,
  text named .png, 1×1, a header claiming 50000×50000, over ``--max-pixels``, out-of-range
  float/int32 TIFFs, NaN, corrupt pixel data, a folder named ``dir.png``, a symlink loop,
  a broken link, a FIFO, an unsupported suffix);
* ``root/sub_a/x.png`` and ``root/sub_b/x.png``: same file name in two folders;
* ``root/ue/``: a UnityEyes folder with two good pairs and bad JSONs (400-digit integer,
  100,000 nested brackets, 5000-digit number, invalid JSON, wrong types, NaN, missing
  keys, orphans);
* ``root/mpii.h5`` (4 samples, good) and ``root/damaged.h5`` (bad);
* ``root/video/truncated.avi``: a video cut in the middle (its frames are written and it is
  reported as truncated).

Run ``python -m tests.bad_corpus DIR`` to write one for trying the commands by hand.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

#: the decode limit the corpus is meant to be run with (``--max-pixels``)
MAX_PIXELS = 20_000
H, W = 36, 60


@dataclass
class Corpus:
    root: Path
    good: dict[str, tuple[int, int]] = field(default_factory=dict)  # relative path -> (H, W) upright
    bad: list[str] = field(default_factory=list)  # relative paths that must be reported
    ue_good: list[str] = field(default_factory=list)
    ue_bad: list[str] = field(default_factory=list)  # the file each bad pair must be reported by
    truncated_video: str = ""  # relative path of a video cut in the middle

    @property
    def img(self) -> Path:
        return self.root / "img"

    def image_files(self) -> list[str]:
        """Every entry of img/ (good and bad), as paths for the command line."""
        return sorted(str(p) for p in self.img.iterdir())


def eye(seed: int = 0, h: int = H, w: int = W) -> np.ndarray:
    """A plausible eye patch: skin, an almond sclera, iris and pupil, a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = np.empty((h, w, 3), np.float64)
    img[:] = (190, 150, 130)
    opening = ((xx - w / 2) / (0.4 * w)) ** 2 + ((yy - h / 2) / (0.25 * h)) ** 2 < 1
    img[opening] = (230, 225, 220)
    cx, cy = w / 2 + rng.uniform(-5, 5), h / 2
    r2 = (xx - cx) ** 2 + (yy - cy) ** 2
    img[opening & (r2 < (0.2 * h) ** 2)] = (90, 60, 40)
    img[opening & (r2 < (0.08 * h) ** 2)] = (15, 10, 10)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_header(w: int, h: int, idat: bytes | None = None) -> bytes:
    """A PNG whose header claims ``w``×``h`` RGB pixels (the data need not match)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\0" * 64) if idat is None else idat
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def _encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _images(c: Corpus) -> None:
    d = c.img
    d.mkdir(parents=True)
    rgb = Image.fromarray(eye(0))
    gray = rgb.convert("L")
    g = np.asarray(gray)

    def good(name: str, data: bytes, shape: tuple[int, int] = (H, W)) -> None:
        (d / name).write_bytes(data)
        c.good[f"img/{name}"] = shape

    def bad(name: str, data: bytes) -> None:
        (d / name).write_bytes(data)
        c.bad.append(f"img/{name}")

    png = _encode(rgb, "PNG")
    jpg = _encode(rgb, "JPEG", quality=92)
    good("plain.png", png)
    good("photo.jpg", jpg)
    good("gray.png", _encode(gray, "PNG"))
    good("gray16.png", _encode(Image.fromarray(g.astype(np.uint16) * 257), "PNG"))
    good("palette.png", _encode(rgb.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"))
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    good("palette_alpha.png", _encode(pal, "PNG", transparency=0))
    good("rgba.png", _encode(rgb.convert("RGBA"), "PNG"))
    good("la.png", _encode(gray.convert("LA"), "PNG"))
    good("bilevel.png", _encode(gray.convert("1"), "PNG"))
    good("cmyk.jpg", _encode(rgb.convert("CMYK"), "JPEG"))
    good("float01.tif", _encode(Image.fromarray(g.astype(np.float32) / 255, mode="F"), "TIFF"))
    good("int16range.tif", _encode(Image.fromarray(g.astype(np.int32) * 257, mode="I"), "TIFF"))
    good("rgb8.tif", _encode(rgb, "TIFF"))
    good("plain.bmp", _encode(rgb, "BMP"))
    good("plain.webp", _encode(rgb, "WEBP", lossless=True))
    good("png_named.jpg", png)  # wrong extension, decodable content
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 36 wide × 60 tall; shown rotated 90° clockwise: 60 × 36
    good("portrait_exif.jpg", _encode(rgb.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif.tobytes()))
    good("ñandú ü.png", png)
    good("Case.png", png)
    good("case.png", _encode(Image.fromarray(eye(1)), "PNG"))
    good("n" * 251 + ".png", png)  # 255 bytes: the longest name; temp names must stay shorter
    good("N" * 251 + ".png", _encode(Image.fromarray(eye(2)), "PNG"))  # its _2 must be shortened
    good(os.fsdecode(b"latin1_\xe9.png"), png)  # not UTF-8: written escaped to reports
    for name in ("=HYPERLINK(x).png", "+1.png", "-1.png", "@cmd.png"):  # formula-like CSV cells
        good(name, png)

    bad("empty.png", b"")
    bad("truncated.png", png[: len(png) // 3])
    bad("truncated.jpg", jpg[: len(jpg) // 2])
    bad("text.png", b"this is not an image\n" * 20)
    bad("html.jpg", b"<html><body>404 not found</body></html>")
    bad("one_by_one.png", _encode(Image.new("RGB", (1, 1)), "PNG"))
    bad("one_row.png", _encode(Image.new("RGB", (60, 1)), "PNG"))
    bad("bomb.png", png_with_header(50000, 50000))
    bad("zero_size.png", png_with_header(0, 0))
    bad("corrupt_pixels.png", png_with_header(W, H, idat=os.urandom(200)))
    bad("over_limit.png", _encode(Image.fromarray(eye(2, 150, 200)), "PNG"))  # 30000 px > MAX_PIXELS
    bad("float_range.tif", _encode(Image.fromarray(g.astype(np.float32), mode="F"), "TIFF"))
    nan = g.astype(np.float32) / 255
    nan[3, 3] = np.nan
    bad("float_nan.tif", _encode(Image.fromarray(nan, mode="F"), "TIFF"))
    bad("int32.tif", _encode(Image.fromarray(g.astype(np.int32) * 1_000_000, mode="I"), "TIFF"))
    bad("int32_negative.tif", _encode(Image.fromarray(g.astype(np.int32) - 1000, mode="I"), "TIFF"))
    bad("truncated.tif", _encode(rgb, "TIFF")[:300])
    bad("unsupported.gif", _encode(rgb, "GIF"))
    (d / "dir.png").mkdir()
    c.bad.append("img/dir.png")
    os.symlink("loop.png", d / "loop.png")
    c.bad.append("img/loop.png")
    os.symlink("does_not_exist.png", d / "broken_link.png")
    c.bad.append("img/broken_link.png")
    if hasattr(os, "mkfifo"):
        os.mkfifo(d / "fifo.png")
        c.bad.append("img/fifo.png")

    for sub, seed in (("sub_a", 3), ("sub_b", 4)):
        (c.root / sub).mkdir()
        (c.root / sub / "x.png").write_bytes(_encode(Image.fromarray(eye(seed)), "PNG"))


def _ue_pairs(c: Corpus) -> None:
    from eyepurify.cli import main

    tmp = c.root / "_render"
    with open(os.devnull, "w") as null:
        old = sys.stdout
        sys.stdout = null
        try:
            main(["render", "--domain", "wild", "--n", "14", "--size", f"{H}x{W}", "--seed", "1", "--out", str(tmp)])
        finally:
            sys.stdout = old
    src = tmp / "wild"
    ue = c.root / "ue"
    ue.mkdir()
    pngs = sorted(src.glob("*.png"))
    base = json.loads(pngs[0].with_suffix(".json").read_text())

    def pair(i: int, text: str | bytes | None, image: bool = True) -> str:
        if image:
            (ue / f"{i}.png").write_bytes(pngs[i].read_bytes())
        if text is not None:
            (ue / f"{i}.json").write_bytes(text.encode() if isinstance(text, str) else text)
        return f"ue/{i}.json" if text is not None else f"ue/{i}.png"

    def with_(key: str, value: object) -> str:
        d = json.loads(json.dumps(base))
        node = d
        *path, last = key.split(".")
        for k in path:
            node = node[k]
        node[last] = value
        return json.dumps(d)

    dumped = json.dumps(base)
    c.ue_good += [pair(0, pngs[0].with_suffix(".json").read_text()), pair(1, pngs[1].with_suffix(".json").read_text())]
    c.ue_bad += [
        pair(2, with_("eye_details.pupil_size", "(" + "9" * 400 + ")")),  # 400-digit integer
        pair(3, dumped[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"),  # RecursionError
        pair(4, dumped[:-1] + ', "big": ' + "9" * 5000 + "}"),  # beyond int digit limit
        pair(5, dumped[: len(dumped) // 2]),  # truncated JSON
        pair(6, "[1, 2, 3]"),  # not an object
        pair(7, with_("iris_2d", "not a list")),
        pair(8, with_("eye_details.look_vec", "(nan, 0, 1, 0)")),
        pair(9, with_("eyepurify", {"pupil_center": [10**400, 3]})),
        pair(10, json.dumps({k: v for k, v in base.items() if k != "interior_margin_2d"})),
        pair(11, b"\xff\xfe\x00garbage\x80"),
        pair(12, ""),
        pair(13, None),  # image without its JSON
    ]
    (ue / "99.json").write_text(dumped)  # JSON without its image
    c.ue_bad.append("ue/99.json")
    for p in tmp.rglob("*"):
        if p.is_file():
            p.unlink()
    for p in sorted(tmp.rglob("*"), reverse=True):
        p.rmdir()
    tmp.rmdir()


def _h5(c: Corpus) -> None:
    import h5py

    rng = np.random.default_rng(0)
    with h5py.File(c.root / "mpii.h5", "w") as f:
        g = f.create_group("p00")
        g["image"] = np.stack([np.asarray(Image.fromarray(eye(i)).convert("L")) for i in range(4)])
        g["gaze"] = rng.normal(0, 0.2, (4, 2))
        g["pose"] = rng.normal(0, 0.2, (4, 2))
    data = bytearray((c.root / "mpii.h5").read_bytes())
    data[600:1400] = os.urandom(800)
    (c.root / "damaged.h5").write_bytes(bytes(data))


def _videos(c: Corpus) -> None:
    import cv2

    (c.root / "video").mkdir()
    path = c.root / "video" / "truncated.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    for i in range(24):
        w.write(eye(i))
    w.release()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    c.truncated_video = "video/truncated.avi"


def write_corpus(root: str | os.PathLike[str], unityeyes: bool = True, h5: bool = True) -> Corpus:
    """Write the corpus under ``root`` (which must not exist yet); the UnityEyes folder and
    the HDF5 files only when asked."""
    c = Corpus(Path(root))
    c.root.mkdir(parents=True)
    _images(c)
    _videos(c)
    if unityeyes:
        _ue_pairs(c)
    if h5:
        _h5(c)
    return c


if __name__ == "__main__":
    corpus = write_corpus(sys.argv[1])
    print(f"{corpus.root}: {len(corpus.good)} good and {len(corpus.bad)} bad image inputs, "
          f"{len(corpus.ue_good)} good and {len(corpus.ue_bad)} bad UnityEyes pairs, mpii.h5, damaged.h5; "
          f"run with --max-pixels {MAX_PIXELS}")

"""Argument parsers shared by the commands."""

from __future__ import annotations

import argparse

from eyepurify.errors import EyepurifyError
from eyepurify.imaging import parse_size


def size_arg(text: str) -> tuple[int, int]:
    """:func:`parse_size` as an argparse ``type=`` (a usage error instead of an exception)."""
    try:
        return parse_size(text)
    except EyepurifyError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def pixels_arg(text: str) -> int:
    """``--max-pixels``: "50000000", "50M", "5e7" or "50_000_000" -> pixels (at least 1)."""
    t = (text or "").strip().replace("_", "").replace(",", "")
    scale = 1
    if t[-1:].upper() in ("K", "M", "G"):
        scale = {"K": 10**3, "M": 10**6, "G": 10**9}[t[-1].upper()]
        t = t[:-1]
    try:
        value = float(t) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad pixel count {text!r}: use e.g. 50000000 or 50M") from None
    if not 1 <= value < 1e12:
        raise argparse.ArgumentTypeError(f"pixel count {text!r} is out of range (1 .. 1e12)")
    return int(value)


def add_max_pixels(parser: argparse.ArgumentParser) -> None:
    """The shared ``--max-pixels`` option (the decode limit of :func:`eyepurify.io.pixel_limit`)."""
    from eyepurify.io import DEFAULT_MAX_PIXELS

    parser.add_argument(
        "--max-pixels", type=pixels_arg, default=DEFAULT_MAX_PIXELS, metavar="N",
        help=f"skip (and report) images whose header claims more than N pixels, before decoding "
        f"(default {DEFAULT_MAX_PIXELS // 10**6}M; accepts 50M, 5e7)",
    )


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every batch command shares: --batch, --resume, --overwrite, --max-pixels."""
    parser.add_argument("--batch", type=int, default=32, help="images per forward pass")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out (same model and settings, checked against its manifest; done files are skipped)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty --out, replacing earlier eyepurify results there "
                        "(files eyepurify did not write, and inputs, are never replaced)")
    add_max_pixels(parser)

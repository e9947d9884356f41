"""Argument parsers shared by the commands."""

from __future__ import annotations

import argparse
import re

from eyepurify.errors import EyepurifyError


def parse_size(text: str, lo: int = 2, hi: int = 4096) -> tuple[int, int]:
    """"36x60" (H×W; ``x``, ``X`` or ``×``) -> (36, 60); EyepurifyError outside ``lo..hi`` per side."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text or "")
    if not m:
        raise EyepurifyError(f"bad size {text!r}: use HxW, e.g. 72x120")
    h, w = int(m.group(1)), int(m.group(2))
    if not (lo <= h <= hi and lo <= w <= hi):
        raise EyepurifyError(f"size {h}x{w} is out of range (use {lo}..{hi} pixels per side)")
    return h, w


def size_arg(text: str) -> tuple[int, int]:
    """:func:`parse_size` as an argparse ``type=`` (a usage error instead of an exception)."""
    try:
        return parse_size(text)
    except EyepurifyError as e:
        raise argparse.ArgumentTypeError(str(e)) from None

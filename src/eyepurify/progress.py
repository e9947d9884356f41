"""A progress bar with rate and ETA (tqdm) on stderr, for every batch that runs longer than
about two seconds (purify, segment, videos frame by frame, face mode, training, the gaze CNN).

Shown on a terminal only, also one that reports no size (0 columns: 80 are used); nothing on
a pipe or file unless asked. ``EYEPURIFY_PROGRESS=1`` asks for it anywhere, ``=0`` turns it
off everywhere; ``EYEPURIFY_PROGRESS_DELAY`` (seconds, default 2) is how long a batch runs
before its bar appears.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

#: A batch shorter than this (seconds) shows no bar.
DELAY_S = 2.0


def _delay() -> float:
    try:
        return max(0.0, float(os.environ.get("EYEPURIFY_PROGRESS_DELAY", DELAY_S)))
    except ValueError:
        return DELAY_S


def wanted(disable: bool | None = None) -> bool:
    """Whether a bar is shown: ``EYEPURIFY_PROGRESS`` 0/1 first, then ``disable`` (None: on a
    terminal only)."""
    env = os.environ.get("EYEPURIFY_PROGRESS", "").strip().lower()
    if env in ("0", "no", "off", "never"):
        return False
    if disable is not None:
        return not disable
    if env in ("1", "yes", "on", "always"):
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress_bar(
    it: Iterable[T], total: int | None = None, desc: str = "", disable: bool | None = None, unit: str = "it",
    initial: int = 0,
) -> tqdm:
    """Wrap ``it`` in a tqdm bar on stderr (iterate it; ``set_postfix`` works); ``disable=None``
    shows it only on a terminal (or where ``EYEPURIFY_PROGRESS=1``); ``initial``: items already
    done (a resumed run)."""
    show = wanted(disable)
    try:
        size = os.get_terminal_size(sys.stderr.fileno()) if show else os.terminal_size((0, 0))
    except (AttributeError, OSError, ValueError):
        size = os.terminal_size((0, 0))
    sized = size.columns > 0 and size.lines > 0  # a terminal of no size: tqdm would draw nothing there
    return tqdm(it, total=total, desc=desc, disable=not show, unit=unit, dynamic_ncols=sized,
                ncols=None if sized else 80, nrows=None if sized else 24, mininterval=0.5, initial=initial,
                delay=_delay(), file=sys.stderr)

"""A progress bar with rate and ETA (tqdm), quiet when output is not a terminal unless asked."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_bar(
    it: Iterable[T], total: int | None = None, desc: str = "", disable: bool | None = None, unit: str = "it",
    initial: int = 0,
) -> tqdm:
    """Wrap ``it`` in a tqdm bar on stderr (iterate it; ``set_postfix`` works); ``disable=None``
    shows it only on a terminal; ``initial``: items already done (a resumed run)."""
    if disable is None:
        disable = not sys.stderr.isatty()
    return tqdm(it, total=total, desc=desc, disable=disable, unit=unit, dynamic_ncols=True, mininterval=0.5,
                initial=initial)

"""Checks a batch command makes before it creates anything: when no input can be used at
all (every path is missing, a glob matched nothing), the run stops with one line and exit 2
and ``--out`` is not created, so the corrected re-run needs no ``--overwrite``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from eyepurify.errors import DataError, printable


class _Item(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def path(self) -> object: ...
    @property
    def reason(self) -> str: ...


def refuse_when_nothing_can_run(items: Sequence[_Item]) -> None:
    """Raise (exit 2, nothing written) when every input is unusable; else return."""
    if items and all(it.kind == "missing" for it in items):
        first = items[0]
        more = f" (and {len(items) - 1} more input(s) like it)" if len(items) > 1 else ""
        raise DataError(printable(str(first.path)), (first.reason or "no such file or folder") + more,
                        "check the path; nothing was written")

"""The lines a batch command prints about failed inputs: each one while there are few, a
count per reason when many fail alike (50 eye crops given to ``--faces`` are one line, not
50); every input stays listed in ``report.txt``."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import TextIO

from eyepurify.errors import printable

#: Failures printed one by one up to this many; more are summed up per reason.
SHOWN = 5


def _reason(source: str, error: str) -> str:
    """The error without the input's name in front ("x.png: no face found" → "no face found")."""
    for prefix in (f"{source}: ", f"{source}#"):
        if error.startswith(prefix):
            return error[len(prefix):].split(": ", 1)[-1] if prefix.endswith("#") else error[len(prefix):]
    return error


def print_failures(failed: list[tuple[str, str]], report: Path | str, stream: TextIO | None = None) -> None:
    """``failed``: (input, report line) pairs, as ``Manifest.failures()`` gives them."""
    out = stream or sys.stderr
    if len(failed) <= SHOWN:
        for src, err in failed:
            print(f"skipped: {printable(err or src)}", file=out)
        return
    reasons = Counter(_reason(src, err or src) for src, err in failed)
    first: dict[str, str] = {}
    for src, err in failed:
        first.setdefault(_reason(src, err or src), src)
    for k, (why, n) in enumerate(reasons.most_common()):
        if k == SHOWN:
            rest = sum(c for _, c in reasons.most_common()[SHOWN:])
            print(f"skipped {rest} more input(s) for {len(reasons) - SHOWN} other reason(s)", file=out)
            break
        eg = printable(first[why])
        print(f"skipped {n} input(s): {printable(why)}" + (f" (e.g. {eg})" if n > 1 else f" ({eg})"), file=out)
    print(f"every skipped input and its reason: {printable(str(report))}", file=out)

"""`eyepurify bench NAME [--quick] --out DIR`: benchmarks that write JSON + Markdown (+ PNG)."""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType

from eyepurify.commands._args import add_device_arguments

# name -> module under eyepurify.bench with add_arguments(parser) and run(args) -> str (headline)
BENCHES = {
    "paired": "eyepurify.bench.paired_cli",
    "gaze": "eyepurify.bench.gaze",
    "pupil": "eyepurify.bench.pupil",
    "sim2real": "eyepurify.bench.sim2real",
    "domain": "eyepurify.bench.domain",
    "objective": "eyepurify.bench.objective",
    "speed": "eyepurify.bench.speed",
    "video": "eyepurify.bench.video",
    "throughput": "eyepurify.bench.throughput",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a benchmark and write its tables and figures")
    bsub = p.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name, mod in BENCHES.items():
        m = importlib.import_module(mod)
        bp = bsub.add_parser(name, help=_first_line(m.__doc__) if m.__doc__ else name)
        bp.add_argument("--quick", action="store_true",
                        help="tiny settings to check that the benchmark runs (what CI runs); its numbers are not a result")
        bp.add_argument("--out", required=True, help="output folder")
        m.add_arguments(bp)
        add_device_arguments(bp)
        bp.set_defaults(func=lambda args, m=m: _run(m, args))


TOY = "toy settings, not a result"


def _first_line(doc: str) -> str:
    """A module docstring's first line without project references such as "(issue 6)"."""
    import re

    return re.sub(r"\s*\(issues? [0-9, ]+\)", "", doc.strip().splitlines()[0])


def _run(module: ModuleType, args: argparse.Namespace) -> int:
    """Run one benchmark and print its headline; a benchmark that asks for trained models
    (``TRAINS``) is handed the train-or-reuse cache (:class:`eyepurify.train.cache.TrainCache`).
    With ``--quick`` every result it wrote is marked as toy settings."""
    import time

    t0 = time.time()
    if getattr(module, "TRAINS", False):
        from eyepurify.train.cache import TrainCache

        headline = module.run(args, TrainCache)
    else:
        headline = module.run(args)
    if args.quick:
        mark_toy(args.out, t0)
        if TOY not in str(headline):
            headline = f"{TOY} (--quick): {str(headline).strip()}"
    print(headline)
    return 0


def mark_toy(out: str, since: float) -> None:
    """Mark every Markdown and JSON result this run wrote under ``out`` as toy settings: a line
    under the Markdown's title, a ``"toy"`` key in a JSON object (files already marked are left alone)."""
    import json
    from pathlib import Path

    from eyepurify.io import write_json, write_text

    for path in sorted(Path(out).glob("*")):
        if not path.is_file() or path.is_symlink() or path.stat().st_mtime < since - 1:
            continue
        if path.suffix == ".md":
            text = path.read_text(encoding="utf-8")
            if TOY not in text:  # under the title, when there is one
                note = f"**{TOY}** (`--quick`: tiny data and training, for checking that it runs)\n\n"
                title, sep, rest = text.partition("\n")
                write_text(path, f"{title}\n\n{note}{rest.lstrip(chr(10))}" if title.startswith("# ") and sep
                           else note + text)
        elif path.suffix == ".json":
            try:
                obj = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(obj, dict) and obj.get("toy") != TOY:
                write_json(path, {**obj, "toy": TOY})

"""`eyepurify bench NAME [--quick] --out DIR`: benchmarks that write JSON + Markdown (+ PNG)."""

from __future__ import annotations

import argparse
import importlib
import re
from types import ModuleType

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
        bp = bsub.add_parser(name, help=_help(m.__doc__, name))
        bp.add_argument("--quick", action="store_true", help="tiny settings (what CI runs)")
        bp.add_argument("--out", required=True, help="output folder")
        m.add_arguments(bp)
        bp.set_defaults(func=lambda args, m=m: _run(m, args))


def _help(doc: str | None, name: str) -> str:
    """A benchmark's one-line help: its docstring's first line, without our issue numbers."""
    line = doc.strip().splitlines()[0] if doc else name
    return re.sub(r"\s*\(issues? [0-9, ]+\)", "", line)


def _run(module: ModuleType, args: argparse.Namespace) -> int:
    """Run one benchmark and print its headline; a benchmark that asks for trained models
    (``TRAINS``) is handed the train-or-reuse cache (:class:`eyepurify.train.cache.TrainCache`)."""
    if getattr(module, "TRAINS", False):
        from eyepurify.train.cache import TrainCache

        headline = module.run(args, TrainCache)
    else:
        headline = module.run(args)
    print(headline)
    return 0

"""`eyepurify report DIR`: every benchmark result under DIR in one self-contained HTML page."""

from __future__ import annotations

import argparse
from pathlib import Path

from eyepurify.io import write_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="assemble benchmark results (NAME.md + NAME_*.png) into one offline HTML page",
        description=(
            "Find every NAME.md under DIR (the --out folders of `eyepurify bench` runs), inline "
            "its figures and write one self-contained HTML page (no network needed to view it)."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="folder with benchmark results (searched recursively)")
    p.add_argument("--out", default=None, help="HTML file to write (default: DIR/report.html)")
    p.add_argument("--title", default="eyepurify benchmark report")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eyepurify.bench.report import build_report

    page = build_report(args.dir, args.title)
    out = Path(args.out) if args.out else Path(args.dir) / "report.html"
    write_text(out, page)
    print(f"report written to {out} ({len(page) / 1e6:.1f} MB)")
    return 0

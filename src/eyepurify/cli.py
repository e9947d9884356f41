"""`eyepurify` command line: one module per subcommand under ``eyepurify.commands``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import sys

from eyepurify import __version__
from eyepurify.errors import EyepurifyError, Interrupted, one_line, os_error_message

# Each module exposes register(subparsers) -> None; the parser it adds sets func=run.
COMMAND_MODULES = [
    "eyepurify.commands.demo",
    "eyepurify.commands.render",
    "eyepurify.commands.data",
    "eyepurify.commands.purify",
    "eyepurify.commands.train",
    "eyepurify.commands.bench",
    "eyepurify.commands.optimize",
    "eyepurify.commands.segment",
    "eyepurify.commands.train_segmenter",
    "eyepurify.commands.train_simgan",
    "eyepurify.commands.report",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eyepurify", description="Purify real eye images into the synthetic style."
    )
    parser.add_argument("--version", action="version", version=f"eyepurify {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    # Recorded by benchmarks; the thread setting is part of how a timing was made.
    threads = os.environ.get("OMP_NUM_THREADS")
    args.command_line = (f"OMP_NUM_THREADS={threads} " if threads else "") + "eyepurify " + shlex.join(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except Interrupted as e:
        print(f"eyepurify: {e}", file=sys.stderr)
        return e.exit_code
    except EyepurifyError as e:
        print(f"eyepurify: error: {one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # the environment: --out unwritable, disk full, a file in the way
        print(f"eyepurify: error: {os_error_message(e)}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as e:  # a settings file every reader should have wrapped
        print(f"eyepurify: error: invalid JSON ({e}; the file is damaged, re-create it)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("eyepurify: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

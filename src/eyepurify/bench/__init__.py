"""Benchmarks (`eyepurify bench NAME`)."""

from __future__ import annotations

import argparse


def command_line(name: str, args: argparse.Namespace) -> str:
    """The ``eyepurify bench NAME ...`` command that reproduces ``args`` (for the JSON record):
    the command line the CLI recorded, else one rebuilt from the parsed options."""
    if getattr(args, "command_line", None):
        return str(args.command_line)
    parts = ["eyepurify", "bench", name]
    for k, v in vars(args).items():
        if k in ("func", "command", "bench") or v is None or v is False:
            continue
        flag = "--" + k.replace("_", "-")
        if v is True:
            parts.append(flag)
        elif isinstance(v, list | tuple):
            parts += [flag, *map(str, v)]
        else:
            parts += [flag, str(v)]
    return " ".join(parts)

"""Trace one ``eyepurify purify IMG --out DIR`` call in-process and count how it travels.

Counts, over the eyepurify source files only (whatever runs under an import is left out):
files entered, distinct file-to-file call edges (caller = the nearest eyepurify frame above
the callee, so calls through torch's ``Module.__call__`` still count) and pairs of files
that call each other both ways. Also counts the eyepurify modules ``eyepurify --help``
loads, in a fresh interpreter, and whether torch comes with it.

    PYTHONPATH=src python benchmarks/trace_purify.py IMG [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

HELP_PROBE = (
    "import sys, contextlib, io\n"
    "from eyepurify.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n"
    "    try:\n"
    "        main(['--help'])\n"
    "    except SystemExit:\n"
    "        pass\n"
    "mods = sorted(m for m in sys.modules if m == 'eyepurify' or m.startswith('eyepurify.'))\n"
    "print(len(mods), 'torch' in sys.modules)\n"
)


def help_modules() -> tuple[int, bool]:
    """(eyepurify modules loaded by ``eyepurify --help``, whether torch was imported)."""
    out = subprocess.run([sys.executable, "-c", HELP_PROBE], capture_output=True, text=True, check=True)
    n, torch = out.stdout.split()
    return int(n), torch == "True"


def trace_purify(image: str, out_dir: str) -> dict[str, Any]:
    """Run ``eyepurify purify image --out out_dir`` under ``sys.setprofile``; return the counts."""
    import eyepurify
    from eyepurify.cli import main

    root = str(Path(eyepurify.__file__).parent) + "/"
    files: set[str] = set()
    edges: set[tuple[str, str]] = set()

    def rel(path: str) -> str:
        return path[len(root):]

    def profiler(frame: FrameType, event: str, arg: object) -> None:
        if event != "call":
            return
        code = frame.f_code
        if not code.co_filename.startswith(root) or code.co_name == "<module>":
            return
        caller: str | None = None
        up = frame.f_back
        while up is not None:
            name = up.f_code.co_filename
            if name.startswith("<frozen importlib"):
                return  # import-time work: counted by the module counts, not here
            if caller is None and name.startswith(root):
                caller = rel(name)
            up = up.f_back
        callee = rel(code.co_filename)
        files.add(callee)
        if caller is not None and caller != callee:
            edges.add((caller, callee))

    sys.setprofile(profiler)
    try:
        rc = main(["purify", image, "--out", out_dir])
    finally:
        sys.setprofile(None)
    both_ways = sorted({tuple(sorted(e)) for e in edges if (e[1], e[0]) in edges})
    return {
        "exit_code": rc,
        "files_entered": len(files),
        "file_edges": len(edges),
        "both_way_pairs": len(both_ways),
        "both_way": [list(p) for p in both_ways],
        "files": sorted(files),
        "edges": sorted(f"{a} -> {b}" for a, b in edges),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image", help="one eye image to purify")
    ap.add_argument("--json", default=None, help="also write the full trace (files, edges) here")
    args = ap.parse_args()
    n_help, torch_on_help = help_modules()
    with tempfile.TemporaryDirectory() as tmp:
        result = trace_purify(args.image, str(Path(tmp) / "out"))
    result = {"help_modules": n_help, "help_imports_torch": torch_on_help, **result}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    for key in ("help_modules", "help_imports_torch", "exit_code", "files_entered", "file_edges", "both_way_pairs"):
        print(f"{key}: {result[key]}")
    for a, b in result["both_way"]:
        print(f"  both ways: {a} <-> {b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

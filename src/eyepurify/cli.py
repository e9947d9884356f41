"""`eyepurify` command line: one module per subcommand under ``eyepurify.commands``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import sys

from eyepurify import __version__
from eyepurify.errors import EyepurifyError, Interrupted, one_line, os_error_message, printable

# name -> (module, one-line help), in the order ``--help`` lists them. Each module exposes
# register(subparsers) -> None, which adds its parser(s) with func=run; only the module of
# the command being run is imported, the others are listed by name and help alone
# (tests/test_cli.py checks that these helps match what the modules register).
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("eyepurify.commands.demo",
             "render wild eyes and purify them with the shipped model (before/after sheet)"),
    "render": ("eyepurify.commands.render", "render labelled synthetic eyes (indoor / wild / paired)"),
    "render-sheet": ("eyepurify.commands.render", "contact sheet of renders next to real and synthetic eyes"),
    "data": ("eyepurify.commands.data", "inspect eye datasets"),
    "purify": ("eyepurify.commands.purify", "purify eye images, folders, datasets or videos"),
    "models": ("eyepurify.commands.models",
               "list the shipped models with their cards (style, data, measured numbers)"),
    "train": ("eyepurify.commands.train", "train a purifier on content images and synthetic style images"),
    "bench": ("eyepurify.commands.bench", "run a benchmark and write its tables and figures"),
    "optimize": ("eyepurify.commands.optimize", "purify one image by projected L-BFGS (the Gatys rows)"),
    "segment": ("eyepurify.commands.segment", "predict skin/sclera/iris/pupil label maps for eye images"),
    "train-segmenter": ("eyepurify.commands.train_segmenter",
                        "train the coarse skin/sclera/iris/pupil segmentation network"),
    "train-gaze": ("eyepurify.commands.train_gaze",
                   "train a gaze CNN on labelled eye images (renders, UnityEyes, MPIIGaze, ...)"),
    "evaluate": ("eyepurify.commands.evaluate",
                 "your gaze estimator (ONNX, TorchScript, ours) on raw vs purified labelled eyes"),
    "gaze": ("eyepurify.commands.gaze", "estimate gaze per eye (shipped estimator) and draw arrows on the images"),
    "live": ("eyepurify.commands.live", "camera or video: raw | purified side by side, gaze arrows, frames/s"),
    "distill": ("eyepurify.commands.distill", "distil a shipped network into a narrower, faster student"),
    "train-simgan": ("eyepurify.commands.train_simgan", "train the SimGAN refiner baseline (synthetic → realistic)"),
    "report": ("eyepurify.commands.report",
               "assemble benchmark results (NAME.md + NAME_*.png) into one offline HTML page"),
}


def command_of(argv: list[str]) -> str | None:
    """The subcommand named in argv (the first word not starting with '-'), or None.

    The top-level options (-h, --help, --version) take no value, so the first such word is the
    command (or an unknown word that argparse rejects).
    """
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The CLI parser; with argv, only the module of the command it names is imported.

    argv None registers every command module (the full parser, e.g. for tests).
    """
    parser = argparse.ArgumentParser(
        prog="eyepurify", description="Purify real eye images into the synthetic style."
    )
    parser.add_argument("--version", action="version", version=f"eyepurify {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = None if argv is None else COMMANDS.get(command_of(argv) or "", (None,))[0]
    for name, (module, help_) in COMMANDS.items():
        if name in sub.choices:  # added by an earlier module's register (render-sheet)
            continue
        if argv is None or module == wanted:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_)
    return parser


def _escape_unencodable_output() -> None:
    """Text a terminal's encoding cannot show (a unicode --out under PYTHONIOENCODING=ascii,
    an undecodable file name) is printed escaped instead of failing after the work is done."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    _escape_unencodable_output()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    # Recorded by benchmarks; the thread setting is part of how a timing was made.
    threads = os.environ.get("OMP_NUM_THREADS")
    args.command_line = (f"OMP_NUM_THREADS={threads} " if threads else "") + "eyepurify " + shlex.join(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if hasattr(args, "device"):  # before the command creates any output
            from eyepurify.device import configure

            configure(args.device, args.precision, args.compile, getattr(args, "gpus_per_worker", None))
        return int(args.func(args) or 0)
    except Interrupted as e:
        print(f"eyepurify: {e}", file=sys.stderr)
        return e.exit_code
    except EyepurifyError as e:
        print(f"eyepurify: error: {printable(one_line(str(e)))}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # the environment: --out unwritable, disk full, a file in the way
        print(f"eyepurify: error: {printable(os_error_message(e))}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as e:  # a settings file every reader should have wrapped
        print(f"eyepurify: error: invalid JSON ({e}; the file is damaged, re-create it)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("eyepurify: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The command line starts light: one command module is imported, torch only when it runs."""

from __future__ import annotations

import argparse
import subprocess
import sys

from eyepurify import cli

HELP_PROBE = """
import contextlib, io, sys
from eyepurify.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(["--help"])
    except SystemExit:
        pass
mods = [m for m in sys.modules if m == "eyepurify" or m.startswith("eyepurify.")]
print(len(mods), "torch" in sys.modules)
"""


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_import_eyepurify_does_not_import_torch() -> None:
    _python("import eyepurify, sys; assert 'torch' not in sys.modules, 'torch imported'")


def test_help_loads_few_modules_and_no_torch() -> None:
    n, torch = _python(HELP_PROBE).split()
    assert int(n) <= 12
    assert torch == "False"


def test_command_help_imports_no_torch_onnxruntime_or_ray() -> None:
    """`purify --help` / `segment --help` build the real parsers (--backend, --engine ...)
    without the heavy packages: those load only when a run uses them."""
    for command in ("purify", "segment"):
        out = _python(HELP_PROBE.replace('["--help"]', f'["{command}", "--help"]') + "\nprint(sorted(m for m in "
                      "('torch', 'onnxruntime', 'onnx', 'ray') if m in sys.modules))")
        assert out.split("\n")[1] == "[]", (command, out)


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def test_table_matches_what_the_modules_register() -> None:
    full = _subparsers(cli.build_parser())
    assert list(full.choices) == list(cli.COMMANDS)
    helps = {a.dest: a.help for a in full._choices_actions}
    assert helps == {name: help_ for name, (_, help_) in cli.COMMANDS.items()}


def test_a_command_imports_only_its_module() -> None:
    out = _python(
        "import sys\nfrom eyepurify.cli import build_parser\nbuild_parser(['report', 'x'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('eyepurify.commands.')))"
    )
    assert out.strip() == "['eyepurify.commands.report']"


def test_the_named_command_gets_its_real_parser() -> None:
    for argv in (["render-sheet", "--out", "x.png"], ["--version", "render"]):
        sub = _subparsers(cli.build_parser(argv))
        assert list(sub.choices) == list(cli.COMMANDS)
    args = cli.build_parser(["render-sheet", "--out", "x.png"]).parse_args(["render-sheet", "--out", "x.png"])
    assert args.out == "x.png" and callable(args.func)


def test_unknown_command_lists_every_choice(capsys) -> None:  # type: ignore[no-untyped-def]
    try:
        cli.main(["nope"])
    except SystemExit as e:
        assert e.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and "'train-simgan'" in err

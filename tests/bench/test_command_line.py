import argparse

from eyepurify.bench import command_line
from eyepurify.cli import build_parser, main


def test_cli_records_the_command_and_thread_setting(tmp_path, monkeypatch):
    seen = {}
    parser = build_parser()
    monkeypatch.setattr("eyepurify.cli.build_parser", lambda argv=None: parser)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices["report"].set_defaults(func=lambda args: seen.setdefault("cmd", args.command_line) and 0)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert main(["report", str(tmp_path / "a b")]) == 0
    assert seen["cmd"] == f"OMP_NUM_THREADS=1 eyepurify report '{tmp_path / 'a b'}'"


def test_command_line_rebuilds_without_the_cli():
    args = argparse.Namespace(quick=True, out="o", sizes=[1, 2], seed=None, func=print)
    assert command_line("speed", args) == "eyepurify bench speed --quick --out o --sizes 1 2"
    args.command_line = "eyepurify bench speed --out o"
    assert command_line("speed", args) == "eyepurify bench speed --out o"

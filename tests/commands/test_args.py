import argparse

import pytest

from eyepurify.commands._args import size_arg
from eyepurify.errors import EyepurifyError
from eyepurify.imaging import parse_size


@pytest.mark.parametrize("text, hw", [("72x120", (72, 120)), (" 36 X 60 ", (36, 60)), ("8×8", (8, 8))])
def test_parse_size_accepts_hxw(text, hw):
    assert parse_size(text) == hw


@pytest.mark.parametrize("text", ["72", "72x", "x60", "72by60", "-2x4", ""])
def test_parse_size_rejects_garbage(text):
    with pytest.raises(EyepurifyError, match="bad size"):
        parse_size(text)


def test_parse_size_bounds_and_argparse_wrapper():
    with pytest.raises(EyepurifyError, match="out of range"):
        parse_size("4x60", lo=8)
    assert parse_size("4x60") == (4, 60)
    with pytest.raises(argparse.ArgumentTypeError, match="bad size"):
        size_arg("nope")

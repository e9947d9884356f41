"""The one batch engine's I/O modes: ``--io threads`` (decode ahead, encode/write behind,
group commit) and ``--io serial`` (the old path) give the same pixels and manifest, for
``purify`` and ``segment`` alike."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eyepurify.cli import main
from eyepurify.io import read_image, write_image


def _inputs(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(3)
    paths = []
    for i in range(5):
        p = tmp_path / "in" / f"{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        write_image(p, rng.integers(0, 256, (36, 60, 3), dtype=np.uint8))
        paths.append(str(p))
    bad = tmp_path / "in" / "broken.png"
    bad.write_bytes(b"not a png")
    return [*paths, str(bad)]


def _pixels(d: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(d).as_posix(): read_image(p) for p in d.rglob("*.png")}


@pytest.mark.parametrize("command", ["purify", "segment"])
def test_threads_and_serial_io_agree(tmp_path, command):
    inputs = _inputs(tmp_path)
    outs = {}
    for io in ("serial", "threads"):
        outs[io] = tmp_path / io
        assert main([command, *inputs, "--out", str(outs[io]), "--batch", "2", "--io", io]) == 1  # one bad input
    a, b = _pixels(outs["serial"]), _pixels(outs["threads"])
    assert len(a) == 2 * 5 and a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    items = [json.loads((outs[io] / "manifest.json").read_text())["items"] for io in ("serial", "threads")]
    assert items[0] == items[1]
    assert not [p for p in outs["threads"].rglob(".*") if ".tmp" in p.name]

"""--engine ray: a local 2-worker Ray cluster gives the local run's outputs, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from eyepurify.cli import main
from eyepurify.io import write_image

pytest.importorskip("ray")


def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*")
            if p.is_file() and p.name not in ("manifest.json", "report.txt", "index.csv")}


@pytest.mark.slow
def test_ray_two_workers_equal_local(tmp_path):
    from eyepurify.bench.paired import render_pairs

    data = render_pairs(10, (36, 60), seed=5)
    for i, im in enumerate(data.wild):
        write_image(tmp_path / "in" / f"{i:03d}.png", im)
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    common = [str(tmp_path / "in"), "--backend", "torch", "--batch", "4"]
    assert main(["purify", *common, "--out", str(tmp_path / "local")]) == 1  # one bad input
    assert main(["purify", *common, "--out", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"]) == 1
    local, ray = _files(tmp_path / "local"), _files(tmp_path / "ray")
    assert len(local) == 2 * 10 and local == ray
    assert (tmp_path / "local" / "index.csv").read_bytes() == (tmp_path / "ray" / "index.csv").read_bytes()
    assert "broken.png" in (tmp_path / "ray" / "report.txt").read_text()


@pytest.mark.slow
def test_segment_on_ray_equals_local(tmp_path):
    from eyepurify.bench.paired import render_pairs

    data = render_pairs(6, (36, 60), seed=6)
    for i, im in enumerate(data.wild):
        write_image(tmp_path / "in" / f"{i:03d}.png", im)
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    common = ["segment", str(tmp_path / "in"), "--backend", "torch", "--batch", "4"]
    assert main([*common, "--out", str(tmp_path / "local")]) == 1
    assert main([*common, "--out", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"]) == 1
    local, ray = _files(tmp_path / "local"), _files(tmp_path / "ray")
    assert len(local) == 2 * 6 and local == ray  # labels/ and overlays/
    assert "broken.png" in (tmp_path / "ray" / "report.txt").read_text()

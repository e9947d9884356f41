"""--shard K/N: disjoint, covering, deterministic; shards' outputs merge without collisions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eyepurify.cli import main
from eyepurify.engines.plan import in_shard, parse_shard
from eyepurify.errors import EyepurifyError
from eyepurify.io import write_image

PER_RUN = {"manifest.json", "report.txt", "index.csv"}


def test_parse_shard():
    assert parse_shard("2/4") == (2, 4)
    assert parse_shard(None) is None
    for bad in ("0/4", "5/4", "a/b", "1-4"):
        with pytest.raises(EyepurifyError, match="--shard"):
            parse_shard(bad)


def test_in_shard_partitions_keys():
    keys = [f"k{i}" for i in range(23)]
    parts = [in_shard(keys, (k, 3)) for k in (1, 2, 3)]
    assert set().union(*parts) == set(keys)
    assert sum(len(p) for p in parts) == len(keys)
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
    assert in_shard(list(reversed(keys)), (2, 3)) == parts[1]  # input order does not matter


def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*") if p.is_file() and p.name not in PER_RUN}


@pytest.mark.parametrize("command", ["purify", "segment"])
def test_shards_merge_into_the_unsharded_run(tmp_path, command):
    rng = np.random.default_rng(0)
    inputs = []
    for folder in ("a", "b"):
        for name in ("x.png", "y.png", "z.png"):  # a/x.png and b/x.png would collide by name
            p = tmp_path / "in" / folder / name
            p.parent.mkdir(parents=True, exist_ok=True)
            write_image(p, rng.integers(0, 256, (36, 60, 3), dtype=np.uint8))
            inputs.append(str(p))
    full = tmp_path / "full"
    assert main([command, *inputs, "--out", str(full), "--backend", "torch"]) == 0
    merged: dict[str, bytes] = {}
    for k in (1, 2):
        out = tmp_path / f"s{k}"
        assert main([command, *inputs, "--out", str(out), "--backend", "torch", "--shard", f"{k}/2"]) == 0
        part = _files(out)
        assert part and not set(part) & set(merged)  # disjoint: no name collision on merge
        merged.update(part)
    assert merged == _files(full)
    # a resume of a shard keeps to its shard
    assert main([command, *inputs, "--out", str(tmp_path / "s1"), "--backend", "torch", "--shard", "1/2", "--resume"]) == 0
    assert _files(tmp_path / "s1").keys() <= merged.keys()

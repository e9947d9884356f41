"""`eyepurify bench video --quick`: JSON, Markdown and the strip figure."""

from __future__ import annotations

import json

import pytest

from eyepurify.cli import main

pytest.importorskip("skimage.data")
pytest.importorskip("lz4.frame")


def test_bench_video_quick(tmp_path):
    out = tmp_path / "v"
    assert main(["bench", "video", "--quick", "--sequences", "1", "--frames", "3", "--video-frames", "3",
                 "--out", str(out)]) == 0
    res = json.loads((out / "video.json").read_text())
    r, f = res["rendered"], res["face_video"]
    for k in ("raw", "purified", "stabilised", "indoor"):
        assert r[k] >= 0
    assert f["frames"] == 3 and f["size"] == [640, 480] and f["fps_purified"] > 0
    assert f["frames_without_face_purified"] == 0
    assert "Warping error" in (out / "video.md").read_text()
    assert (out / "video_strip.png").stat().st_size > 1000

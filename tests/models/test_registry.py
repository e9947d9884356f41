"""One model registry: every file says its kind; old files without one still load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eyepurify.errors import WeightsError
from eyepurify.models.export import read_model_meta, save_model
from eyepurify.models.registry import KINDS, infer_kind, load_model
from eyepurify.models.segmentation import SegmentationNet, create_segmentation_net
from eyepurify.models.simgan import Refiner, create_refiner
from eyepurify.models.transformer import TransformNet, create_transform_net
from eyepurify.train.checkpoint import save_checkpoint


def _nets() -> dict[str, tuple[torch.nn.Module, dict[str, object]]]:
    torch.manual_seed(0)
    pur = create_transform_net("test_tiny")
    seg = create_segmentation_net("test_tiny")
    ref = create_refiner("test_tiny", 1)
    return {
        "purifier": (pur, {"net": pur.config.to_dict()}),
        "segmentation": (seg, {"net": seg.config.to_dict(), "size": [36, 60]}),
        "simgan-refiner": (ref, {"refiner": ref.config.to_dict()}),
    }


CLASSES = {"purifier": TransformNet, "segmentation": SegmentationNet, "simgan-refiner": Refiner}


@pytest.mark.parametrize("with_kind", [True, False], ids=["kind", "old-format"])
def test_every_kind_loads_with_and_without_kind(tmp_path: Path, with_kind: bool) -> None:
    for kind, (net, meta) in _nets().items():
        path = tmp_path / f"{kind}.safetensors"
        save_model(path, net, {**meta, "kind": kind} if with_kind else meta)
        assert infer_kind(read_model_meta(path)) == kind
        loaded, got = load_model(path)
        assert isinstance(loaded, CLASSES[kind]) and not loaded.training and got["kind"] == kind
        for k, v in net.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], v)
        assert isinstance(load_model(path, kind)[0], CLASSES[kind])


def test_wrong_kind_names_the_file_and_the_fix(tmp_path: Path) -> None:
    net, meta = _nets()["segmentation"]
    path = tmp_path / "seg.safetensors"
    save_model(path, net, {**meta, "kind": "segmentation"})
    with pytest.raises(WeightsError, match=r"seg\.safetensors: not a purifier model \(kind 'segmentation'\)"):
        load_model(path, "purifier")
    with pytest.raises(WeightsError, match="not a SimGAN refiner file"):
        load_model(path, "simgan-refiner")
    save_model(tmp_path / "odd.safetensors", net, {"kind": "teapot"})
    with pytest.raises(WeightsError, match="unknown model kind 'teapot'"):
        load_model(tmp_path / "odd.safetensors")


@pytest.mark.parametrize("kind", ["segmentation", None], ids=["kind", "old-format"])
def test_segmenter_checkpoints_load_for_inference(tmp_path: Path, kind: str | None) -> None:
    net, meta = _nets()["segmentation"]
    path = tmp_path / "last.safetensors"
    save_checkpoint(path, net, step=7, config={"size": (36, 60)}, extra={"net": meta["net"]}, kind=kind)
    loaded, got = load_model(path, "segmentation")
    assert isinstance(loaded, SegmentationNet)
    assert got == {"kind": "segmentation", "net": meta["net"], "size": (36, 60), "step": 7}


def test_shipped_models_say_their_kind() -> None:
    root = Path(__file__).resolve().parents[2] / "src" / "eyepurify" / "weights"
    kinds = {p.name: read_model_meta(p).get("kind") for p in sorted(root.glob("*.safetensors"))}
    assert set(kinds.values()) <= set(KINDS) and None not in kinds.values()


def test_inference_never_imports_training() -> None:
    code = ("import sys, eyepurify.purify, eyepurify.segment, eyepurify.engines.run, eyepurify.models.registry\n"
            "bad = [m for m in sys.modules if m.startswith('eyepurify.train')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)

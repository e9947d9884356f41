"""Issue 25: model files and the export cache are untrusted. Metadata out of its sane ranges is
refused before anything is built, tensors that do not fit before the network is allocated,
networks that give NaN, inf, flat or saturated outputs on the probe eye at load, and cached
exports that do not match their record or do not compute the network are re-made."""

from __future__ import annotations

import errno
import json
import resource
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from eyepurify.cli import main
from eyepurify.errors import EyepurifyError, WeightsError
from eyepurify.models.export import save_model
from eyepurify.models.registry import load_model
from eyepurify.models.segmentation import create_segmentation_net
from eyepurify.models.simgan import create_refiner
from eyepurify.models.transformer import create_transform_net
from eyepurify.purify import packaged_weights

from ..bad_corpus import eye


def _tiny(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_transform_net("test_tiny").eval()


def _write(path: Path, net: torch.nn.Module, meta: dict) -> Path:
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata={"eyepurify": json.dumps(meta)})
    return path


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    # "eyepurify: preparing the ... model (once ...)" says an export started; the error is one line
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and not ln.startswith("eyepurify: preparing ")]
    assert len(lines) == 1 and lines[0].startswith("eyepurify: error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    p = tmp_path_factory.mktemp("img") / "a.png"
    Image.fromarray(eye(0)).save(p)
    return p


# ---------------------------------------------------------------- 10. metadata bounds, before anything is built

NET = {"width": 4, "n_res": 1, "dropout": 0.0, "mask_channels": 4, "outer_kernel": 9}
SCALE = {"size": [36, 60], "eye_width": 38.0, "center": [30.0, 18.0]}


@pytest.mark.parametrize(("meta", "words"), [
    ({"net": {**NET, "width": 4096, "n_res": 64}}, "net.width = 4096"),
    ({"net": {**NET, "n_res": 33}}, "net.n_res = 33"),
    ({"net": {**NET, "outer_kernel": 31}}, "net.outer_kernel = 31"),
    ({"net": {**NET, "mask_channels": 3}}, "net.mask_channels = 3"),
    ({"net": NET, "size": [4096, 4096]}, "size is [4096, 4096]"),
    ({"net": NET, "train": {"size": [2, 2]}}, "train.size is [2, 2]"),
    ({"net": NET, "eye_scale": {**SCALE, "eye_width": 0.5}}, "eye_scale.eye_width = 0.5"),
    ({"net": NET, "eye_scale": {**SCALE, "eye_width": 1e12}}, "eye_scale.eye_width = 1000000000000.0"),
    ({"net": NET, "eye_scale": {**SCALE, "eye_width": 1e-300}}, "eye_scale.eye_width = 1e-300"),
    ({"net": NET, "eye_scale": {**SCALE, "center": [1e300, 18.0]}}, "eye_scale.center"),
    ({"net": NET, "eye_scale": {**SCALE, "size": [4096, 4096]}}, "eye_scale.size"),
    ({"net": NET, "eye_scale": {"eye_width": 38.0, "center": [30.0, 18.0]}}, "without its size"),
])
def test_metadata_out_of_bounds_is_refused(image, tmp_path, capsys, meta, words):
    path = _write(tmp_path / "m.safetensors", _tiny(), meta)
    assert main(["purify", str(image), "--out", str(tmp_path / "out"), "--model", str(path)]) == 2
    line = _one_line(capsys)
    assert "m.safetensors" in line and words in line, line
    assert not (tmp_path / "out").exists()


def test_other_model_kinds_are_bounded_too(tmp_path):
    seg = create_segmentation_net("test_tiny")
    for net, words in (({"width": 256, "depth": 6, "in_channels": 3, "num_classes": 4}, r"2\^depth = 16384"),
                       ({"width": 4, "depth": 2, "in_channels": 3, "num_classes": 9}, "num_classes = 9")):
        path = _write(tmp_path / "s.safetensors", seg, {"kind": "segmentation", "net": net, "size": [36, 60]})
        with pytest.raises(WeightsError, match=words):
            load_model(path, "segmentation")
    ref = create_refiner("test_tiny", 1)
    for cfg, words in (({"channels": 2, "filters": 8, "blocks": 1}, "channels"),
                       ({"channels": 1, "filters": 100000, "blocks": 1}, "refiner.filters")):
        path = _write(tmp_path / "r.safetensors", ref, {"kind": "simgan-refiner", "refiner": cfg})
        with pytest.raises(WeightsError, match=words):
            load_model(path, "simgan-refiner")


def test_a_big_architecture_is_checked_against_the_file_before_it_is_allocated(tmp_path):
    """In range, but 600M parameters declared in a 30 kB file: refused without building it."""
    path = _write(tmp_path / "big.safetensors", _tiny(), {"net": {**NET, "width": 256, "n_res": 32}})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    with pytest.raises(WeightsError, match="big.safetensors: weights do not fit"):
        load_model(path, "purifier")
    assert time.perf_counter() - t < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000  # kB: nothing like 2.4 GB


# ---------------------------------------------------------------- 5. the functional check at load


def _broken(kind: str, how: str) -> torch.nn.Module:
    net = _tiny() if kind == "purifier" else create_segmentation_net("test_tiny").eval()
    with torch.no_grad():
        for m in net.modules():
            if how == "negative_variance" and isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.fill_(-1.0)
            if how == "huge" and isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                m.weight.mul_(1e4)
        if how == "flat":
            last = net.decoder[-1][1] if kind == "purifier" else net.head
            last.weight.zero_()
    return net


@pytest.mark.parametrize(("kind", "how", "words"), [
    ("purifier", "negative_variance", "NaN or inf"),
    ("purifier", "huge", "saturated"),
    ("purifier", "flat", "flat output"),
    ("segmentation", "negative_variance", "NaN or inf"),
    ("segmentation", "flat", "flat output"),
])
def test_networks_with_useless_outputs_are_refused_at_load(image, tmp_path, capsys, kind, how, words):
    net = _broken(kind, how)
    meta = {"kind": kind, "net": net.config.to_dict(), "size": [36, 60]}
    path = tmp_path / f"{kind}_{how}.safetensors"
    save_model(path, net, meta)
    argv = (["purify", str(image), "--model", str(path)] if kind == "purifier" else
            ["segment", str(image), "--model", str(path)])
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    line = _one_line(capsys)
    assert path.name in line and words in line and "probe" in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", sorted(p.name for p in packaged_weights("").glob("*.safetensors")))
def test_shipped_models_pass_the_probe_quickly(name):
    from eyepurify.models.probe import output_problem, run_probe

    net, meta = load_model(packaged_weights(name))  # the probe ran
    t = time.perf_counter()
    assert output_problem(run_probe(net, meta["kind"]), meta["kind"]) == ""
    assert time.perf_counter() - t < 0.5  # a few ms on an idle core


# ---------------------------------------------------------------- 6. the export cache


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("EYEPURIFY_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _outputs(runner: object, net: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    from eyepurify.models.probe import run_probe

    return run_probe(runner, "purifier"), run_probe(net, "purifier")


def _other_network(path: Path, channels: int) -> None:
    """A valid ONNX file with the exported networks' signature that computes something else
    (the input's first three channels, channels-last): another network's file."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Constant", [], ["s"], value=helper.make_tensor("s", TensorProto.INT64, [1], [0])),
             helper.make_node("Constant", [], ["e"], value=helper.make_tensor("e", TensorProto.INT64, [1], [3])),
             helper.make_node("Constant", [], ["a"], value=helper.make_tensor("a", TensorProto.INT64, [1], [1])),
             helper.make_node("Slice", ["x", "s", "e", "a"], ["c"]),
             helper.make_node("Transpose", ["c"], ["y"], perm=[0, 2, 3, 1])]
    graph = helper.make_graph(nodes, "other", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", channels, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "h", "w", 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_a_swapped_or_forged_export_is_reported_and_remade(cache, capsys, monkeypatch):
    import eyepurify.backends.runners as runners
    from eyepurify.backends import state_digest, wrap_transform
    from eyepurify.io import file_sha256

    net = _tiny(0)
    ours = runners.model_file(net, "fp32")  # the one real export
    good = ours.read_bytes()
    exports = []

    def export(net: object, example: object, path: Path) -> Path:  # re-exporting gives the same file, fast
        exports.append(path)
        path.write_bytes(good)
        return path

    monkeypatch.setattr(runners, "export_onnx", export)
    weights = state_digest(net)
    assert runners.cache_entry_problem(ours, weights) == ""
    assert "another network" in runners.cache_entry_problem(ours, state_digest(_tiny(1)))
    _other_network(ours, 7)  # another network's file under our name: its record no longer matches
    assert "differs from its record" in runners.cache_entry_problem(ours, weights)
    got, want = _outputs(wrap_transform(net, "onnx"), net)
    assert "differs from its record" in capsys.readouterr().err and exports == [ours]
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    _other_network(ours, 7)  # and a record forged to match it: the probe tells
    rec = json.loads(runners.record_path(ours).read_text())
    runners.record_path(ours).write_text(json.dumps({**rec, "export_sha256": file_sha256(ours)}))
    got, want = _outputs(wrap_transform(net, "onnx"), net)
    assert "does not compute this network" in capsys.readouterr().err and len(exports) == 2
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    runners.record_path(ours).unlink()  # an entry without a record (written by an older eyepurify)
    wrap_transform(net, "onnx")
    assert "no record" in capsys.readouterr().err and runners.record_path(ours).is_file() and len(exports) == 3
    runners.record_path(ours).write_text("[" * 100_000)  # a damaged record
    wrap_transform(net, "onnx")
    assert "record is unreadable" in capsys.readouterr().err and len(exports) == 4
    wrap_transform(net, "onnx")  # a good entry is used quietly
    assert capsys.readouterr().err == "" and len(exports) == 4


def test_a_full_cache_disk_names_the_file(cache, image, tmp_path, capsys, monkeypatch):
    import eyepurify.backends.runners as runners

    def full(*a: object, **k: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runners.torch.onnx, "export", full)
    torch.manual_seed(0)
    net = create_transform_net("test_tiny").eval()
    path = tmp_path / "p.safetensors"
    save_model(path, net, {"net": net.config.to_dict(), "train": {"size": [36, 60]}})
    assert main(["purify", str(image), "--out", str(tmp_path / "out"), "--model", str(path), "--segmenter", "none",
                 "--backend", "onnx"]) == 2
    line = _one_line(capsys)
    assert str(cache) in line and "-fp32.onnx" in line and "free some space" in line, line
    with pytest.raises(EyepurifyError, match="EYEPURIFY_CACHE_DIR"):
        runners.model_file(net, "fp32")

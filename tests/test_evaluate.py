"""`eyepurify evaluate`, `gaze` and `live`: foreign models (ONNX, TorchScript), our CNN, the same
numbers as `bench gaze`, contract errors, arrows, the headless live mode."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from eyepurify.cli import main


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """Renders (test: 16 wild eyes with label maps) and a tiny gaze CNN trained on 60 indoor renders."""
    d = tmp_path_factory.mktemp("evaluate")
    assert main(["render", "--domain", "indoor", "--n", "60", "--size", "72x120", "--seed", "5", "--out", str(d / "train")]) == 0
    assert main(["render", "--domain", "wild", "--n", "16", "--size", "72x120", "--seed", "6", "--out", str(d / "test")]) == 0
    assert main(["train-gaze", str(d / "train"), "--model", "test_tiny", "--epochs", "2", "--batch", "32",
                 "--out", str(d / "cnn")]) == 0
    return {"root": d, "train": d / "train", "test": d / "test", "cnn": d / "cnn" / "model.safetensors"}


class _Pitchyaw(torch.nn.Module):
    """Our tiny CNN behind a foreign contract: N×1×18×30 in [0, 1] → N×2 (pitch, yaw)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.net(x)
        return torch.stack([torch.asin(-v[:, 1]), torch.atan2(-v[:, 0], -v[:, 2])], 1)


@pytest.fixture(scope="module")
def exported(sets) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    from eyepurify.gaze.cnn import CNNEstimator

    net = CNNEstimator.load(sets["cnn"]).net.eval()  # type: ignore[union-attr]
    x = torch.rand(2, 1, 18, 30)
    d = sets["root"]
    out = {}
    with torch.no_grad():
        ts = torch.jit.trace(_Pitchyaw(net), x)
    ts.save(str(d / "model.pt"))
    out["torchscript"] = d / "model.pt"
    torch.onnx.export(net, (x,), str(d / "vector.onnx"), input_names=["x"], output_names=["gaze"],
                      dynamic_axes={"x": {0: "n"}, "gaze": {0: "n"}}, dynamo=False)
    out["onnx"] = d / "vector.onnx"
    return out


def _json(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(path.read_text())


def test_evaluate_our_cnn_prints_what_bench_gaze_prints(sets, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["evaluate", "--estimator", str(sets["cnn"]), "--data", str(sets["test"]), "--purifier", "fast",
                 "--backend", "eager", "--out", str(tmp_path / "ev")]) == 0  # bench gaze runs the networks as loaded
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1].startswith("estimator model.safetensors: raw ") and "95% CI [" in printed[-1]
    assert (tmp_path / "ev" / "evaluate_cdf.png").stat().st_size > 1000
    ev = _json(tmp_path / "ev" / "evaluate.json")["scores"]
    assert main(["bench", "gaze", "--test", str(sets["test"]), "--n-test", "16", "--n-train", "8", "--estimators", "cnn",
                 "--cnn-file", str(sets["cnn"]), "--purifier", "fast", "--optimize-n", "0", "--simgan-steps", "0",
                 "--augment-copies", "0", "--out", str(tmp_path / "bg")]) == 0
    bg = _json(tmp_path / "bg" / "gaze.json")
    md = (tmp_path / "bg" / "gaze.md").read_text()
    for ours, theirs in (("raw", "raw"), ("purified (fast)", "purified (ours)")):
        s, b = ev[ours], bg["summary"][theirs]["cnn"]
        assert (s["mean"], s["std"], s["median"]) == (b["mean"], b["std"], b["median"])
        line = next(x for x in printed if x.startswith(ours + ":"))
        assert f"{s['mean']:.2f} ± {s['std']:.2f}" in line and f"median {s['median']:.2f}" in line
        assert f"| {theirs} | {s['mean']:.2f} ± {s['std']:.2f} | {s['median']:.2f} |" in md
    d, lo, hi = ev["purified (fast)"]["vs_raw"]
    assert bg["cnn_seeds"]["purified (ours)"]["vs_raw"] == [d, lo, hi] or tuple(bg["cnn_seeds"]["purified (ours)"]["vs_raw"]) == (d, lo, hi)
    assert f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]" in md
    assert f"Δ vs raw {d:+.2f}° [{lo:+.2f}, {hi:+.2f}]" in next(x for x in printed if x.startswith("purified (fast):"))


def test_onnx_and_torchscript_give_one_answer_close_to_ours(sets, exported, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    common = ["--data", str(sets["test"]), "--purifier", "none", "--input-size", "18x30", "--gray"]
    assert main(["evaluate", "--estimator", str(exported["onnx"]), "--output", "vector", *common, "--out", str(tmp_path / "o")]) == 0
    assert main(["evaluate", "--estimator", str(exported["torchscript"]), *common, "--out", str(tmp_path / "t")]) == 0
    assert main(["evaluate", "--estimator", str(sets["cnn"]), "--data", str(sets["test"]), "--purifier", "none",
                 "--out", str(tmp_path / "c")]) == 0
    head = capsys.readouterr().out.strip().splitlines()[-1]
    assert head.endswith("(no purifier)")
    o, t, c = (_json(tmp_path / k / "evaluate.json") for k in "otc")
    assert o["settings"]["kind"] == "onnx" and t["settings"]["kind"] == "torchscript" and c["settings"]["kind"] == "ours"
    eo, et, ec = (np.array(x["errors_deg"]["raw"]) for x in (o, t, c))
    np.testing.assert_allclose(eo, et, atol=1e-3)
    assert abs(eo.mean() - ec.mean()) < 3.0  # ours resizes to 36×60 first, then to the net's 18×30


def test_a_model_that_does_not_fit_is_one_line_and_exit_2(sets, exported, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    base = ["--data", str(sets["test"]), "--purifier", "none"]
    assert main(["evaluate", "--estimator", str(exported["onnx"]), *base, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "[N, 1, 18, 30]" in err and "[N, 1, 36, 60]" in err
    assert main(["evaluate", "--estimator", str(exported["onnx"]), *base, "--input-size", "18x30",
                 "--out", str(tmp_path / "b")]) == 2  # 3 outputs read as pitch/yaw
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "[N, 2]" in err and "[N, 3]" in err
    assert main(["evaluate", "--estimator", str(exported["torchscript"]), *base, "--color", "--input-size", "18x30",
                 "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "[2, 3, 18, 30]" in err and "Traceback" not in err
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model at all")
    assert main(["evaluate", "--estimator", str(junk), *base, "--out", str(tmp_path / "d")]) == 2


class _Seg(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # dark = pupil, bright = sclera
        g = x.mean(1, keepdim=True)
        return torch.cat([torch.zeros_like(g), g - 0.6, 0.3 - (g - 0.3).abs(), 0.25 - g], 1) * 10


def test_segmentation_task_scores_a_foreign_segmenter(sets, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    ts = torch.jit.trace(_Seg(), torch.rand(2, 3, 72, 120))
    ts.save(str(tmp_path / "seg.pt"))
    assert main(["evaluate", "--task", "segmentation", "--estimator", str(tmp_path / "seg.pt"), "--data", str(sets["test"]),
                 "--purifier", "fast", "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("segmenter seg.pt: raw mIoU ") and "-> purified" in out[-1]
    scores = _json(tmp_path / "s" / "evaluate.json")["scores"]
    assert set(scores) == {"raw", "purified (fast)"} and scores["raw"]["n_images"] == 16


def test_gaze_command_writes_csv_json_and_arrows(sets, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    ims = sorted((sets["test"] / "wild").glob("*.png"))[:3]
    for purifier in ("fast", "none"):
        out = tmp_path / purifier
        assert main(["gaze", *map(str, ims), "--estimator", str(sets["cnn"]), "--purifier", purifier, "--out", str(out)]) == 0
        rows = (out / "gaze.csv").read_text().strip().splitlines()
        assert rows[0] == "input,output,face,eye,pitch,yaw,x,y,z" and len(rows) == 4
        rec = _json(out / "gaze.json")["images"]
        v = np.array(rec[0]["eyes"][0]["vector"])
        assert abs(np.linalg.norm(v) - 1) < 1e-4
        drawn = cv2.imread(str(out / ims[0].name))
        assert drawn.shape[:2] == (72, 120)
    assert "gaze of 3 eyes in 3 images" in capsys.readouterr().out


def _face_video(path: Path, n: int) -> Path:
    from eyepurify.bench.video import face_video

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (640, 480))
    for f in face_video(n):
        w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    w.release()
    return path


@pytest.fixture(scope="module")
def detector_ready() -> None:
    pytest.importorskip("skimage.data")
    from eyepurify.models.mtcnn import weights_dir

    try:
        weights_dir()
    except Exception as e:  # noqa: BLE001 - the faces extra is not installed
        pytest.skip(str(e))


def test_live_headless_writes_the_side_by_side_video(tmp_path, detector_ready, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    video = _face_video(tmp_path / "face.avi", 4)
    out = tmp_path / "live.avi"
    assert main(["live", "--video", str(video), "--faces", "--gaze", "--out", str(out)]) == 0
    assert re.search(r"4 frames in .* frames/s \(0 without a face\)", capsys.readouterr().out)
    cap = cv2.VideoCapture(str(out))
    ok, frame = cap.read()
    assert ok and frame.shape == (480, 1280, 3)
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    cap.release()


def test_live_on_eye_closeups_and_gaze_on_faces(sets, tmp_path, detector_ready, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DISPLAY", raising=False)
    frames = [cv2.imread(str(p)) for p in sorted((sets["test"] / "wild").glob("*.png"))[:3]]
    w = cv2.VideoWriter(str(tmp_path / "eyes.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (120, 72))
    for f in frames:
        w.write(f)
    w.release()
    assert main(["live", "--video", str(tmp_path / "eyes.avi"), "--gaze", "--out", str(tmp_path / "o.avi")]) == 0
    assert "3 frames in" in capsys.readouterr().out
    from eyepurify.bench.video import face_video

    cv2.imwrite(str(tmp_path / "face.png"), cv2.cvtColor(face_video(1)[0], cv2.COLOR_RGB2BGR))
    assert main(["gaze", str(tmp_path / "face.png"), "--faces", "--out", str(tmp_path / "g")]) == 0
    eyes = _json(tmp_path / "g" / "gaze.json")["images"][0]["eyes"]
    assert {e["eye"] for e in eyes} >= {"left", "right"}
    for e in eyes:  # arrows start at the eye centre
        assert 0 <= e["origin"][0] < 640 and 0 <= e["origin"][1] < 480


def test_evaluate_on_columbia_with_the_shipped_estimator(shared_data, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["evaluate", "--estimator", "default", "--data", str(shared_data / "columbia_gaze"), "--n", "60",
                 "--purifier", "fast", "--out", str(tmp_path / "c")]) == 0
    scores = _json(tmp_path / "c" / "evaluate.json")["scores"]
    assert "calibrated" in scores["raw"] and scores["raw"]["n"] == 60


def test_quick_results_are_marked_as_toy(tmp_path) -> None:
    from eyepurify.commands.bench import TOY, mark_toy
    from eyepurify.io import write_json, write_text

    write_text(tmp_path / "x.md", "# title\n")
    write_json(tmp_path / "x.json", {"a": 1})
    mark_toy(str(tmp_path), 0.0)
    assert (tmp_path / "x.md").read_text().startswith(f"# title\n\n**{TOY}**")
    assert _json(tmp_path / "x.json")["toy"] == TOY
    mark_toy(str(tmp_path), 0.0)
    assert (tmp_path / "x.md").read_text().count(TOY) == 1

"""What a new user meets first (issue 23), through the CLI as they run it: one process each."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import eyepurify
from eyepurify.models.export import save_model
from eyepurify.models.segmentation import create_segmentation_net
from eyepurify.models.transformer import create_transform_net

SRC = Path(eyepurify.__file__).resolve().parents[1]  # the eyepurify under test, for subprocesses


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny purifier "p" and a tiny segmenter "s", at 36×60."""
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    net = create_transform_net("test_tiny").eval()
    save_model(d / "p.safetensors", net, {"net": net.config.to_dict(), "train": {"size": [36, 60]}})
    seg = create_segmentation_net("test_tiny").eval()
    save_model(d / "s.safetensors", seg, {"kind": "segmentation", "net": seg.config.to_dict(), "size": [36, 60]})
    return {"p": d / "p.safetensors", "s": d / "s.safetensors"}


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    e = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    e["PYTHONPATH"] = os.pathsep.join(p for p in (e.get("PYTHONPATH_FIRST", ""), str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "eyepurify", *args], capture_output=True, text=True, env=e,
                          timeout=timeout)


def purify_args(models: dict[str, Path], *args: str) -> list[str]:
    return ["purify", *args, "--model", str(models["p"]), "--segmenter", str(models["s"])]


def eye(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 200, np.uint8)
    yy, xx = np.mgrid[:h, :w]
    img[((yy - h / 2) / (h * 0.3)) ** 2 + ((xx - w / 2) / (w * 0.4)) ** 2 < 1] = 235
    img[((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < (h * 0.2) ** 2] = 60
    return np.clip(img.astype(int) + rng.integers(-8, 8, img.shape), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ 2. a wrong path creates nothing


@pytest.mark.parametrize("command", ["purify", "segment"])
def test_a_wrong_path_creates_nothing(models, tmp_path, command):
    out = tmp_path / "out"
    args = purify_args(models, str(tmp_path / "nope.png"), "--out", str(out)) if command == "purify" else \
        ["segment", str(tmp_path / "nope.png"), str(tmp_path / "none*.jpg"), "--out", str(out), "--model", str(models["s"])]
    r = cli(*args)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "nope.png" in lines[0] and "nothing was written" in lines[0], r.stderr
    assert not out.exists()
    # the corrected re-run needs no --overwrite
    Image.fromarray(eye(36, 60)).save(tmp_path / "nope.png")
    args = [a for a in args if "none*" not in a]
    r = cli(*args)
    assert r.returncode == 0, r.stderr


# ------------------------------------------- 3. dataset samples that are files keep name and size


def test_columbia_folder_keeps_file_names_and_size(models, tmp_path):
    folder = tmp_path / "columbia_gaze" / "images"
    folder.mkdir(parents=True)
    names = ["0001_2m_-15P_10V_-5H_L.jpg", "0002_2m_0P_0V_0H_R.jpg"]
    for i, n in enumerate(names):
        Image.fromarray(eye(64, 64, i)).save(folder / n, quality=95)
    out = tmp_path / "out"
    r = cli(*purify_args(models, str(tmp_path / "columbia_gaze"), "--out", str(out), "--format", "columbia"))
    assert r.returncode == 0, r.stderr
    for n in names:
        png = out / n.replace(".jpg", ".png")
        assert png.is_file(), sorted(p.name for p in out.iterdir())
        assert Image.open(png).size == (64, 64)  # --output full: the input's size
    rows = list(csv.DictReader((out / "index.csv").open()))
    assert sorted(r["file"] for r in rows) == sorted(n.replace(".jpg", ".png") for n in names)
    assert all(r["gaze_z"] for r in rows)  # the labels are kept
    items = json.loads((out / "manifest.json").read_text())["items"]
    assert all(v["input"].endswith(".jpg") for v in items.values())


# ------------------------------------------------------------------------ 5. help and messages


def test_help_says_what_auto_picks_and_no_issue_numbers():
    r = cli("purify", "--help")
    text = " ".join(r.stdout.split())
    assert "auto (openvino when OpenVINO is installed, else onnx" in text
    for args in (("bench", "--help"), ("purify", "--help"), ("segment", "--help")):
        assert "issue" not in cli(*args).stdout.lower(), args


def test_many_alike_failures_are_one_summary_line(models, tmp_path):
    Image.fromarray(eye(36, 60)).save(tmp_path / "ok.png")
    missing = [str(tmp_path / f"gone{i}.png") for i in range(12)]
    r = cli(*purify_args(models, str(tmp_path / "ok.png"), *missing, "--out", str(tmp_path / "o")))
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) <= 3, r.stderr
    assert "skipped 12 input(s): no such file or folder" in r.stderr and "report.txt" in r.stderr
    assert len((tmp_path / "o" / "report.txt").read_text().splitlines()) == 12  # details stay in the report


def test_first_run_on_a_backend_says_it_prepares_the_model(models, tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("onnxscript")
    Image.fromarray(eye(36, 60)).save(tmp_path / "e.png")
    env = {"EYEPURIFY_CACHE_DIR": str(tmp_path / "cache")}
    first = cli(*purify_args(models, str(tmp_path / "e.png"), "--out", str(tmp_path / "a"), "--backend", "openvino"), env=env)
    assert first.returncode == 0, first.stderr
    assert "preparing the OpenVINO purifier model (once" in first.stderr
    again = cli(*purify_args(models, str(tmp_path / "e.png"), "--out", str(tmp_path / "b"), "--backend", "openvino"), env=env)
    assert again.returncode == 0 and "preparing" not in again.stderr


# -------------------------------------------------------------------------------- 6. progress


def on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal that reports no size (as under `docker
    exec -t` or a CI runner's tty): (exit code, what the terminal showed)."""
    import pty

    master, slave = pty.openpty()
    e = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", **env}
    e.pop("COLUMNS", None)
    p = subprocess.Popen([sys.executable, "-m", "eyepurify", *args], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=slave, env=e)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return p.wait(timeout=300), shown.decode("utf-8", "replace")


def test_a_batch_shows_a_progress_bar_on_a_terminal_and_nothing_on_a_pipe(models, tmp_path):
    folder = tmp_path / "patches"
    folder.mkdir()
    for i in range(40):
        Image.fromarray(eye(36, 60, i)[..., 0]).save(folder / f"{i:03d}.png")
    fast = {"EYEPURIFY_PROGRESS_DELAY": "0"}  # the bar appears after 2 s by default; this batch is shorter
    rc, shown = on_a_terminal(purify_args(models, str(folder), "--out", str(tmp_path / "a"), "--batch", "8"), fast)
    assert rc == 0, shown
    assert "40/40" in shown and "image/s" in shown, shown  # count, rate (and ETA while it runs)
    piped = cli(*purify_args(models, str(folder), "--out", str(tmp_path / "b")), env=fast)
    assert piped.returncode == 0 and "image/s" not in piped.stderr
    asked = cli(*purify_args(models, str(folder), "--out", str(tmp_path / "c")), env={**fast, "EYEPURIFY_PROGRESS": "1"})
    assert asked.returncode == 0 and "40/40" in asked.stderr
    # a short batch on a terminal stays clean (default delay of 2 s)
    rc, shown = on_a_terminal(purify_args(models, str(folder / "000.png"), "--out", str(tmp_path / "d")), {})
    assert rc == 0 and "image/s" not in shown, shown


# -------------------------------------------------------- 1. a face photo without --faces


def test_a_face_photo_without_faces_is_refused_with_the_fix(models, tmp_path):
    from eyepurify.facecheck import face_extra_installed

    if not face_extra_installed():
        pytest.skip("needs eyepurify[faces] (the MTCNN weights)")
    skdata = pytest.importorskip("skimage.data")
    import cv2

    face = skdata.astronaut()
    Image.fromarray(face).save(tmp_path / "portrait.png")
    Image.fromarray(eye(36, 60)).save(tmp_path / "eye.png")
    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (256, 256))
    for _ in range(3):
        w.write(cv2.cvtColor(cv2.resize(face, (256, 256)), cv2.COLOR_RGB2BGR))
    w.release()
    out = tmp_path / "o"
    r = cli(*purify_args(models, str(tmp_path / "portrait.png"), str(tmp_path / "eye.png"), str(video), "--out", str(out)))
    assert r.returncode == 1, r.stderr
    assert "looks like a face photo" in r.stderr and "add --faces" in r.stderr
    report = (out / "report.txt").read_text()
    assert "portrait.png" in report and "clip.avi" in report and "add --faces" in report
    assert (out / "eye.png").is_file() and not (out / "portrait.png").exists() and not (out / "clip.avi").exists()
    # the check can be skipped
    r = cli(*purify_args(models, str(tmp_path / "portrait.png"), "--out", str(tmp_path / "o2"), "--no-face-check"))
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------------------ 7. videos: H.264 with audio


def write_clip(path: Path, audio: bool, n: int = 6, size: tuple[int, int] = (64, 96)) -> None:
    """A small MPEG-4 Part 2 clip of eyes (with a 440 Hz AAC tone when ``audio``), via PyAV."""
    import av

    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = size[1], size[0], "yuv420p"
        a = c.add_stream("aac", rate=16000) if audio else None
        for i in range(n):
            for p in v.encode(av.VideoFrame.from_ndarray(eye(*size, seed=i), format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if a is not None:
            t = np.arange(16000 * n // 10) / 16000
            samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for k in range(0, samples.shape[1], 1024):
                f = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, k:k + 1024]), format="fltp", layout="mono")
                f.sample_rate = 16000
                for p in a.encode(f):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)


def streams(path: Path) -> tuple[str, int]:
    import av

    with av.open(str(path)) as c:
        return c.streams.video[0].codec_context.name, len(c.streams.audio)


def test_videos_come_out_as_h264_with_their_audio(models, tmp_path):
    pytest.importorskip("av")
    from eyepurify.videocodec import h264_available

    if not h264_available():
        pytest.skip("this PyAV has no H.264 encoder")
    write_clip(tmp_path / "talk.mp4", audio=True)
    write_clip(tmp_path / "mute.mp4", audio=False)
    out = tmp_path / "o"
    r = cli(*purify_args(models, str(tmp_path / "talk.mp4"), str(tmp_path / "mute.mp4"), "--out", str(out)))
    assert r.returncode == 0, r.stderr
    assert streams(out / "talk.mp4") == ("h264", 1)
    assert streams(out / "mute.mp4") == ("h264", 0)
    items = json.loads((out / "manifest.json").read_text())["items"]
    assert items["talk.mp4"]["codec"] == "h264" and items["talk.mp4"]["audio"] == "copied"
    assert items["mute.mp4"]["audio"] == "none in the input" and items["mute.mp4"]["frames"] == 6


def test_without_pyav_videos_fall_back_with_a_note(models, tmp_path):
    pytest.importorskip("av")
    write_clip(tmp_path / "talk.mp4", audio=True)
    shadow = tmp_path / "shadow" / "av"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('PyAV hidden by the test')\n")
    out = tmp_path / "o"
    r = cli(*purify_args(models, str(tmp_path / "talk.mp4"), "--out", str(out)),
            env={"PYTHONPATH_FIRST": str(shadow.parent)})
    assert r.returncode == 0, r.stderr
    notes = [ln for ln in r.stderr.splitlines() if "MPEG-4 Part 2" in ln]
    assert len(notes) == 1 and "eyepurify[video]" in notes[0]
    assert streams(out / "talk.mp4")[0] == "mpeg4"
    item = json.loads((out / "manifest.json").read_text())["items"]["talk.mp4"]
    assert item["codec"] == "mpeg4" and item["audio"].startswith("not copied")
